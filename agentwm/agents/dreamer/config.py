"""Settings of a Dreamer run: one pydantic model, named presets applied in order, ``key=value`` overrides.

``resolve_config(["tiny"], ["train_ratio=64", "model.deter=128"], env="CartPole-v1")`` starts from
the defaults, applies each preset left to right, then the overrides (values parsed as JSON where
they parse, else kept as strings; ``model.<field>`` sets a field of the RSSM config), and
validates the result once, so a typo or a bad value fails with an error that names the field.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from agentwm.agents.devices import DeviceName, device_field
from agentwm.agents.overrides import parse_override
from agentwm.worldmodels.rssm import PRESETS as RSSM_PRESETS
from agentwm.worldmodels.rssm import RSSMConfig


class DreamerConfig(BaseModel):
    """Every knob of a Dreamer run. Defaults follow DreamerV3 (Hafner et al. 2023) where it is silent."""

    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)

    # -- environment
    env: str = Field("CartPole-v1", description="gymnasium id, or 'dmc:domain-task' for DeepMind Control")
    pixels: bool = Field(False, description="observe 64x64 RGB frames instead of the state vector")
    image_size: int = Field(64, ge=8, description="side of pixel observations")
    action_repeat: int = Field(1, ge=1, description="env steps per agent action (rewards summed)")
    num_envs: int = Field(1, ge=1, le=64, description="parallel training environments (gymnasium vector env)")
    async_envs: bool = Field(
        False, description="step the envs in worker processes while the agent learns (gymnasium "
        "AsyncVectorEnv); the same run as with in-process envs, faster when env steps are slow (physics, "
        "rendering) and a core or a GPU is free. A resumed run starts fresh episodes.",
    )
    time_limit: int | None = Field(None, ge=1, description="cap on agent steps per episode (env default if unset)")

    # -- run length and schedule (counted in env frames: agent steps x action_repeat, summed over envs)
    steps: int = Field(30_000, ge=1, description="env frames to train for")
    prefill: int = Field(1_000, ge=0, description="env frames of uniformly random actions before learning")
    train_ratio: float = Field(
        512.0, gt=0, description="replayed steps per env frame (DreamerV3's knob); updates per frame = "
        "train_ratio / (batch_size * batch_length)",
    )
    log_every: int = Field(1_000, ge=1, description="env frames between metric lines")
    eval_every: int = Field(5_000, ge=1, description="env frames between evaluations (greedy policy)")
    eval_episodes: int = Field(5, ge=1, description="episodes per evaluation")
    eval_video: bool = Field(
        False, description="write each evaluation's first episode as the env renders it to "
        "videos/eval_<frames>.gif (needs the plot extra; rendering slows evaluations)",
    )
    checkpoint_every: int = Field(5_000, ge=1, description="env frames between checkpoints")
    keep_checkpoints: int = Field(2, ge=1, description="complete checkpoints kept on disk")
    pickle_env_state: bool = Field(
        False, description="also save envs whose state is not plain data (not classic control) as a pickle, "
        "and load it on resume; only for run folders you trust: unpickling runs code",
    )
    nonfinite_limit: int = Field(
        20, ge=1, description="stop the run when this many updates in a row had a NaN/inf loss or gradient "
        "(each such update is skipped and counted in guard/skipped_updates)",
    )

    loggers: tuple[str, ...] = Field(
        ("tensorboard",), description="where metrics go besides metrics.jsonl (always written): "
        "tensorboard (tb/), wandb (Weights & Biases, the wandb extra; WANDB_MODE=offline works without a "
        "network); none for JSONL only; e.g. --loggers tensorboard wandb or --set loggers=tensorboard,wandb",
    )
    wandb_project: str = Field("agentwm", description="Weights & Biases project (loggers=wandb)")

    # -- world model
    model_preset: str = Field("size1m", description=f"RSSM size preset, one of {sorted(RSSM_PRESETS)}")
    model: dict[str, Any] = Field(default_factory=dict, description="RSSMConfig field overrides")
    wm_lr: float = Field(1e-4, gt=0, description="world-model learning rate (Adam)")
    wm_clip: float = Field(1000.0, gt=0, description="world-model gradient-norm clip")
    wm_lr_final: float = Field(
        1.0, gt=0, le=1, description="the world model's learning rate falls linearly from the end of prefill to "
        "this fraction at the last frame (1: constant; not with a CUDA-graph update)",
    )

    # -- replay
    batch_size: int = Field(16, ge=1, description="sequences per update (torchrun: all ranks together, split evenly)")
    batch_length: int = Field(64, ge=2, description="steps per replayed sequence")
    replay_capacity: int = Field(250_000, ge=100, description="transitions kept (FIFO)")
    replay_terminal_fraction: float = Field(
        0.0, ge=0, le=1, description="share of each batch's sequences placed over a stored terminal "
        "transition (the rest uniform): more examples of rare episode ends for the continue head, at the "
        "cost of a continue head biased towards ending",
    )

    # -- actor-critic in imagination
    horizon: int = Field(15, ge=1, description="imagined steps")
    gamma: float = Field(0.997, ge=0, le=1, description="discount (DreamerV3: 1 - 1/333)")
    lam: float = Field(0.95, ge=0, le=1, description="lambda of the lambda-returns")
    actor_lr: float = Field(3e-5, gt=0, description="actor learning rate")
    critic_lr: float = Field(3e-5, gt=0, description="critic learning rate")
    ac_lr_final: float = Field(
        1.0, gt=0, le=1, description="actor and critic learning rates fall linearly from the end of prefill to "
        "this fraction at the last frame (1: constant; not with a CUDA-graph update)",
    )
    ac_clip: float = Field(100.0, gt=0, description="actor and critic gradient-norm clip")
    ac_eps: float = Field(1e-5, gt=0, description="Adam epsilon of actor and critic")
    actor_entropy: float = Field(3e-4, ge=0, description="entropy bonus scale (on normalised advantages)")
    actor_dynamics: float = Field(
        0.0, ge=0, le=1, description="share of the actor's objective taken by backpropagating the imagined "
        "lambda-return through the world model (straight-through for discrete actions), the rest REINFORCE "
        "(DreamerV2's mix); 0: REINFORCE only, as DreamerV3; >0 imagines with gradients (more memory; not with "
        "a CUDA-graph update)",
    )
    actor_lookahead: float = Field(
        0.0, ge=0, le=1, description="discrete actions: share of the actor's objective taken by the expected "
        "one-step value of every action, sum_a pi(a|s) (r + gamma c V(s')), each action imagined one step from "
        "each replayed start state with the same latent noise (no action-sampling noise; ~5% more update time "
        "on CartPole; agents/dreamer/lookahead.py); the rest REINFORCE (and actor_dynamics); 0: off",
    )
    actor_unimix: float = Field(0.01, ge=0, lt=1, description="uniform mixture in discrete action probabilities")
    explore_epsilon: float = Field(
        0.0, ge=0, le=1, description="after prefill, the chance that a training action is replaced by a uniformly "
        "random one (epsilon exploration, as DreamerV1's; evaluation stays greedy); shows the world model and "
        "critic states the policy itself would not reach; 0: the policy's own samples",
    )
    actor_average: float = Field(
        0.0, ge=0, le=1, description="EMA step of an averaged copy of the actor, which evaluation (greedy), the "
        "best checkpoint and `eval dreamer` act with, while training acts with the actor itself (Polyak "
        "averaging: a policy at a plateau, where REINFORCE's gradient is mostly noise, random-walks; the "
        "average does not); 0: evaluate the actor itself",
    )
    min_std: float = Field(0.1, gt=0, description="continuous actions: smallest policy std")
    max_std: float = Field(1.0, gt=0, description="continuous actions: largest policy std")
    slow_critic_fraction: float = Field(0.02, gt=0, le=1, description="EMA step of the slow critic target")
    slow_reg: float = Field(1.0, ge=0, description="weight of the critic's pull towards the slow critic")
    critic_replay_scale: float = Field(
        0.0, ge=0, description="weight of a second critic loss on the replayed states, towards lambda-returns of "
        "their real rewards and episode ends bootstrapped with imagined returns (DreamerV3's later versions: 0.3); "
        "0: the critic learns from imagination only",
    )
    return_decay: float = Field(0.99, ge=0, lt=1, description="EMA decay of the return percentiles")

    # -- machinery
    seed: int = Field(0, description="seed of envs, networks, replay and sampling")
    device: DeviceName = device_field()
    threads: int | None = Field(None, ge=1, description="torch CPU threads (default: torch's choice)")
    compile: bool = Field(
        False, description="torch.compile the update's batched world-model modules, actor, critic and imagination "
        "step, each call site once (minutes of compilation; pays off on long runs); acting stays eager",
    )
    compile_observe_chunk: int = Field(
        1, ge=1, description="with compile: observe steps of the world-model loss per compiled call (one gradient "
        "per weight per call: fewer kernels on a GPU, a longer compile); the same numbers as 1",
    )
    amp: Literal["auto", "off", "bf16"] = Field("auto", description="bf16 autocast: auto = on for CUDA")
    cuda_graph: Literal["auto", "on", "off"] = Field(
        "auto", description="replay the whole update as one captured CUDA graph (the update is launch-bound on a "
        "GPU: 6x faster on an H200): auto = on for single-process CUDA runs; on = refuse to run without it",
    )

    @field_validator("loggers", mode="before")
    @classmethod
    def _logger_names(cls, value: Any) -> Any:
        if isinstance(value, str):  # --set loggers=tensorboard,wandb
            value = [v.strip() for v in value.split(",") if v.strip()]
        names = tuple(value) if isinstance(value, (list, tuple)) else value
        if isinstance(names, tuple):
            names = tuple(n for n in names if n != "none")
            unknown = [n for n in names if n not in ("tensorboard", "wandb")]
            if unknown:
                raise ValueError(f"unknown logger {unknown[0]!r}: choose from tensorboard, wandb, none")
        return names

    @model_validator(mode="after")
    def _check(self) -> DreamerConfig:
        if self.model_preset not in RSSM_PRESETS:
            raise ValueError(f"model_preset must be one of {sorted(RSSM_PRESETS)}, got {self.model_preset!r}")
        self.rssm_config()  # validates the model overrides now, not at the first update
        if self.actor_dynamics + self.actor_lookahead > 1:
            raise ValueError(
                f"actor_dynamics + actor_lookahead must not exceed 1 (shares of the actor's objective), got "
                f"{self.actor_dynamics} + {self.actor_lookahead}"
            )
        if self.min_std > self.max_std:
            raise ValueError(f"min_std ({self.min_std}) must not exceed max_std ({self.max_std})")
        return self

    def rssm_config(self) -> RSSMConfig:
        """The world model's configuration: the size preset with ``model`` overrides."""
        return RSSMConfig.preset(self.model_preset, **self.model)

    @property
    def lr_scheduled(self) -> bool:
        """Whether a learning rate falls over the run (``wm_lr_final`` or ``ac_lr_final`` below 1)."""
        return min(self.wm_lr_final, self.ac_lr_final) < 1.0

    @property
    def updates_per_frame(self) -> float:
        return self.train_ratio / (self.batch_size * self.batch_length)


