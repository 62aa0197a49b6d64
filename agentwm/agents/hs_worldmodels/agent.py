"""Ha & Schmidhuber's World Models agent, end to end on pixels. Read top to bottom.

1. **Collect** random-policy episodes of a gymnasium task rendered to 64×64 frames
   (``render_mode="rgb_array"``, area-downsampled): CartPole-v1 by default.
2. **V**: train the ConvVAE on the frames.
3. **M**: encode every frame, sample latents from V's posteriors, and train the MDN-RNN on the
   episodes (next latent, reward, episode end).
4. **C**: a linear controller ``a = argmax(W [z, h] + b)`` trained by CMA-ES (the ``cma``
   package) *entirely in the dream*: each candidate is scored by the mean return
   (:meth:`Rollout.returns`, with M's continue probabilities) of dreams at temperature ``tau``
   that start from real first frames. All candidates × dreams run as one batched ``imagine``.
5. **Evaluate** the controller in the real environment, advancing M with every real frame.
"""

from __future__ import annotations

import dataclasses
import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

import cma
import gymnasium as gym
import numpy as np
import torch
import torch.nn.functional as F
from pydantic import BaseModel, ConfigDict, Field
from safetensors.torch import load_file, save_file
from torch import Tensor

from agentwm.checkpoint import atomic_write, load_config, load_weights, save_module
from agentwm.core.finite import FiniteGuard, guarded_step
from agentwm.envs.gym import action_spec_of
from agentwm.worldmodels.base import ActionSpec, State
from agentwm.worldmodels.vae_mdnrnn import VAEMDNRNN, VAEMDNConfig


class HSConfig(BaseModel):
    """Settings of a World Models run; ``agentwm train worldmodels`` flags map to these fields."""

    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)

    env: str = Field(default="CartPole-v1", description="gymnasium id with rgb_array rendering, Discrete actions")
    frames: int = Field(default=3000, ge=10, description="random-policy frames to collect")
    crop: tuple[float, float, float, float] | None = Field(
        default=(0.4, 0.8, 0.25, 0.75),
        description="(top, bottom, left, right) fractions of the render kept before downsampling; the "
        "default keeps CartPole's cart-and-pole band so the thin pole survives 64x64 (None: whole frame)",
    )
    model: VAEMDNConfig = Field(default_factory=lambda: VAEMDNConfig(), description="sizes of V and M")
    vae_epochs: int = Field(default=8, ge=1, description="passes of V over the frames")
    vae_batch: int = Field(default=64, ge=1, description="frames per V step")
    rnn_steps: int = Field(default=1500, ge=1, description="gradient steps of M per round")
    rnn_batch: int = Field(default=16, ge=1, description="episode windows per M step")
    rnn_seq: int = Field(default=64, ge=2, description="longest window of an episode per M sample")
    lr: float = Field(default=1e-3, gt=0.0, description="Adam learning rate of V and M")
    nonfinite_limit: int = Field(
        default=20, ge=1, description="stop when this many updates in a row had a NaN/inf loss or gradient (each skipped)"
    )
    m_on_means: bool = Field(
        default=True,
        description="train M on V's posterior means instead of samples (the paper samples; means match "
        "what observe() feeds the controller when acting)",
    )
    dream_done: Literal["soft", "threshold"] = Field(
        default="soft",
        description="how M's episode-end probability ends a dream when scoring C: 'soft' weights each "
        "step by the survival probability; 'threshold' ends the dream where M says done > 0.5 (a "
        "fuzzy done head otherwise caps every decent controller's dream return near 1 / its floor)",
    )
    done_weight: float = Field(
        default=10.0, ge=0.0,
        description="weight of M's episode-end loss: one bit per step next to ~30 nats of latent NLL, it "
        "would otherwise get little of the LSTM, and the dream's returns hinge on it",
    )
    temperature: float = Field(default=1.0, gt=0.0, description="tau: dream sampling temperature for C's training")
    dream_horizon: int = Field(default=200, ge=1, description="longest dream per candidate")
    dreams: int = Field(default=8, ge=1, description="dreams per CMA-ES candidate")
    generations: int = Field(default=20, ge=1, description="CMA-ES generations per round")
    popsize: int = Field(default=16, ge=2, description="CMA-ES population")
    sigma0: float = Field(default=0.5, gt=0.0, description="CMA-ES initial step size")
    rounds: int = Field(
        default=3, ge=1,
        description="collect -> fit M -> CMA-ES rounds; rounds after the first add round_frames frames "
        "played by the current controller (the paper's iterative training) and refit M on all data",
    )
    round_frames: int = Field(default=2000, ge=1, description="controller frames collected per extra round")
    explore: float = Field(default=0.1, ge=0.0, le=1.0, description="random-action probability while collecting")
    eval_episodes: int = Field(default=5, ge=1, description="real evaluation episodes")
    seed: int = Field(default=0, description="seed of env, networks, CMA-ES and dreams")


