"""Where one Dreamer update's kernels go: counts (and device time) per phase of ``DreamerAgent.update``.

A replayed CUDA graph costs about its kernel count times a few microseconds, so knowing which phase
launches them says what to fuse next. The phases are marked from outside the agent (its methods and
``Tensor.backward`` wrapped in profiler ranges for one call), so the training code carries no
profiling hooks; every launch is given to the phase whose range holds the op that launched it
(backward ops run on autograd's own thread, inside the range of the ``backward()`` call). On the
CPU the same table counts the ATen ops that do the work (ops with no ATen op below them).
"""

from __future__ import annotations

import itertools
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import torch
from torch import nn
from torch.autograd import DeviceType  # type: ignore[attr-defined]
from torch.profiler import ProfilerActivity, profile, record_function

from agentwm.agents.dreamer import DreamerAgent

_TAG = "phase:"
BACKWARD_NAMES = (
    "wm_backward",
    "actor_backward",
    "critic_backward",
)  # the update's three backward calls, in order


def _wrap(fn: Callable[..., Any], label: str | Callable[[], str]) -> Callable[..., Any]:
    def wrapped(*args: Any, **kwargs: Any) -> Any:
        with record_function(_TAG + (label if isinstance(label, str) else label())):
            return fn(*args, **kwargs)

    return wrapped


@contextmanager
def _marked(agent: DreamerAgent) -> Iterator[None]:
    """Profiler ranges around the update's phases, for the duration of the block."""
    names = itertools.cycle(BACKWARD_NAMES)
    saved: list[tuple[Any, str, Any, bool]] = []

    def patch(obj: Any, attr: str, label: str | Callable[[], str]) -> None:
        own = attr in vars(obj)
        saved.append((obj, attr, vars(obj).get(attr), own))
        setattr(obj, attr, _wrap(getattr(obj, attr), label))

    patch(agent.wm, "loss", "wm_forward")
    patch(agent.wm, "imagine", "imagine")
    patch(agent.actor, "log_prob_entropy", "actor_forward")
    patch(agent.critic.twohot, "loss", "critic_loss")
    patch(torch.Tensor, "backward", lambda: next(names))
    patch(nn.utils, "clip_grad_norm_", "clip_grad_norm")
    for name in ("wm_opt", "actor_opt", "critic_opt"):
        patch(getattr(agent, name), "step", name.replace("_opt", "_adam"))
    try:
        yield
    finally:
        for obj, attr, old, own in reversed(saved):
            if own:
                setattr(obj, attr, old)
            else:
                delattr(obj, attr)


def phase_table(agent: DreamerAgent, batch: dict[str, torch.Tensor], top: int = 6) -> dict[str, dict[str, Any]]:
    """``{phase: {"launches": n, "device_ms": t, "top": {name: n}}}`` for one ``agent.update(batch)``,
    ``top`` naming the most frequent kernels (ops on the CPU); ``other`` holds what no phase range
    covers (returns, normaliser, critic forward, EMA, metrics)."""
    cuda = agent.device.type == "cuda"
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if cuda else [])
    with _marked(agent), profile(activities=activities) as prof:
        agent.update(batch)
        if cuda:
            torch.cuda.synchronize()
    events = list(prof.events())
    ranges = sorted(
        (e.time_range.start, e.time_range.end, e.name[len(_TAG) :]) for e in events if e.name.startswith(_TAG)
    )

    def phase_at(t: float) -> str:
        inner = [r for r in ranges if r[0] <= t <= r[1]]
        return min(inner, key=lambda r: r[1] - r[0])[2] if inner else "other"

    table: dict[str, dict[str, float]] = {}
    names: dict[str, Counter[str]] = {}
    for e in events:
        if e.name.startswith(_TAG) or e.device_type != DeviceType.CPU:
            continue
        if cuda:
            launched = [k.name[:60] for k in e.kernels]
            ms = sum(k.duration for k in e.kernels) / 1e3
        else:  # the ops that do the work: ATen ops with no ATen op below them
            leaf = e.name.startswith("aten::") and not any(c.name.startswith("aten::") for c in e.cpu_children)
            launched, ms = ([e.name] if leaf else []), (e.self_cpu_time_total / 1e3 if leaf else 0.0)
        if launched:
            phase = phase_at(e.time_range.start)
            row = table.setdefault(phase, {"launches": 0, "device_ms": 0.0})
            row["launches"] += len(launched)
            row["device_ms"] += ms
            names.setdefault(phase, Counter()).update(launched)
    return {k: {"launches": int(v["launches"]), "device_ms": round(v["device_ms"], 3),
                "top": dict(names[k].most_common(top))}
            for k, v in sorted(table.items(), key=lambda kv: -kv[1]["launches"])}  # fmt: skip
