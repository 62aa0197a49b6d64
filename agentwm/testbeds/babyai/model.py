"""Learn a latent world model of BabyAI from collected transitions; save and load it. Read top to bottom.

The model is a PETS-style :class:`~agentwm.worldmodels.ensemble.EnsembleDynamics` over the
symbolic vector of :mod:`agentwm.envs.babyai` (``VECTOR_DIM`` floats: mission kind, what is
carried, where the mission's objects are, which cells around are blocked). It predicts the next
vector, the shaped reward (success + potential difference; see :func:`agentwm.envs.babyai.potential`)
and the continue probability (episodes end on success). One model serves all single-room levels:
the vector is mission-relative, so go-to, pick-up and put-next share their movement dynamics.

Data: the shared :class:`~agentwm.testbeds.babyai.agents.HeuristicProposer`'s preferred action,
replaced by a uniform random action with probability ``epsilon``, on episodes whose seeds are
disjoint from the evaluation seeds of ``benchmarks/babyai.py`` (they start at ``10**6``).

Why the variance bounds are held down. With the ensemble's default bounds (log-variance up to
0.5 in normalised units, weak bound penalty) the Gaussian NLL explains the turning moves, whose
deltas are large rotations of the relative positions, as noise: the predicted variance grows, the
gradient on the mean shrinks by it, and after 30 epochs the members still predicted "no change"
for a turn (position error 0.24 vs 0.28 for copy-last on held-out turns, while a plain MSE net of
the same size reached 0.035). With the upper bound started at -2 and a bound penalty of 1.0 the
penalty wins: the learned bounds cross and every member's log-variance settles at one constant
(about -0.65 in normalised units in the shipped model). The members are then homoscedastic
regressors trained by MSE, the same data gives a turn position error of 0.023, and the
uncertainty left is the members' disagreement (what the hybrid world model gates on).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import torch
from pydantic import BaseModel, ConfigDict, Field, field_validator

from agentwm.checkpoint import atomic_write, load_config, load_weights, save_module
from agentwm.envs.babyai import ACTION_SPEC, LEVELS, VECTOR_DIM, collect_transitions
from agentwm.testbeds.babyai.agents import HeuristicProposer
from agentwm.worldmodels.ensemble import EnsembleConfig, EnsembleDynamics

TRAIN_SEED_OFFSET = 10**6
"""Training episodes use seeds from here on; evaluation uses small seeds, so the two never meet."""

DEFAULT_MODEL = Path(__file__).resolve().parents[3] / "models" / "babyai-ensemble"
"""The shipped checkpoint (in a source checkout)."""


class BabyAIModelConfig(BaseModel):
    """Settings of :func:`train_babyai_model`; every ``agentwm train babyai`` flag maps to one field."""

    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)

    levels: tuple[str, ...] = Field(default=LEVELS, description="BabyAI levels to collect transitions on (evenly split)")
    transitions: int = Field(default=40_000, ge=100, description="transitions to collect and learn from")
    epsilon: float = Field(default=0.3, ge=0.0, le=1.0, description="probability of a uniform random action in the data")
    members: int = Field(default=5, ge=1, le=64, description="ensemble members")
    units: int = Field(default=128, ge=8, description="hidden width of every member")
    layers: int = Field(default=3, ge=1, le=8, description="hidden layers per member")
    epochs: int = Field(default=20, ge=1, description="most passes over the data (early stopping on a holdout)")
    batch_size: int = Field(default=64, ge=1, description="transitions per member per gradient step")
    patience: int = Field(default=8, ge=1, description="epochs without holdout improvement before stopping")
    max_logvar: float = Field(
        default=-2.0,
        description="initial upper bound of the members' log-variances (normalised units); kept low, see below",
    )
    logvar_bound_coef: float = Field(default=1.0, ge=0.0, description="weight of the penalty that keeps the bounds tight")
    seed: int = Field(default=0, ge=0, description="seed of data collection, weights and minibatches")

    @field_validator("levels")
    @classmethod
    def _levels(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if not value or any(not v.startswith("BabyAI-") for v in value):
            raise ValueError(f"levels must be BabyAI gymnasium ids such as {LEVELS[0]!r}, got {value!r}")
        return value

    def ensemble_config(self) -> EnsembleConfig:
        return EnsembleConfig(
            members=self.members, units=self.units, layers=self.layers, epochs=self.epochs,
            batch_size=self.batch_size, patience=self.patience, seed=self.seed,
            max_logvar=self.max_logvar, logvar_bound_coef=self.logvar_bound_coef,
        )


def collect(config: BabyAIModelConfig) -> dict[str, torch.Tensor]:
    """The transitions of ``config`` (format of :func:`agentwm.envs.babyai.collect_transitions`)."""
    proposer = HeuristicProposer()
    return collect_transitions(
        config.levels, config.transitions, lambda step, rng: proposer(step, rng).preferred,
        epsilon=config.epsilon, seed=TRAIN_SEED_OFFSET + config.seed,
    )


def train_babyai_model(
    config: BabyAIModelConfig | None = None,
    *,
    data: dict[str, torch.Tensor] | None = None,
    out: str | Path | None = None,
    progress: bool = False,
) -> tuple[EnsembleDynamics, dict[str, Any]]:
    """Collect transitions (unless ``data`` is given), fit the ensemble, optionally save it.

    Returns:
        The fitted model and a summary: the ensemble's holdout metrics (``wm/holdout_mse`` against
        ``wm/holdout_baseline_mse``, the copy-last baseline), data counts and timings.
    """
    config = config if config is not None else BabyAIModelConfig()
    torch.manual_seed(config.seed)
    t0 = time.perf_counter()
    if data is None:
        data = collect(config)
    t1 = time.perf_counter()
    model = EnsembleDynamics(VECTOR_DIM, ACTION_SPEC, config.ensemble_config())
    metrics = model.fit({k: v for k, v in data.items() if k != "success"}, progress=progress)
    t2 = time.perf_counter()
    summary: dict[str, Any] = {
        **metrics,
        "data/transitions": int(data["obs"].shape[0]),
        "data/successes": int(data["success"].sum()) if "success" in data else None,
        "time/collect_s": round(t1 - t0, 2),
        "time/fit_s": round(t2 - t1, 2),
    }
    if out is not None:
        save_babyai_model(out, model, config, summary)
    return model, summary


def save_babyai_model(
    folder: str | Path, model: EnsembleDynamics, config: BabyAIModelConfig, summary: dict[str, Any]
) -> Path:
    """Write ``model.safetensors``, ``config.json`` and a model card ``README.md`` (all atomically)."""
    folder = Path(folder)
    save_module(folder, model, {
        "family": "babyai-ensemble",
        "vector_dim": VECTOR_DIM,
        "train": config.model_dump(mode="json"),
        "ensemble": config.ensemble_config().model_dump(mode="json"),
        "metrics": summary,
    })
    card = _model_card(config, summary)

    def write_card(tmp: str) -> None:
        Path(tmp).write_text(card)

    atomic_write(folder / "README.md", write_card)
    return folder


def load_babyai_model(folder: str | Path | None = None, device: str = "cpu") -> EnsembleDynamics:
    """Load a model saved by :func:`save_babyai_model` (the shipped one when ``folder`` is None)."""
    folder = Path(folder) if folder is not None else DEFAULT_MODEL
    config = load_config(folder)
    if config.get("family") != "babyai-ensemble" or config.get("vector_dim") != VECTOR_DIM:
        raise ValueError(
            f"{folder} is not a BabyAI ensemble for this encoding (family={config.get('family')!r},"
            f" vector_dim={config.get('vector_dim')!r}, expected {VECTOR_DIM})"
        )
    model = EnsembleDynamics(VECTOR_DIM, ACTION_SPEC, EnsembleConfig(**config["ensemble"]))
    load_weights(folder, model, device)
    model.eval()
    return model


def _model_card(config: BabyAIModelConfig, summary: dict[str, Any]) -> str:
    def fmt(key: str) -> str:
        value = summary.get(key)
        return f"{value:.4g}" if isinstance(value, (int, float)) and not isinstance(value, bool) else str(value)

    params = config.members * sum(
        a * b + b for a, b in zip(
            [VECTOR_DIM + ACTION_SPEC.dim] + [config.units] * config.layers,
            [config.units] * config.layers + [2 * VECTOR_DIM + 2],
        )
    )
    return f"""# babyai-ensemble

