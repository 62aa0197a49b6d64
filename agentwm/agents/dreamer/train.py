"""Train a Dreamer agent. Read top to bottom: setup, resume, the loop (act, store, learn, log,
evaluate, checkpoint), wrap-up.

``train(config, logdir)`` runs until ``config.steps`` env frames; ``train(..., resume=True)``
continues from the newest complete checkpoint in ``logdir`` (see ``checkpoint.py``), so a run
killed at any moment loses at most ``checkpoint_every`` frames. SIGINT (Ctrl-C) or SIGTERM (a job
scheduler) loses nothing: the loop finishes its step, checkpoints that frame and returns. Files in
``logdir``: ``config.json``, ``metrics.jsonl`` (one JSON object per log/eval line), ``tb/``
(TensorBoard), ``checkpoints/``, ``learning_curve.png``, for pixel tasks ``openloop.gif`` and, with
``eval_video``, ``videos/eval_<frames>.gif``.
"""

from __future__ import annotations

import functools
import importlib.util
import json
import random
import signal
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, final

import gymnasium as gym
import numpy as np
import torch
from torch import Tensor

from agentwm.agents import env_state
from agentwm.agents.dreamer import distributed as dp
from agentwm.agents.dreamer import run_checkpoint as ckpt
from agentwm.agents.dreamer.agent import DreamerAgent
from agentwm.agents.dreamer.best import BestKeeper
from agentwm.agents.dreamer.config import DreamerConfig, check_resume
from agentwm.agents.dreamer.evaluation import (
    action_to_env,
    device_problem,
    env_kwargs,
    env_specs,
    eval_preserving_rng,
    obs_to_tensor,
    plot_learning_curve,
)
from agentwm.agents.dreamer.logger import NullLogger, RunLogger
from agentwm.agents.replay import SequenceReplay
from agentwm.checkpoint import CheckpointError, read_json
from agentwm.envs.gym import make_vector_env
from agentwm.worldmodels.base import ActionSpec

# ------------------------------------------------------------------------------------------------
# Stopping on request


@final
class _StopRequest:
    """While active, SIGINT and SIGTERM ask the loop to stop instead of killing the run: the step in
    progress finishes, its frame is checkpointed and ``train`` returns. The first signal puts the
    previous handlers back, so a second one acts as usual (Ctrl-C twice quits at once). Python
    delivers signals to the main thread only; elsewhere this does nothing."""

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self) -> None:
        self.signum: int | None = None
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> _StopRequest:
        if threading.current_thread() is threading.main_thread():
            for sig in self.SIGNALS:
                if signal.getsignal(sig) is not signal.SIG_IGN:  # ignored on purpose (e.g. `cmd &`): keep it so
                    self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum: int, frame: Any) -> None:
        self.signum = signum
        self._restore()
        sys.stderr.write(f"\nagentwm: {signal.Signals(signum).name}: checkpointing this frame, then stopping "
                         "(send it again to quit at once)\n")  # fmt: skip

    def _restore(self) -> None:
        for sig, old in self._previous.items():  # None: a handler not set from Python; fall back to default
            signal.signal(sig, old if old is not None else signal.SIG_DFL)
        self._previous = {}

    def __exit__(self, *exc: object) -> None:
        self._restore()


def _update_function(agent: DreamerAgent, cfg: DreamerConfig, data_parallel: bool) -> Callable[[Any], dict[str, Tensor]]:
    """``agent.update``, or its CUDA-graph replay (``cuda_graph``: auto = single-process CUDA runs)."""
    usable = agent.device.type == "cuda" and not data_parallel
    if cfg.cuda_graph == "on" and not usable:
        why = "a data-parallel run" if data_parallel else f"device {agent.device.type}"
        raise ValueError(f"cuda_graph=on needs a single-process run on a CUDA device, not {why}; use cuda_graph=auto")
    if cfg.cuda_graph == "off" or not usable:
        return agent.update
    if cfg.lr_scheduled:  # a captured graph keeps the learning rates it was captured with
        raise ValueError("ac_lr_final or wm_lr_final < 1 needs an eager update: add --set cuda_graph=off")
    if cfg.actor_dynamics > 0:  # the captured update imagines without gradients
        raise ValueError("actor_dynamics > 0 needs an eager update: add --set cuda_graph=off")
    from agentwm.agents.dreamer.graphed import GraphedUpdate

    return GraphedUpdate(agent)


