"""GPU readiness checked on the CPU: the Dreamer update asks the device for values (a host-device
sync on a GPU) only where it must: the non-finite guard's three checks, which decide whether to step.

Counted: every call of a Tensor method that copies a value to the host, during one update on the
CPU, by caller. Allowed, because they are not device syncs on a GPU: Adam's step counters (torch
keeps them on the host for non-fused, non-capturable Adam) and the input checks of
``check_tensor``, which on CUDA run as an asynchronous device-side assert instead."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest
import torch

from agentwm.agents.dreamer import DreamerAgent, resolve_config
from agentwm.worldmodels.base import ActionSpec
from tests.dreamer_fakes import vector_batch

pytestmark = pytest.mark.usefixtures("one_thread")

# Tensor methods that copy a value to the host (each one waits for the device on a GPU)
SYNCS = ("item", "tolist", "cpu", "numpy", "__bool__", "__float__", "__int__", "__index__")
GUARD_CHECKS = 3  # world-model, actor and critic: each loss and gradient norm in one check


def _count_syncs(monkeypatch: pytest.MonkeyPatch, fn: Callable[[], Any]) -> Counter[str]:
    """Calls of each host-copying Tensor method while ``fn`` runs, by the caller's file:function."""
    import inspect

    seen: Counter[str] = Counter()
    for name in SYNCS:
        original = getattr(torch.Tensor, name)

        def counted(self: torch.Tensor, *args: Any, _name: str = name, _orig: Any = original, **kw: Any) -> Any:
            caller = inspect.stack(context=0)[1]
            seen[f"{_name} in {caller.filename.rsplit('/', 1)[-1]}:{caller.function}"] += 1
            return _orig(self, *args, **kw)

        monkeypatch.setattr(torch.Tensor, name, counted)
    fn()
    monkeypatch.undo()
    return seen


@pytest.mark.parametrize("kind", ["discrete", "continuous"])
def test_update_syncs_only_in_the_guard(monkeypatch: pytest.MonkeyPatch, kind: str) -> None:
    torch.manual_seed(0)
    cfg = resolve_config(["debug"], ["device=cpu", "horizon=4"])
    agent = DreamerAgent((4,), ActionSpec(kind, 2), cfg)  # type: ignore[arg-type]
    batch = vector_batch()
    if kind == "continuous":
        batch["action"] = torch.rand(4, 8, 2) * 2 - 1
    agent.update(batch)  # warm-up: lazy initialisations
    seen = _count_syncs(monkeypatch, lambda: agent.update(batch))
    host_only = ("optimizer.py:_get_value", "base.py:check_tensor")  # see the module docstring
    guard = {k: v for k, v in seen.items() if "finite.py" in k}
    outside = {k: v for k, v in seen.items() if k not in guard and not k.endswith(host_only)}
    assert outside == {}, f"host-device syncs in the update outside the guard: {outside}"
    assert sum(guard.values()) == GUARD_CHECKS, seen


def test_counter_sees_a_sync(monkeypatch: pytest.MonkeyPatch) -> None:
    x = torch.ones(3)
    seen = _count_syncs(monkeypatch, lambda: (x.sum().item(), bool(x.all()), x.tolist()))
    assert sum(seen.values()) == 3