# ------------------------------------------------------------------------------------------------
# 1. Collect


def to_frame(rgb: Any, size: int, crop: tuple[float, float, float, float] | None = None) -> Tensor:
    """An ``[H, W, 3]`` uint8 render → ``[3, size, size]`` float in ``[0, 1]`` (optional crop, then
    area downsampling)."""
    x = torch.as_tensor(np.ascontiguousarray(rgb)).permute(2, 0, 1).float()[None] / 255.0
    if crop is not None:
        top, bottom, left, right = crop
        H, W = x.shape[-2:]
        x = x[..., int(top * H) : int(bottom * H), int(left * W) : int(right * W)]
    return F.interpolate(x, size=(size, size), mode="area")[0]


Chooser = Callable[[Tensor, "int | None"], int]
"""Picks an action from the current frame ``[3, S, S]`` and the previous action (``None`` at an
episode's first frame, where a stateful chooser resets)."""


def make_env(config: HSConfig) -> gym.Env[Any, Any]:
    """The task with ``rgb_array`` rendering (headless: pygame needs a runtime dir to exist)."""
    os.environ.setdefault("XDG_RUNTIME_DIR", tempfile.gettempdir())
    return gym.make(config.env, render_mode="rgb_array")


def play_episode(env: gym.Env[Any, Any], config: HSConfig, choose: Chooser, seed: int | None) -> dict[str, Tensor]:
    """One episode: ``frames [T+1, 3, S, S]`` (uint8), ``action [T]``, ``reward [T]``, ``done [T]``
    (1 where the step terminated)."""
    size = config.model.image_size
    env.reset(seed=seed)
    shot = to_frame(env.render(), size, config.crop)
    shots, acts, rews, dones = [shot], [], [], []
    prev: int | None = None
    done = False
    while not done:
        prev = choose(shot, prev)
        _, r, terminated, truncated, _ = env.step(prev)
        shot = to_frame(env.render(), size, config.crop)
        shots.append(shot)
        acts.append(prev)
        rews.append(float(r))
        dones.append(float(terminated))
        done = terminated or truncated
    return {"frames": (torch.stack(shots) * 255).round().to(torch.uint8), "action": torch.tensor(acts),
            "reward": torch.tensor(rews), "done": torch.tensor(dones)}


def collect_episodes(
    env: gym.Env[Any, Any], config: HSConfig, frames: int, choose: Chooser, seed: int | None
) -> list[dict[str, Tensor]]:
    """Whole episodes played by ``choose`` until at least ``frames`` frames."""
    episodes: list[dict[str, Tensor]] = []
    total = 0
    while total < frames:
        episodes.append(play_episode(env, config, choose, seed if not episodes else None))
        total += len(episodes[-1]["frames"])
    return episodes


def random_chooser(env: gym.Env[Any, Any]) -> Chooser:
    """Uniformly random actions from the env's own (seeded) action space."""
    return lambda frame, prev: int(env.action_space.sample())


# ------------------------------------------------------------------------------------------------
# 2-3. Train V, then M