PRESETS: dict[str, dict[str, Any]] = {
    # Seconds-long smoke runs: the tiny RSSM, short sequences, few steps.
    "debug": {
        "model_preset": "debug", "batch_size": 4, "batch_length": 16, "horizon": 5, "steps": 600,
        "prefill": 200, "train_ratio": 64, "log_every": 200, "eval_every": 300, "eval_episodes": 1,
        "checkpoint_every": 300,
    },
    # A small agent that learns CartPole on a CPU in minutes (CI's learning check). It makes 1/4 of
    # DreamerV3's updates per frame, on 1/4 of its batch, so the learning rates are higher.
    "tiny": {
        "model_preset": "debug",
        "model": {"deter": 64, "hidden": 32, "stoch": 8, "classes": 8, "units": 64, "ac_layers": 2,
                  "enc_layers": 2, "dec_layers": 2, "reward_bins": 63},
        "batch_size": 16, "batch_length": 16, "train_ratio": 32, "prefill": 500,
        "wm_lr": 1e-3, "actor_lr": 3e-4, "critic_lr": 3e-4, "gamma": 0.99,
    },
    # CartPole-v1 with tiny (apply after it). A faster critic: its λ-return targets bootstrap from
    # itself and close only ~10% of the gap to the true value per refit (γ = 0.99, λ = 0.95); at
    # 3e-4 and tiny's update budget it still sat at ~11 (true ~90) after 5,000 frames, so the actor
    # saw no further than its imagined steps and greedy runs drifted off the track (|x| > 2.4) after
    # 230-300 steps. And a longer imagination horizon: every late failure left is the cart drifting
    # off the track with the pole upright, a cost 200+ steps away that shifts a γ = 0.99 value by
    # only a few percent, too little for the critic to rank reliably; 32 imagined steps let the
    # actor see the drift build up. Even so, the world model barely knew that leaving the track ends
    # the episode (continue probability ~0.95 on the terminal observation itself): those are ~1 row
    # in 1,000 of replay late in a run. So a quarter of each batch's sequences is placed over a
    # stored terminal, which also starts a quarter of the imagined rollouts near a failure; 6 of 6
    # seeds then reach 475, 5 of 6 hold it at 30k frames (4 of 6 without, a different seed failing).
    # Over ten seeds that still left 2-3 drifting late: the cart's position, which decides the
    # drift, is a small part of the decoder's loss and was encoded loosely (x error 0.25 32 imagined
    # steps ahead against a real change of 0.28). Weighting the decoder x100 cuts that error by a
    # fifth, and 20% uniformly random training actions (epsilon exploration) show the model and
    # critic the states the policy avoids. Together 9 of 10 seeds ended >= 475 at 30k frames at one
    # thread on one CPU, but 6 of 10 at two threads on another: there the world model tracked the
    # drift and the actor still did not learn to correct it early, a small advantage for REINFORCE to
    # find. Twice the updates per frame (train_ratio 64, twice the run time) keep more of each run at
    # the target (75% of late evals against 60% over 16 paired runs on that CPU) but miss the last
    # eval about as often, one run in four: rarer drift, not none. At the target the actor's gradient is
    # mostly noise (two batches' gradients point apart), so its weights random-walk and a greedy eval
    # catches them wherever they are; evaluating an EMA of the actor (actor_average, ~200 updates)
    # instead, on the same runs replayed from 25k frames, ended >= 475 on 9 of 10 at each thread count
    # where the actor itself did on 8 of 10
    # (benchmarks/dreamer_learn.py --task cartpole, benchmarks/dreamer_episode_ends.py,
    # benchmarks/dreamer_open_loop.py --flip, benchmarks/dreamer_wm_fit.py,
    # benchmarks/dreamer_replay_tail.py; docs/dreamer.md).
    "cartpole": {"env": "CartPole-v1", "critic_lr": 1e-3, "horizon": 32, "replay_terminal_fraction": 0.25,
                 "explore_epsilon": 0.2, "train_ratio": 64, "actor_average": 0.005,
                 "model": {"loss_scales": {"dec": 100.0}}},
    # Sizes (architecture only); apply after a task preset or alone.
    "size1m": {"model_preset": "size1m"},
    "size12m": {"model_preset": "size12m"},
    "dreamerv3-torch": {"model_preset": "dreamerv3-torch"},
    # DeepMind Control conventions: action repeat 2, 1,000-frame episodes (500 agent steps).
    "dmc_proprio": {"action_repeat": 2, "train_ratio": 512, "prefill": 5_000, "eval_every": 10_000},
    "dmc_vision": {"action_repeat": 2, "pixels": True, "train_ratio": 512, "prefill": 5_000,
                   "eval_every": 10_000},
    # dmc_proprio at a CPU's budget, for the tiny model (apply after it). Final eval on
    # cartpole-swingup at 100k frames by train ratio (benchmarks/dreamer_learn.py, seed 0, one core
    # each): 32 -> 354, 64 -> 442, 128 -> 778 in 92 min (seeds 1-3: 535, 315, 505, so 533 +- 164
    # over four; more in docs/dreamer.md); dmc_proprio's 512 would take ~4x as long.
    "dmc_cpu": {"action_repeat": 2, "train_ratio": 128, "prefill": 5_000, "eval_every": 10_000},
}  # fmt: skip


