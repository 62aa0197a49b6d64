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

import time
from pathlib import Path
from typing import Any

import cma
import gymnasium as gym
import numpy as np
import torch
import torch.nn.functional as F
from pydantic import BaseModel, ConfigDict, Field
from torch import Tensor

from agentwm.agents.envs import action_spec_of
from agentwm.checkpoint import atomic_write, load_config, load_weights, save_module
from agentwm.worldmodels.base import ActionSpec, State
from agentwm.worldmodels.vae_mdnrnn import VAEMDNRNN, VAEMDNConfig


class HSConfig(BaseModel):
    """Settings of a World Models run; ``agentwm train worldmodels`` flags map to these fields."""

    model_config = ConfigDict(frozen=True, extra="forbid")

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
    rnn_epochs: int = Field(default=30, ge=1, description="passes of M over the episodes")
    rnn_batch: int = Field(default=32, ge=1, description="episodes per M step")
    lr: float = Field(default=1e-3, gt=0.0, description="Adam learning rate of V and M")
    temperature: float = Field(default=1.0, gt=0.0, description="tau: dream sampling temperature for C's training")
    dream_horizon: int = Field(default=200, ge=1, description="longest dream per candidate")
    dreams: int = Field(default=8, ge=1, description="dreams per CMA-ES candidate")
    generations: int = Field(default=20, ge=1, description="CMA-ES generations")
    popsize: int = Field(default=16, ge=2, description="CMA-ES population")
    sigma0: float = Field(default=0.5, gt=0.0, description="CMA-ES initial step size")
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


def collect_episodes(
    env_id: str, frames: int, size: int, seed: int, crop: tuple[float, float, float, float] | None = None
) -> list[dict[str, Tensor]]:
    """Random-policy episodes until ``frames`` frames: per episode ``frames [T+1, 3, S, S]`` (uint8),
    ``action [T]``, ``reward [T]``, ``done [T]`` (1 where the step terminated)."""
    env = gym.make(env_id, render_mode="rgb_array")
    env.action_space.seed(seed)
    episodes: list[dict[str, Tensor]] = []
    total, first = 0, True
    while total < frames:
        env.reset(seed=seed if first else None)
        first = False
        shots = [to_frame(env.render(), size, crop)]
        acts, rews, dones = [], [], []
        done = False
        while not done:
            a = int(env.action_space.sample())
            _, r, terminated, truncated, _ = env.step(a)
            shots.append(to_frame(env.render(), size, crop))
            acts.append(a)
            rews.append(float(r))
            dones.append(float(terminated))
            done = terminated or truncated
        episodes.append({
            "frames": (torch.stack(shots) * 255).round().to(torch.uint8),
            "action": torch.tensor(acts), "reward": torch.tensor(rews), "done": torch.tensor(dones),
        })
        total += len(shots)
    env.close()
    return episodes


# ------------------------------------------------------------------------------------------------
# 2-3. Train V, then M


def train_vae(model: VAEMDNRNN, episodes: list[dict[str, Tensor]], config: HSConfig) -> dict[str, float]:
    frames = torch.cat([e["frames"] for e in episodes])
    opt = torch.optim.Adam([*model.encoder.parameters(), *model.to_stats.parameters(), *model.decoder.parameters()],
                           lr=config.lr)
    losses: dict[str, Tensor] = {}
    for _ in range(config.vae_epochs):
        perm = torch.randperm(len(frames))
        for lo in range(0, len(frames), config.vae_batch):
            idx = perm[lo : lo + config.vae_batch]
            losses, _ = model.vae_loss(frames[idx].float() / 255.0)
            total = (losses["recon"] + losses["kl"]).mean()
            opt.zero_grad(set_to_none=True)
            total.backward()  # type: ignore[no-untyped-call]
            opt.step()
    return {f"loss/vae_{k}": float(v.detach().mean()) for k, v in losses.items()}


@torch.no_grad()
def encode_episodes(model: VAEMDNRNN, episodes: list[dict[str, Tensor]]) -> list[tuple[Tensor, Tensor]]:
    """``(mu, logvar)`` of every frame of every episode."""
    return [model.encode(e["frames"].float() / 255.0) for e in episodes]


def _rnn_batch(
    episodes: list[dict[str, Tensor]], stats: list[tuple[Tensor, Tensor]], idx: list[int], spec: ActionSpec
) -> dict[str, Tensor]:
    T = max(len(episodes[i]["action"]) for i in idx)
    Z = stats[0][0].shape[-1]
    batch = {"z": torch.zeros(len(idx), T + 1, Z), "action": torch.zeros(len(idx), T, spec.dim),
             "reward": torch.zeros(len(idx), T), "done": torch.zeros(len(idx), T), "mask": torch.zeros(len(idx), T)}
    for row, i in enumerate(idx):
        mu, logvar = stats[i]
        n = len(episodes[i]["action"])
        batch["z"][row, : n + 1] = mu + torch.randn_like(mu) * torch.exp(0.5 * logvar)  # sampled, as in the paper
        batch["action"][row, :n] = spec.one_hot(episodes[i]["action"])
        batch["reward"][row, :n] = episodes[i]["reward"]
        batch["done"][row, :n] = episodes[i]["done"]
        batch["mask"][row, :n] = 1.0
    return batch