def train_vae(model: VAEMDNRNN, episodes: list[dict[str, Tensor]], config: HSConfig) -> dict[str, float]:
    frames = torch.cat([e["frames"] for e in episodes])
    opt = torch.optim.Adam([*model.encoder.parameters(), *model.to_stats.parameters(), *model.decoder.parameters()],
                           lr=config.lr)
    guard = FiniteGuard("World Models VAE training", config.nonfinite_limit)  # NaN/inf steps skipped
    losses: dict[str, Tensor] = {}
    for _ in range(config.vae_epochs):
        perm = torch.randperm(len(frames))
        for lo in range(0, len(frames), config.vae_batch):
            idx = perm[lo : lo + config.vae_batch]
            losses, _ = model.vae_loss(frames[idx].float() / 255.0)
            total = (losses["recon"] + losses["kl"]).mean()
            opt.zero_grad(set_to_none=True)
            guarded_step(guard, total, opt, [p for g in opt.param_groups for p in g["params"]], what="VAE loss")
    return {f"loss/vae_{k}": float(v.detach().mean()) for k, v in losses.items()}


@torch.no_grad()
def encode_episodes(model: VAEMDNRNN, episodes: list[dict[str, Tensor]]) -> list[tuple[Tensor, Tensor]]:
    """``(mu, logvar)`` of every frame of every episode."""
    return [model.encode(e["frames"].float() / 255.0) for e in episodes]


def _rnn_batch(
    episodes: list[dict[str, Tensor]], stats: list[tuple[Tensor, Tensor]], picks: list[tuple[int, int, int]],
    spec: ActionSpec,
) -> dict[str, Tensor]:
    """Windows ``(episode, start, steps)`` padded to the longest; latents sampled from V's posteriors
    (as in the paper, so M learns V's noise too)."""
    T = max(n for _, _, n in picks)
    Z = stats[0][0].shape[-1]
    B = len(picks)
    batch = {"z": torch.zeros(B, T + 1, Z), "action": torch.zeros(B, T, spec.dim),
             "reward": torch.zeros(B, T), "done": torch.zeros(B, T), "mask": torch.zeros(B, T)}
    for row, (i, lo, n) in enumerate(picks):
        mu, logvar = stats[i][0][lo : lo + n + 1], stats[i][1][lo : lo + n + 1]
        batch["z"][row, : n + 1] = mu + torch.randn_like(mu) * torch.exp(0.5 * logvar)
        batch["action"][row, :n] = spec.one_hot(episodes[i]["action"][lo : lo + n])
        batch["reward"][row, :n] = episodes[i]["reward"][lo : lo + n]
        batch["done"][row, :n] = episodes[i]["done"][lo : lo + n]
        batch["mask"][row, :n] = 1.0
    return batch


def train_rnn(
    model: VAEMDNRNN, episodes: list[dict[str, Tensor]], config: HSConfig, generator: torch.Generator
) -> dict[str, float]:
    """``config.rnn_steps`` Adam steps of M on windows of at most ``rnn_seq`` steps (the LSTM starts
    from zero at each window; half the windows start at the episode's first frame, where the real
    carry starts)."""
    stats = encode_episodes(model, episodes)
    if config.m_on_means:  # a posterior with no spread: _rnn_batch's samples are the means
        stats = [(mu, torch.full_like(logvar, -30.0)) for mu, logvar in stats]
    opt = torch.optim.Adam([*model.rnn.parameters(), *model.mdn.parameters()], lr=config.lr)
    guard = FiniteGuard("World Models MDN-RNN training", config.nonfinite_limit)  # NaN/inf steps skipped
    lengths = [len(e["action"]) for e in episodes]
    metrics: dict[str, float] = {}
    for _ in range(config.rnn_steps):
        picks = []
        for i in torch.randint(len(episodes), (config.rnn_batch,), generator=generator).tolist():
            n = min(lengths[i], config.rnn_seq)
            late = int(torch.randint(2, (), generator=generator))
            lo = int(torch.randint(lengths[i] - n + 1, (), generator=generator)) if late else 0
            picks.append((i, lo, n))
        batch = _rnn_batch(episodes, stats, picks, model.action_spec)
        losses, m = model.rnn_loss(batch)
        n_valid = batch["mask"].sum()
        weights = {"done": config.done_weight}
        total = sum((weights.get(k, 1.0) * v.sum() / n_valid for k, v in losses.items()), torch.zeros(()))
        opt.zero_grad(set_to_none=True)
        guarded_step(guard, total, opt, model.rnn.parameters(), clip=1.0, what="MDN-RNN loss")
        metrics = {**{f"loss/rnn_{k}": float(v.detach().sum() / n_valid) for k, v in losses.items()},
                   **{k: float(v) for k, v in m.items()}}
    return metrics