def _random_actions(rng: np.random.Generator, spec: ActionSpec, n: int, device: torch.device) -> Tensor:
    """``[n, A]`` uniformly random actions: one-hot rows (discrete) or ``[-1, 1]`` units (continuous)."""
    if spec.kind == "discrete":
        idx = torch.as_tensor(rng.integers(spec.dim, size=n))
        return torch.nn.functional.one_hot(idx, spec.dim).float().to(device)
    return torch.as_tensor(rng.uniform(-1, 1, (n, spec.dim)), dtype=torch.float32, device=device)


def _make_envs(cfg: DreamerConfig, seed: int) -> gym.vector.SyncVectorEnv | gym.vector.AsyncVectorEnv:
    """The training envs. Worker processes (``async_envs``) are started with SIGINT ignored, which
    they keep: Ctrl-C in a terminal reaches the whole process group, and workers killed by it would
    take the run down before it could checkpoint."""
    spawn = functools.partial(make_vector_env, cfg.env, cfg.num_envs, seed=seed, **env_kwargs(cfg))
    if not cfg.async_envs or threading.current_thread() is not threading.main_thread():
        return spawn(asynchronous=cfg.async_envs)
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        return spawn(asynchronous=True)
    finally:
        signal.signal(signal.SIGINT, previous if previous is not None else signal.SIG_DFL)


# ------------------------------------------------------------------------------------------------
# The training run