def train_rnn(model: VAEMDNRNN, episodes: list[dict[str, Tensor]], config: HSConfig) -> dict[str, float]:
    stats = encode_episodes(model, episodes)
    opt = torch.optim.Adam([*model.rnn.parameters(), *model.mdn.parameters()], lr=config.lr)
    metrics: dict[str, float] = {}
    for _ in range(config.rnn_epochs):
        perm = torch.randperm(len(episodes)).tolist()
        for lo in range(0, len(episodes), config.rnn_batch):
            batch = _rnn_batch(episodes, stats, perm[lo : lo + config.rnn_batch], model.action_spec)
            losses, m = model.rnn_loss(batch)
            n = batch["mask"].sum()
            total = sum((v.sum() / n for v in losses.values()), torch.zeros(()))
            opt.zero_grad(set_to_none=True)
            total.backward()  # type: ignore[no-untyped-call]
            torch.nn.utils.clip_grad_norm_(model.rnn.parameters(), 1.0)
            opt.step()
            metrics = {**{f"loss/rnn_{k}": float(v.detach().sum() / n) for k, v in losses.items()},
                       **{k: float(v) for k, v in m.items()}}
    return metrics


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
    return rollout.returns(gamma=1.0).view(P, R).mean(1)


def train_controller(
    model: VAEMDNRNN, controller: LinearController, starts: Tensor, config: HSConfig
) -> tuple[Tensor, list[float]]:
    """CMA-ES over the controller's parameters, maximising dream return; best mean and the curve."""
    es = cma.CMAEvolutionStrategy(np.zeros(controller.size), config.sigma0,
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


@torch.no_grad()
def evaluate(model: VAEMDNRNN, controller: LinearController, params: Tensor | None, config: HSConfig,
             episodes: int, seed: int) -> list[float]:
    """Real returns of the controller (``params=None``: uniformly random actions, the baseline)."""
    env = gym.make(config.env, render_mode="rgb_array")
    env.action_space.seed(seed)
    size = config.model.image_size
    w, b = controller.unpack(params[None]) if params is not None else (None, None)
    out = []
    for i in range(episodes):
        env.reset(seed=seed + i)
        state = model.observe(to_frame(env.render(), size, config.crop)[None])
        done, total = False, 0.0
        while not done:
            if w is None or b is None:
                action = controller.spec.one_hot(torch.tensor([int(env.action_space.sample())]))
            else:
                action = controller.act(state, w, b)
            _, r, terminated, truncated, _ = env.step(int(action[0].argmax()))
            state = model.observe(to_frame(env.render(), size, config.crop)[None], state, action)
            total += float(r)
            done = terminated or truncated
        out.append(total)
    env.close()
    return out


def train_world_models(config: HSConfig, out: str | Path | None = None) -> tuple[VAEMDNRNN, Tensor, dict[str, Any]]:
    """The whole pipeline; returns V+M, the controller parameters and a JSON-ready summary."""
    start = time.perf_counter()
    torch.manual_seed(config.seed)
    spec = action_spec_of(gym.make(config.env).action_space)
    model = VAEMDNRNN(spec, config.model)
    # --- 1. collect ---------------------------------------------------------------------------
    episodes = collect_episodes(config.env, config.frames, config.model.image_size, config.seed, config.crop)
    t_collect = time.perf_counter() - start
    # --- 2-3. V then M ------------------------------------------------------------------------
    metrics = train_vae(model, episodes, config)
    metrics.update(train_rnn(model, episodes, config))
    model.eval()
    t_models = time.perf_counter() - start - t_collect
    # --- 4. C in the dream -------------------------------------------------------------------
    controller = LinearController(config.model.z_dim, config.model.hidden, spec)
    starts = torch.stack([encode_episodes(model, [e])[0][0][0] for e in episodes])
    params, curve = train_controller(model, controller, starts, config)
    # --- 5. real evaluation ------------------------------------------------------------------
    returns = evaluate(model, controller, params, config, config.eval_episodes, seed=10_000 + config.seed)
    random_returns = evaluate(model, controller, None, config, config.eval_episodes, seed=10_000 + config.seed)
    summary: dict[str, Any] = {
        "family": "worldmodels",
        "env": config.env,
        "frames": sum(len(e["frames"]) for e in episodes),
        "episodes": len(episodes),
        "metrics": metrics,
        "dream_return_curve": [round(x, 2) for x in curve],
        "eval_returns": returns,
        "eval_mean_return": float(np.mean(returns)),
        "random_mean_return": float(np.mean(random_returns)),
        "seconds": {"collect": round(t_collect, 1), "v_and_m": round(t_models, 1)},
        "wall_s": round(time.perf_counter() - start, 1),
    }
    if out is not None:
        save_world_models(out, model, params, config)
        summary["out"] = str(out)
    return model, params, summary


def save_world_models(folder: str | Path, model: VAEMDNRNN, params: Tensor, config: HSConfig) -> Path:
    """V+M weights (safetensors), controller parameters (``controller.pt``) and config, atomically."""
    meta = {"family": "worldmodels", "action_spec": {"kind": model.action_spec.kind, "dim": model.action_spec.dim},
            "config": config.model_dump(mode="json")}
    path = save_module(folder, model, meta)
    atomic_write(Path(folder) / "controller.pt", lambda tmp: torch.save(params.clone(), tmp))
    return path


def load_world_models(folder: str | Path) -> tuple[VAEMDNRNN, Tensor, HSConfig]:
    """Rebuild V+M, the controller parameters and the config of a saved run."""
    meta = load_config(folder)
    if meta.get("family") != "worldmodels":
        raise ValueError(f"{folder} holds a {meta.get('family')!r} checkpoint, not a worldmodels one")
    config = HSConfig(**meta["config"])
    model = VAEMDNRNN(ActionSpec(**meta["action_spec"]), config.model)
    load_weights(folder, model)
    params = torch.load(Path(folder) / "controller.pt", weights_only=True)
    return model.eval(), params, config