@torch.no_grad()
def diagnose(model: VAEMDNRNN, episodes: list[dict[str, Tensor]], config: HSConfig, generator: torch.Generator
             ) -> dict[str, float]:
    """How good V and M are, each next to the baseline that knows nothing:

    * ``vae_recon_mse`` per pixel vs ``mean_frame_mse`` (always predicting the average frame);
    * ``done_bce`` of M's episode-end head over the data vs ``done_base_rate_bce`` (a constant);
    * ``dream_random_return``: dreams at ``tau`` under uniformly random actions, from real first
      frames, vs ``real_random_return``: the random-policy episodes' mean return (calibration:
      a controller can only be as good as these agree).
    """
    frames = torch.cat([e["frames"] for e in episodes])
    pick = torch.randperm(len(frames), generator=generator)[:1000]
    x = frames[pick].float() / 255.0
    recon = model.decode(model.encode(x)[0])
    stats = encode_episodes(model, episodes)
    done_sum, n = 0.0, 0
    for lo in range(0, len(episodes), 32):
        idx = list(range(lo, min(lo + 32, len(episodes))))
        # Whole episodes, the LSTM from zero at the first frame, as when acting.
        batch = _rnn_batch(episodes, [(s[0], torch.full_like(s[1], -30.0)) for s in stats],
                           [(i, 0, len(episodes[i]["action"])) for i in idx], model.action_spec)
        losses, _ = model.rnn_loss(batch)
        done_sum += float(losses["done"].sum())
        n += int(batch["mask"].sum())
    rate = float(torch.cat([e["done"] for e in episodes]).mean())
    rate = min(max(rate, 1e-6), 1 - 1e-6)
    starts = torch.stack([s[0][0] for s in stats])
    rows = 256
    carry = {**model.initial(rows), "z": starts[torch.randint(len(starts), (rows,), generator=generator)]}
    spec = model.action_spec
    dream = model.imagine(
        carry, lambda st: spec.one_hot(torch.randint(spec.dim, (rows,), generator=generator)), config.dream_horizon,
        temperature=config.temperature, generator=generator)
    return {
        "vae_recon_mse": float((recon - x).pow(2).mean()), "mean_frame_mse": float((x - x.mean(0)).pow(2).mean()),
        "done_bce": done_sum / max(n, 1),
        "done_base_rate_bce": -(rate * np.log(rate) + (1 - rate) * np.log(1 - rate)),
        "dream_random_return": float(dream.returns(gamma=1.0).mean()),
    }


# ------------------------------------------------------------------------------------------------
# 4. Controller by CMA-ES in the dream


class LinearController:
    """``a = argmax(W [z, h] + b)`` for a batch of parameter vectors (one per row group)."""

    def __init__(self, z_dim: int, hidden: int, spec: ActionSpec) -> None:
        if spec.kind != "discrete":
            raise ValueError("this controller picks discrete actions; the task must have a Discrete space")
        self.in_dim, self.spec = z_dim + hidden, spec
        self.size = self.in_dim * spec.dim + spec.dim

    def unpack(self, params: Tensor) -> tuple[Tensor, Tensor]:
        """``params [P, size]`` → ``W [P, in, A]``, ``b [P, A]``."""
        P, A = params.shape[0], self.spec.dim
        return params[:, : self.in_dim * A].view(P, self.in_dim, A), params[:, self.in_dim * A :]

    def act(self, state: State, w: Tensor, b: Tensor) -> Tensor:
        """One-hot actions for a carry whose rows use ``w [rows, in, A]``, ``b [rows, A]``."""
        x = torch.cat([state["z"], state["h"]], -1)
        logits = torch.einsum("bi,bia->ba", x, w) + b
        return self.spec.one_hot(logits.argmax(-1))


