"""Acting outside the training loop: env <-> tensor glue, greedy evaluation, loading a trained
agent from its run folder (latest or best checkpoint), and the learning-curve plot.

``evaluate_logdir(logdir)`` evaluates a run as ``agentwm eval dreamer`` does; ``load_agent(logdir)``
returns the agent to act in your own loop (``obs_to_tensor`` and ``action_to_env`` convert).
"""

from __future__ import annotations

import functools
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

import gymnasium as gym
import numpy as np
import torch
from torch import Tensor

from agentwm.agents.dreamer import run_checkpoint as ckpt
from agentwm.agents.dreamer.actor_critic import Mode
from agentwm.agents.dreamer.agent import DreamerAgent
from agentwm.agents.dreamer.best import load_best_weights
from agentwm.agents.dreamer.config import DreamerConfig
from agentwm.checkpoint import CheckpointError, read_json
from agentwm.envs.gym import action_spec_of, make_env
from agentwm.worldmodels.base import ActionSpec

# ------------------------------------------------------------------------------------------------
# Env <-> tensor conversions


def obs_to_tensor(obs: np.ndarray, device: torch.device | str = "cpu") -> Tensor:
    """Env observations ``[N, ...]`` to model input: pixels ``uint8`` -> floats in [0, 1]."""
    t = torch.as_tensor(obs)
    return (t.float() / 255.0 if t.dtype == torch.uint8 else t.float()).to(device)


def action_to_env(action: Tensor, spec: ActionSpec) -> np.ndarray:
    """Agent actions ``[N, A]`` to env actions: indices (discrete) or ``[-1, 1]`` mapped to ``[low, high]``."""
    if spec.kind == "discrete":
        return action.argmax(-1).cpu().numpy()
    unit = action.detach().cpu().numpy().astype(np.float32)
    return (spec.low + (unit + 1.0) * 0.5 * (spec.high - spec.low)).astype(np.float32)


def env_kwargs(cfg: DreamerConfig) -> dict[str, Any]:
    """The env settings of a run's config, as ``make_env`` takes them."""
    return {"pixels": cfg.pixels, "size": cfg.image_size, "action_repeat": cfg.action_repeat,
            "time_limit": cfg.time_limit}  # fmt: skip


def device_problem(name: str) -> str | None:
    """Why torch cannot run on device ``name`` here (a run trained on a GPU, evaluated on a laptop),
    or None when it can."""
    dev = torch.device(name)
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            return "CUDA is not available here (no GPU, or a CPU-only torch build)"
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            return f"this machine has {torch.cuda.device_count()} CUDA device(s)"
    if dev.type == "mps" and not torch.backends.mps.is_available():
        return "MPS is not available here"
    return None


def env_specs(cfg: DreamerConfig) -> tuple[tuple[int, ...], ActionSpec]:
    """Observation shape and action spec of ``cfg.env`` (builds and closes one env)."""
    env = make_env(cfg.env, seed=cfg.seed, **env_kwargs(cfg))
    shape = env.observation_space.shape
    if shape is None or len(shape) not in (1, 3):
        raise ValueError(f"{cfg.env}: Dreamer needs flat vector or (3, S, S) image observations, got {shape}")
    spec = action_spec_of(env.action_space)
    env.close()
    return tuple(shape), spec


# ------------------------------------------------------------------------------------------------
# Evaluation: greedy policy on a separate env


@torch.no_grad()
def evaluate(
    agent: DreamerAgent,
    make: Callable[[], gym.Env[Any, Any]],
    episodes: int,
    seed: int,
    mode: Mode = "eval",
    frames: list[np.ndarray] | None = None,
) -> list[float]:
    """Returns of ``episodes`` full episodes with the agent's ``mode`` policy (seeds ``seed + i``).

    With ``frames``, the first episode's ``env.render()`` frames (the env must render
    ``rgb_array``), one per agent step and shrunk to at most 320 pixels a side, are appended to it.
    """
    from agentwm.agents.dreamer.video import fit_frame

    env = make()
    spec = action_spec_of(env.action_space)
    returns = []
    for i in range(episodes):
        obs, _ = env.reset(seed=seed + i)
        sink = frames if i == 0 else None
        carry, first, total, done = agent.initial_carry(1), True, 0.0, False
        while True:
            if sink is not None:
                sink.append(fit_frame(np.asarray(env.render(), dtype=np.uint8), 320))
            if done:
                break
            flag = torch.tensor([first], device=agent.device)
            action, carry = agent.act(obs_to_tensor(obs[None], agent.device), flag, carry, mode)
            obs, reward, terminated, truncated, _ = env.step(action_to_env(action, spec)[0])
            total, first, done = total + float(reward), False, bool(terminated or truncated)
        returns.append(total)
    env.close()
    return returns


# ------------------------------------------------------------------------------------------------
# Plots of the logged metrics (logging itself: agentwm.agents.dreamer.logger)