def _apply(values: dict[str, Any], key: str, value: Any) -> None:
    if key.startswith("model."):
        model = dict(values.get("model", {}))
        model[key[len("model.") :]] = value
        values["model"] = model
        return
    if key not in DreamerConfig.model_fields:
        raise ValueError(f"unknown Dreamer setting {key!r}; known: {sorted(DreamerConfig.model_fields)}")
    if key == "model" and isinstance(value, dict):
        values["model"] = {**values.get("model", {}), **value}
        return
    values[key] = value


def resolve_config(
    presets: Sequence[str] = (), overrides: Sequence[str] = (), base: DreamerConfig | None = None, **fields: Any
) -> DreamerConfig:
    """Defaults (or ``base``, e.g. a run's saved settings), then ``presets`` in order, then
    ``fields``, then ``overrides`` (``key=value`` strings)."""
    values: dict[str, Any] = base.model_dump() if base is not None else {}
    for name in presets:
        if name not in PRESETS:
            raise ValueError(f"unknown Dreamer preset {name!r}; choose from {sorted(PRESETS)}")
        for key, value in PRESETS[name].items():
            _apply(values, key, value)
    for key, value in fields.items():
        _apply(values, key, value)
    for text in overrides:
        _apply(values, *parse_override(text))
    return DreamerConfig(**values)