@torch.no_grad()
def dream_fitness(
    model: VAEMDNRNN, controller: LinearController, params: Tensor, starts: Tensor, config: HSConfig,
    generator: torch.Generator,
) -> Tensor:
    """Mean dream return ``[P]`` of each parameter vector over ``config.dreams`` dreams from ``starts``."""
    P, R = params.shape[0], config.dreams
    pick = torch.randint(len(starts), (P * R,), generator=generator)
    state = {"z": starts[pick], **{k: v for k, v in model.initial(P * R).items() if k != "z"}}
    w, b = controller.unpack(params)
    w, b = w.repeat_interleave(R, 0), b.repeat_interleave(R, 0)
    rollout = model.imagine(state, lambda s: controller.act(s, w, b), config.dream_horizon,
                            temperature=config.temperature, generator=generator)
    if config.dream_done == "threshold":
        rollout = dataclasses.replace(rollout, continues=(rollout.continues > 0.5).to(rollout.continues))
    return rollout.returns(gamma=1.0).view(P, R).mean(1)


def train_controller(
    model: VAEMDNRNN, controller: LinearController, starts: Tensor, config: HSConfig, x0: Tensor | None = None
) -> tuple[Tensor, list[float]]:
    """CMA-ES over the controller's parameters (from ``x0``, default zeros), maximising dream
    return; the distribution's mean at the end and the best fitness per generation."""
    start = np.zeros(controller.size) if x0 is None else x0.double().numpy()
    es = cma.CMAEvolutionStrategy(start, config.sigma0,
                                  {"popsize": config.popsize, "seed": config.seed + 1, "verbose": -9})
    gen = torch.Generator().manual_seed(config.seed)
    curve: list[float] = []
    for _ in range(config.generations):
        candidates = es.ask()
        fitness = dream_fitness(model, controller, torch.tensor(np.asarray(candidates), dtype=torch.float32),
                                starts, config, gen)
        es.tell(candidates, (-fitness).tolist())  # cma minimises
        curve.append(float(fitness.max()))
    return torch.tensor(es.result.xfavorite, dtype=torch.float32), curve


# ------------------------------------------------------------------------------------------------
# 5. Real evaluation


def controller_chooser(
    model: VAEMDNRNN, controller: LinearController, params: Tensor, explore: float = 0.0,
    generator: torch.Generator | None = None,
) -> Chooser:
    """Acts with C on ``[z, h]``, advancing M with every real frame; with probability ``explore``
    the action is uniformly random instead (M still sees the action actually taken)."""
    w, b = controller.unpack(params[None])
    spec = controller.spec
    carry: dict[str, State] = {}

    @torch.no_grad()
    def choose(frame: Tensor, prev: int | None) -> int:
        if prev is None:
            carry["s"] = model.observe(frame[None])
        else:
            carry["s"] = model.observe(frame[None], carry["s"], spec.one_hot(torch.tensor([prev])))
        if explore > 0 and float(torch.rand((), generator=generator)) < explore:
            return int(torch.randint(spec.dim, (), generator=generator))
        return int(controller.act(carry["s"], w, b)[0].argmax())

    return choose


@torch.no_grad()
def evaluate(model: VAEMDNRNN, controller: LinearController, params: Tensor | None, config: HSConfig,
             episodes: int, seed: int) -> list[float]:
    """Real returns of the controller (``params=None``: uniformly random actions, the baseline)."""
    env = make_env(config)
    env.action_space.seed(seed)
    choose = random_chooser(env) if params is None else controller_chooser(model, controller, params)
    out = [float(play_episode(env, config, choose, seed + i)["reward"].sum()) for i in range(episodes)]
    env.close()
    return out