def train(
    config: DreamerConfig, logdir: str | Path, resume: bool = False, progress: bool = True, overwrite: bool = False
) -> dict[str, Any]:
    """Train (or resume) a Dreamer agent in ``logdir``; returns a JSON-ready summary.

    A fresh run in a ``logdir`` that already holds a checkpoint is refused unless ``overwrite``
    (which deletes that run's checkpoints and metrics): a forgotten ``resume`` loses nothing.

    A SIGINT or SIGTERM received in the main thread ends the run early with a checkpoint of the
    frame reached; the summary's ``stopped_by`` then names the signal (else it is None)."""
    cfg, logdir = config, Path(logdir)
    ranks, rank_device, owns_group = dp.setup(cfg.device)  # torchrun: one rank of a data-parallel run
    if rank_device != cfg.device:
        cfg = cfg.model_copy(update={"device": rank_device})
    problem = device_problem(cfg.device)
    if problem is not None:
        raise ValueError(f"device {cfg.device!r}: {problem}; train with --device cpu (or --set device=cpu)")
    if cfg.eval_video and not all(importlib.util.find_spec(m) for m in ("imageio", "PIL")):
        raise ValueError("eval_video needs imageio and Pillow: pip install 'agentwm[plot]'")
    if "wandb" in cfg.loggers and importlib.util.find_spec("wandb") is None:
        raise ValueError("loggers=wandb needs the 'wandb' extra: pip install 'agentwm[wandb]'")
    existing = None if resume or overwrite else ckpt.latest(logdir)
    if existing is not None:
        try:
            frames = read_json(existing / "manifest.json")["frames"]
        except (CheckpointError, KeyError, TypeError):
            frames = "?"
        raise ValueError(f"{logdir} already holds a run ({frames} frames checkpointed): resume it (--resume), "
                         "start over there (--overwrite deletes it), or pick another --logdir")  # fmt: skip
    logdir.mkdir(parents=True, exist_ok=True)
    before = ckpt.saved_config(logdir) if resume else None
    if before is not None:  # settings the checkpoint cannot take fail here, before anything starts
        changes = check_resume(before, cfg)
        dp.check_resume_ranks(logdir, ranks)
        if changes and ranks.main:
            print(f"agentwm: resuming {logdir} with changed settings: {'; '.join(changes)}", file=sys.stderr)
    # ---- Setup: seeds, threads, envs, agent, replay --------------------------------------------
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    random.seed(cfg.seed)
    np.random.seed(cfg.seed)
    torch.manual_seed(cfg.seed)
    device = torch.device(cfg.device)
    own = dp.rank_dir(logdir, ranks)  # this rank's checkpoints (rank 0: the run folder)
    rank_seed = cfg.seed + 1000 * ranks.rank  # each rank its own envs, replay draws and samples
    rank_batch_size = dp.rank_batch(cfg.batch_size, ranks)  # this rank's share of the update's sequences
    obs_shape, spec = env_specs(cfg)
    envs = _make_envs(cfg, rank_seed)
    agent = DreamerAgent(obs_shape, spec, cfg).to(device)
    if ranks.active:  # one agent: rank 0's initial weights everywhere, gradients averaged over the ranks
        agent.sync = dp.GradSync(ranks.world_size)
        agent.sync.broadcast_module(agent)
        random.seed(rank_seed)
        np.random.seed(rank_seed)
        torch.manual_seed(rank_seed)
    obs_dtype = np.uint8 if len(obs_shape) == 3 else np.float32
    replay = SequenceReplay(cfg.replay_capacity, cfg.num_envs, obs_shape, agent.action_spec.dim, obs_dtype, rank_seed)
    act_rng = np.random.default_rng(rank_seed + 1)  # random actions during prefill
    n = cfg.num_envs

    # Loop state: everything here is checkpointed. Frames count every rank's env frames.
    loop: dict[str, Any] = {"frames": 0, "episodes": 0, "next_log": cfg.log_every, "next_eval": cfg.eval_every,
                            "next_ckpt": cfg.checkpoint_every, "evals": 0, "world_size": ranks.world_size}  # fmt: skip
    obs, _ = envs.reset(seed=rank_seed)
    is_first, prev_done = np.ones(n, dtype=bool), np.zeros(n, dtype=bool)
    reward_in: np.ndarray = np.zeros(n, dtype=np.float64)
    term_in = np.zeros(n, dtype=bool)
    ep_return, ep_length = np.zeros(n), np.zeros(n, dtype=np.int64)
    carry = agent.initial_carry(n)

    # ---- Resume -------------------------------------------------------------------------------
    resumed_from = None
    best = BestKeeper(logdir, enabled=ranks.main)  # the best-evaluated weights: checkpoints/best
    if resume:
        saved = ckpt.load_latest(own, agent, replay, device, allow_pickle=cfg.pickle_env_state)
        if saved is not None:
            state, resumed_from = saved
            agent.load_optim_state(state["optim"])
            loop = {**state["loop"], "world_size": ranks.world_size}
            best.resume(loop)
            torch.set_rng_state(state["rng"]["torch"])
            np.random.set_state(state["rng"]["numpy"])
            random.setstate(state["rng"]["python"])
            act_rng.bit_generator.state = state["rng"]["act"]
            carry = {k: v.to(device) for k, v in state["carry"].items()}
            exact = isinstance(envs, gym.vector.SyncVectorEnv) and (
                state.get("envs") is not None or state.get("envs_pickle") is not None)
            if exact:  # exact env state (in-process envs: classic control as data, others opted-in pickles)
                assert isinstance(envs, gym.vector.SyncVectorEnv)
                if state.get("envs") is not None:
                    env_state.restore(envs, state["envs"])
                else:
                    ckpt.restore_envs(envs, state["envs_pickle"])
                obs, is_first, prev_done = state["obs"], state["is_first"], state["prev_done"]
                reward_in, term_in = state["reward_in"], state["term_in"]
                ep_return, ep_length = state["ep_return"], state["ep_length"]
            # else: envs restart fresh episodes (their first rows are marked is_first)
    else:
        ckpt.clear(own)
    if ranks.main:
        (logdir / "config.json").write_text(json.dumps(cfg.model_dump(), indent=2))
    resume_frames = loop["frames"] if resumed_from is not None else None
    logger: RunLogger | NullLogger = NullLogger()  # rank 0 writes the run's metrics
    if ranks.main:
        logger = RunLogger(logdir, resume_frames, cfg.loggers, cfg.model_dump(mode="json"), cfg.wandb_project)

    def save_checkpoint() -> None:
        state = {
            "optim": agent.optim_state(), "loop": dict(loop), "carry": {k: v.cpu() for k, v in carry.items()},
            "rng": {"torch": torch.get_rng_state(), "numpy": np.random.get_state(), "python": random.getstate(),
                    "act": act_rng.bit_generator.state},
            "envs": env_state.capture(envs), "obs": obs, "is_first": is_first, "prev_done": prev_done,
            "reward_in": reward_in, "term_in": term_in,
            "ep_return": ep_return, "ep_length": ep_length,
        }  # fmt: skip
        blob = ckpt.pickle_envs(envs) if cfg.pickle_env_state and state["envs"] is None else None
        if ranks.active:  # the other ranks first: rank 0's `latest` marks a checkpoint every rank has
            if not ranks.main:
                ckpt.save(own, loop["frames"], agent, state, replay, cfg.keep_checkpoints, envs_pickle=blob)
            dp.GradSync.barrier()
            if not ranks.main:
                return
        ckpt.save(own, loop["frames"], agent, state, replay, cfg.keep_checkpoints, envs_pickle=blob)
        best.commit(loop)

    from tqdm import tqdm

    bar = tqdm(total=cfg.steps, initial=loop["frames"], disable=not progress or not ranks.main, unit="frame",
               dynamic_ncols=True)  # fmt: skip
    pending: list[dict[str, Tensor]] = []
    train_returns: list[float] = []
    t_last, frames_last, updates_last = time.perf_counter(), loop["frames"], agent.updates
    per_iter = n * cfg.action_repeat * ranks.world_size
    start_time = time.perf_counter()

    update = _update_function(agent, cfg, ranks.active)

    def learn(frames: int) -> None:
        """The updates due by ``frames``: frames since prefill x train_ratio / (batch_size x batch_length)."""
        if frames >= cfg.prefill and replay.can_sample(cfg.batch_length):
            due = int((frames - cfg.prefill) * cfg.updates_per_frame) + 1
            if cfg.lr_scheduled:  # a function of the frame count alone: resumes repeat it
                done = min(1.0, (frames - cfg.prefill) / max(cfg.steps - cfg.prefill, 1))
                agent.scale_lr(1.0 - (1.0 - cfg.wm_lr_final) * done, 1.0 - (1.0 - cfg.ac_lr_final) * done)
            while agent.updates < due:
                rows = replay.sample(rank_batch_size, cfg.batch_length, device, cfg.replay_terminal_fraction)
                pending.append(update(rows))

    # ---- The loop ----------------------------------------------------------------------------
    last_eval = "-"  # the newest greedy eval return, shown beside the training return
    with _StopRequest() as stop:  # Ctrl-C / SIGTERM: finish the step, checkpoint it, stop
        while loop["frames"] < cfg.steps:
            # Store the row of the current obs: (obs, action that led to it, its reward, is_first, is_terminal).
            # A first obs gets a zero action and reward (the RSSM ignores them at is_first).
            led_to = np.where(is_first[:, None], 0.0, carry["action"].cpu().numpy())
            replay.add(obs, led_to, np.where(is_first, 0.0, reward_in), is_first, term_in & ~is_first)

            # Act: the policy folds obs into its carry every step (also during prefill, so the carry is warm).
            obs_t = obs_to_tensor(obs, device)
            action, carry = agent.act(obs_t, torch.as_tensor(is_first, device=device), carry, "explore")
            if loop["frames"] < cfg.prefill:  # uniformly random actions
                action = _random_actions(act_rng, spec, n, device)
                carry["action"] = action
            elif cfg.explore_epsilon > 0:  # some of them random (drawn only when on: runs without stay the same)
                swap = torch.as_tensor(act_rng.random(n) < cfg.explore_epsilon, device=device)[:, None]
                action = torch.where(swap, _random_actions(act_rng, spec, n, device), action)
                carry["action"] = action

            # Step, overlapped with learning. Autoreset is NEXT_STEP: an env that reported done on the
            # previous step ignores this action and returns the first obs of a new episode (reward 0).
            # The updates due at this step read only rows already in replay, so they can run while worker
            # processes step the envs (async_envs) or before in-process envs step: the same run either way.
            env_action = action_to_env(action, spec)
            if isinstance(envs, gym.vector.AsyncVectorEnv):
                envs.step_async(env_action)
                learn(loop["frames"] + per_iter)
                obs, reward_in, terminated, truncated, _ = envs.step_wait()
            else:
                learn(loop["frames"] + per_iter)
                obs, reward_in, terminated, truncated, _ = envs.step(env_action)
            is_first, term_in = prev_done, np.asarray(terminated, dtype=bool)
            prev_done = np.logical_or(terminated, truncated)
            ep_return += reward_in
            ep_length += ~is_first
            for i in np.flatnonzero(prev_done):
                train_returns.append(float(ep_return[i]))
                loop["episodes"] += 1
                ep_return[i], ep_length[i] = 0.0, 0
            loop["frames"] += per_iter
            bar.update(per_iter)

            # Log: averaged metrics, episode returns, speeds.
            if loop["frames"] >= loop["next_log"]:
                loop["next_log"] += cfg.log_every
                now = time.perf_counter()
                values: dict[str, float] = {}
                if pending:  # skipped (non-finite) updates report only guard/ keys
                    keys = dict.fromkeys(k for m in pending for k in m)
                    values = {k: float(torch.stack([m[k] for m in pending if k in m]).mean()) for k in keys}
                if train_returns:
                    values["train/return"] = float(np.mean(train_returns))
                values["charts/fps"] = (loop["frames"] - frames_last) / max(now - t_last, 1e-9)
                values["charts/ups"] = (agent.updates - updates_last) / max(now - t_last, 1e-9)
                values["charts/updates"] = agent.updates
                values["charts/episodes"] = loop["episodes"]  # this rank's (data-parallel: rank 0's)
                if ranks.active:
                    values["dist/world_size"] = ranks.world_size
                if cfg.lr_scheduled:  # the schedule's current rates
                    values["charts/wm_lr"] = agent.wm_opt.param_groups[0]["lr"]
                    values["charts/actor_lr"] = agent.actor_opt.param_groups[0]["lr"]
                logger.write(loop["frames"], values)
                bar.set_postfix(fps=f"{values['charts/fps']:.0f}", ups=f"{values['charts/ups']:.1f}",
                                ret=f"{values.get('train/return', float('nan')):.1f}", eval=last_eval)
                pending, train_returns = [], []
                t_last, frames_last, updates_last = now, loop["frames"], agent.updates

            # Evaluate: greedy policy on its own env.
            if loop["frames"] >= loop["next_eval"] or loop["frames"] >= cfg.steps:
                loop["next_eval"] += cfg.eval_every
                loop["evals"] += 1
                if ranks.main:  # the weights are the same on every rank
                    video = logdir / "videos" / f"eval_{loop['frames']:010d}.gif" if cfg.eval_video else None
                    eval_seed = cfg.seed + 10_000 * loop["evals"]
                    rets = eval_preserving_rng(agent, cfg, cfg.eval_episodes, eval_seed, video)
                    best.offer(agent, loop, rets, eval_seed)  # a new best: checkpoints/best names its weights
                    scores = {"eval/return": float(np.mean(rets)), "eval/return_std": float(np.std(rets))}
                    if agent.average_actor is not None:  # what averaging changed: the actor itself, same episodes
                        agent.eval_online = True
                        try:
                            scores["eval/online_return"] = float(np.mean(eval_preserving_rng(
                                agent, cfg, cfg.eval_episodes, eval_seed)))  # fmt: skip
                        finally:
                            agent.eval_online = False
                    logger.write(loop["frames"], scores)
                    last_eval = f"{np.mean(rets):.1f}"

            # Checkpoint: every checkpoint_every frames, at the end, and when asked to stop.
            due = loop["frames"] >= loop["next_ckpt"]
            if due:
                loop["next_ckpt"] += cfg.checkpoint_every
            stopping = stop.signum is not None
            if agent.sync is not None:  # a signal seen by any rank stops every rank at this frame
                stopping = agent.sync.any(stopping, device)
            if due or loop["frames"] >= cfg.steps or stopping:
                save_checkpoint()
            if stopping:
                break

    # ---- Wrap-up ------------------------------------------------------------------------------
    bar.close()
    logger.close()
    envs.close()
    if agent.sync is not None:
        dp.GradSync.barrier()  # rank 0's metrics are complete: every rank's summary reads them
    if owns_group:
        dp.teardown()
    if ranks.main:
        plot_learning_curve(logdir)
    if cfg.pixels and ranks.main:
        from agentwm.agents.dreamer.video import write_openloop

        try:
            write_openloop(agent, replay, logdir / "openloop.gif")
        except ImportError:
            print("agentwm: imageio not installed (pip install 'agentwm[plot]'); no open-loop GIF", file=sys.stderr)
    rows = [json.loads(ln) for ln in (logdir / "metrics.jsonl").read_text().splitlines() if ln]
    evals = [r["eval/return"] for r in rows if "eval/return" in r]
    best_at = next((r["frames"] for r in rows if evals and r.get("eval/return") == max(evals)), None)
    return {
        "env": cfg.env, "frames": loop["frames"], "updates": agent.updates, "episodes": loop["episodes"],
        "eval_return": evals[-1] if evals else None, "best_eval_return": max(evals) if evals else None,
        "best_eval_frames": best_at,
        "best_checkpoint": str(best.root / "best") if loop.get("best_frames") is not None else None,
        "wall_s": round(time.perf_counter() - start_time, 1), "resumed_from": resumed_from, "logdir": str(logdir),
        "stopped_by": signal.Signals(stop.signum).name if stop.signum is not None else None,
        "world_size": ranks.world_size,
    }  # fmt: skip