# Settings a checkpoint's contents depend on: the network shapes, the replay's layout and what the
# stored observations are. Everything else (schedule, learning rates, devices) may change on resume.
RESUME_FIXED = ("env", "pixels", "image_size", "action_repeat", "num_envs", "replay_capacity")


def check_resume(saved: DreamerConfig, new: DreamerConfig) -> list[str]:
    """The changes from a run's ``saved`` settings to the ``new`` ones it resumes with, as
    ``"field: old -> new"``; raises ``ValueError`` naming the field when one would not fit the
    checkpoint (the model, the envs, the replay)."""
    for name in RESUME_FIXED:
        if getattr(saved, name) != getattr(new, name):
            raise ValueError(
                f"cannot resume with {name}={getattr(new, name)!r}: the run was trained with "
                f"{name}={getattr(saved, name)!r}; resume with the run's own settings (they are the "
                "default on --resume) or start a new logdir"
            )
    if saved.rssm_config() != new.rssm_config():
        old_m, new_m = saved.rssm_config().model_dump(), new.rssm_config().model_dump()
        diff = ", ".join(f"{k}={old_m[k]!r} -> {new_m[k]!r}" for k in old_m if old_m[k] != new_m[k])
        raise ValueError(f"cannot resume with a different model ({diff}): the checkpoint's weights do not fit it; "
                         "resume with the run's own settings or start a new logdir")  # fmt: skip
    old, now = saved.model_dump(), new.model_dump()
    return [f"{k}: {old[k]!r} -> {now[k]!r}" for k in old if k not in ("model", "model_preset") and old[k] != now[k]]