A PETS-style probabilistic ensemble world model of single-room BabyAI levels, over the symbolic
vector of `agentwm.envs.babyai` ({VECTOR_DIM} floats). Load with
`agentwm.testbeds.babyai.model.load_babyai_model()`; plan with `agentwm.testbeds.babyai.agents.LatentPlanner`.

- **Predicts**: next vector (Gaussian delta per member; the log-variance settled at one constant,
  see the `agentwm.testbeds.babyai.model` docstring), shaped reward (success + potential
  difference, see `agentwm.envs.babyai.potential`), continue probability (episodes end on success).
- **Architecture**: {config.members} members x {config.layers} x {config.units} SiLU units
  (~{params:,} parameters), bootstrap resamples, learned log-variance bounds.
- **Data**: {summary.get('data/transitions')} transitions ({summary.get('data/successes')} successes) on
  {', '.join(config.levels)}; actions from the heuristic proposer with epsilon={config.epsilon} random
  actions; episode seeds from {TRAIN_SEED_OFFSET + config.seed} up (disjoint from evaluation seeds).
- **Holdout (10%) metrics**: next-vector MSE {fmt('wm/holdout_mse')} vs copy-last baseline
  {fmt('wm/holdout_baseline_mse')}; reward MSE {fmt('wm/holdout_reward_mse')}; continue accuracy
  {fmt('wm/holdout_continue_acc')}; {fmt('wm/epochs')} epochs.
- **Command**: `agentwm train babyai --logdir models/babyai-ensemble` (seed {config.seed}).
- **Limits**: single-room go-to / pick-up / put-next missions only; objects never seen are a
  flag, not a position; blocked cells are the 6 around the agent only. Not for doors or multi-room levels.
- **Intended use**: ranking proposed actions by imagined return (`benchmarks/babyai.py`).
"""