def train_world_models(
    config: HSConfig, out: str | Path | None = None, progress: Callable[[dict[str, Any]], None] | None = None
) -> tuple[VAEMDNRNN, Tensor, dict[str, Any]]:
    """The whole pipeline; returns V+M, the controller parameters and a JSON-ready summary.
    ``progress`` gets each round's record (diagnostics, dream curve) as it finishes."""
    start = time.perf_counter()
    torch.manual_seed(config.seed)
    gen = torch.Generator().manual_seed(config.seed)
    env = make_env(config)
    env.action_space.seed(config.seed)
    spec = action_spec_of(env.action_space)
    model = VAEMDNRNN(spec, config.model)
    controller = LinearController(config.model.z_dim, config.model.hidden, spec)
    seconds = {"collect": 0.0, "v": 0.0, "m": 0.0, "c": 0.0}
    # --- 1. collect random episodes ------------------------------------------------------------
    episodes = collect_episodes(env, config, config.frames, random_chooser(env), config.seed)
    real_random = float(np.mean([float(e["reward"].sum()) for e in episodes]))
    seconds["collect"] += time.perf_counter() - start
    # --- 2. V ---------------------------------------------------------------------------------
    t = time.perf_counter()
    metrics = train_vae(model, episodes, config)
    seconds["v"] += time.perf_counter() - t
    params: Tensor | None = None
    rounds: list[dict[str, Any]] = []
    for r in range(config.rounds):
        if r > 0:
            # --- iterative training: play the current controller, with some random actions ------
            assert params is not None
            t = time.perf_counter()
            played = collect_episodes(env, config, config.round_frames,
                                      controller_chooser(model, controller, params, config.explore, gen), None)
            episodes += played
            rounds[-1]["collected_returns"] = [float(e["reward"].sum()) for e in played]
            seconds["collect"] += time.perf_counter() - t
        # --- 3. M on everything collected so far (continuing from the previous round) ----------
        t = time.perf_counter()
        model.train()
        metrics.update(train_rnn(model, episodes, config, gen))
        model.eval()
        seconds["m"] += time.perf_counter() - t
        # --- 4. C in the dream (warm-started from the previous round) -----------------------------
        t = time.perf_counter()
        starts = torch.stack([s[0][0] for s in encode_episodes(model, episodes)])
        params, curve = train_controller(model, controller, starts, config, x0=params)
        seconds["c"] += time.perf_counter() - t
        rounds.append({"round": r + 1, "frames": sum(len(e["frames"]) for e in episodes),
                       **{k: round(v, 4) for k, v in diagnose(model, episodes, config, gen).items()},
                       "dream_return_curve": [round(x, 2) for x in curve]})
        if progress is not None:
            progress({**rounds[-1], "wall_s": round(time.perf_counter() - start, 1)})
    env.close()
    assert params is not None
    # --- 5. real evaluation: the controller and random actions on the same start states --------
    returns = evaluate(model, controller, params, config, config.eval_episodes, seed=10_000 + config.seed)
    random_returns = evaluate(model, controller, None, config, config.eval_episodes, seed=10_000 + config.seed)
    summary: dict[str, Any] = {
        "family": "worldmodels",
        "env": config.env,
        "frames": sum(len(e["frames"]) for e in episodes),
        "episodes": len(episodes),
        "metrics": metrics,
        "rounds": rounds,
        "real_random_return": real_random,
        "dream_return_curve": [x for r in rounds for x in r["dream_return_curve"]],
        "eval_returns": returns,
        "eval_mean_return": float(np.mean(returns)),
        "random_returns": random_returns,
        "random_mean_return": float(np.mean(random_returns)),
        "seconds": {k: round(v, 1) for k, v in seconds.items()},
        "wall_s": round(time.perf_counter() - start, 1),
    }
    if out is not None:
        save_world_models(out, model, params, config)
        summary["out"] = str(out)
    return model, params, summary


def save_world_models(folder: str | Path, model: VAEMDNRNN, params: Tensor, config: HSConfig) -> Path:
    """V+M weights, controller parameters (``controller.safetensors``) and config, atomically."""
    meta = {"family": "worldmodels", "action_spec": {"kind": model.action_spec.kind, "dim": model.action_spec.dim},
            "config": config.model_dump(mode="json")}
    path = save_module(folder, model, meta)
    atomic_write(Path(folder) / "controller.safetensors", lambda tmp: save_file({"params": params.contiguous()}, tmp))
    return path


def load_world_models(folder: str | Path) -> tuple[VAEMDNRNN, Tensor, HSConfig]:
    """Rebuild V+M, the controller parameters and the config of a saved run."""
    meta = load_config(folder)
    if meta.get("family") != "worldmodels":
        raise ValueError(f"{folder} holds a {meta.get('family')!r} checkpoint, not a worldmodels one")
    config = HSConfig(**meta["config"])
    model = VAEMDNRNN(ActionSpec(**meta["action_spec"]), config.model)
    load_weights(folder, model)
    params = load_file(Path(folder) / "controller.safetensors")["params"]
    return model.eval(), params, config