def plot_learning_curve(logdir: str | Path) -> Path | None:
    """``learning_curve.png`` from ``metrics.jsonl``: eval and train episode returns over frames."""
    try:
        import matplotlib
    except ImportError:  # the plot extra is optional; metrics.jsonl holds the same numbers
        return None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path = Path(logdir) / "metrics.jsonl"
    if not path.exists():
        return None
    rows = [json.loads(ln) for ln in path.read_text().splitlines() if ln]
    fig, ax = plt.subplots(figsize=(6, 4))
    for key, label in (("eval/return", "eval (greedy)"), ("train/return", "train (sampled)")):
        pts = [(r["frames"], r[key]) for r in rows if key in r]
        if pts:
            ax.plot(*zip(*pts), marker="o" if key.startswith("eval") else None, label=label)
    ax.set_xlabel("env frames")
    ax.set_ylabel("episode return")
    ax.legend()
    ax.grid(alpha=0.3)
    out = Path(logdir) / "learning_curve.png"
    fig.savefig(out, dpi=100, bbox_inches="tight")
    plt.close(fig)
    return out


def eval_preserving_rng(
    agent: DreamerAgent, cfg: DreamerConfig, episodes: int, seed: int, video: Path | None = None
) -> list[float]:
    """Evaluate without disturbing the training run's torch RNG stream (so evaluation settings do
    not change what the agent learns, and resumed runs replay the same stream). With ``video``,
    the first episode is written there (rendering changes neither the episodes nor the RNG)."""
    make = functools.partial(make_env, cfg.env, seed=seed, render=video is not None, **env_kwargs(cfg))
    shots: list[np.ndarray] | None = [] if video is not None else None
    state = torch.get_rng_state()
    torch.manual_seed(seed)
    try:
        returns = evaluate(agent, make, episodes, seed, frames=shots)
    finally:
        torch.set_rng_state(state)
    if video is not None and shots:
        from agentwm.agents.dreamer.video import write_video

        write_video(shots, video, _video_fps(make, cfg.action_repeat))
    return returns


def _video_fps(make: Callable[[], gym.Env[Any, Any]], action_repeat: int) -> float:
    """Frames per second that play an episode at the env's real-time pace (one frame per agent step)."""
    probe = make()
    fps = float(probe.metadata.get("render_fps") or 30) / action_repeat
    probe.close()
    return fps


Which = Literal["latest", "best"]
CHECKPOINTS: tuple[Which, ...] = ("latest", "best")


def load_agent(
    logdir: str | Path, device: str | None = None, checkpoint: Which = "latest"
) -> tuple[DreamerAgent, int]:
    """The agent of a run's newest (``latest``) or best-evaluated (``best``) checkpoint, ready to act
    (``agent.act``), and its frame count. ``device`` defaults to the run's own, or the CPU where that
    one is not available here."""
    if checkpoint not in CHECKPOINTS:
        raise ValueError(f"checkpoint must be one of {', '.join(CHECKPOINTS)}, got {checkpoint!r}")
    logdir = Path(logdir)
    path = logdir / "config.json"
    if not path.is_file():
        raise FileNotFoundError(f"no Dreamer run in {logdir} (missing config.json); train one with `agentwm train dreamer`")
    saved = read_json(path)
    if not isinstance(saved, dict):
        raise CheckpointError(f"{path}: expected a JSON object of Dreamer settings")
    cfg = DreamerConfig(**saved)
    if device is None and device_problem(cfg.device) is not None:
        print(f"agentwm: the run's device {cfg.device!r} is not available here; using the CPU", file=sys.stderr)
        device = "cpu"
    if device is not None:
        problem = device_problem(device)
        if problem is not None:
            raise ValueError(f"device {device!r}: {problem}")
        cfg = cfg.model_copy(update={"device": device})
    obs_shape, spec = env_specs(cfg)
    agent = DreamerAgent(obs_shape, spec, cfg).to(cfg.device)
    if checkpoint == "best":
        frames = int(load_best_weights(logdir, agent, cfg.device)["frames"])
    else:
        frames = ckpt.load_weights_only(logdir, agent, cfg.device)
    return agent.eval(), frames


def evaluate_logdir(
    logdir: str | Path,
    episodes: int = 10,
    seed: int = 12345,
    mode: Mode = "eval",
    video: str | Path | None = None,
    device: str | None = None,
    checkpoint: Which = "latest",
) -> dict[str, Any]:
    """Load the newest (or, with ``checkpoint="best"``, the best-evaluated) checkpoint of a run and
    evaluate it; JSON-ready summary with ``mean_return``.
    With ``video`` (``.gif``, or ``.mp4`` with imageio-ffmpeg), the first episode is written there
    as the env renders it, at the env's real-time pace. ``device`` defaults to the run's own, or
    the CPU where that one is not available here."""
    if isinstance(episodes, bool) or not isinstance(episodes, int) or episodes < 1:
        raise ValueError(f"episodes must be an integer >= 1, got {episodes!r}")
    agent, frames = load_agent(logdir, device, checkpoint)
    cfg = agent.config
    if video is not None:
        from agentwm.agents.dreamer.video import check_video_path

        check_video_path(video)
    torch.manual_seed(seed)
    make = functools.partial(make_env, cfg.env, seed=seed, render=video is not None, **env_kwargs(cfg))
    shots: list[np.ndarray] | None = [] if video is not None else None
    rets = evaluate(agent, make, episodes, seed, mode, frames=shots)
    out = {"env": cfg.env, "checkpoint": checkpoint, "frames": frames, "episodes": episodes,
           "mean_return": float(np.mean(rets)), "std_return": float(np.std(rets)), "returns": rets}  # fmt: skip
    if video is not None and shots is not None:
        from agentwm.agents.dreamer.video import write_video

        out["video"] = str(write_video(shots, video, _video_fps(make, cfg.action_repeat)))
    return out
