"""Non-finite guards shared by every training loop: skip an update whose loss or gradient is NaN/inf,
count it, and stop the run once ``limit`` updates in a row were skipped (a diverged run must fail
loudly instead of training on and checkpointing garbage)."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import final

import torch
from torch import Tensor, nn

DEFAULT_LIMIT = 20


class NonFiniteError(FloatingPointError):
    """A run diverged: its loss, gradients or weights stayed NaN/inf; the message says what and where."""


def is_finite(*values: Tensor | float | None) -> bool:
    """True when every value (tensors: every element) is finite; ``None`` is ignored. Tensors on
    one device are checked in one reduction (one wait for a GPU, not one per tensor)."""
    flags: dict[torch.device, list[Tensor]] = {}
    for value in values:
        if value is None:
            continue
        if isinstance(value, Tensor):
            flags.setdefault(value.device, []).append(torch.isfinite(value.detach()).all())
        elif not math.isfinite(float(value)):
            return False
    return all(bool(torch.stack(same).all()) for same in flags.values())


def first_nonfinite(tensors: Mapping[str, Tensor] | Iterable[tuple[str, Tensor]]) -> str | None:
    """The name of the first tensor holding a NaN/inf (floating tensors only), or ``None``."""
    items = tensors.items() if isinstance(tensors, Mapping) else tensors
    for name, tensor in items:
        if tensor.is_floating_point() and not bool(torch.isfinite(tensor.detach()).all()):
            return name
    return None


def check_module_finite(module: nn.Module, where: str) -> None:
    """Raise :class:`NonFiniteError` naming the first non-finite parameter or buffer of ``module``
    (called before writing a checkpoint, so no checkpoint ever holds diverged weights)."""
    bad = first_nonfinite(module.state_dict())
    if bad is not None:
        raise NonFiniteError(f"{where}: weight {bad!r} is NaN/inf; not writing a checkpoint from diverged weights")


def check_positive_finite(name: str, value: float) -> float:
    """``value`` when it is a finite number > 0 (learning rates); else a ValueError naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
        raise ValueError(f"{name} must be a finite number > 0, got {value!r}")
    return float(value)


@final
class FiniteGuard:
    """Counts skipped (non-finite) updates of one training loop and stops it after ``limit`` in a row.

    Use: ``if guard.skip("loss", loss): continue`` before the backward pass and
    ``if guard.skip("gradient", grad_norm): opt.zero_grad(); continue`` before ``opt.step()``;
    ``guard.passed()`` after a good step resets the streak.
    """

    def __init__(self, where: str, limit: int = DEFAULT_LIMIT) -> None:
        if limit < 1:
            raise ValueError(f"the non-finite limit must be >= 1, got {limit}")
        self.where, self.limit = where, limit
        self.skipped = 0  # updates skipped over the run (a metric)
        self.streak = 0  # skipped in a row
        self.on_device: Tensor | None = None  # see on_device_tally

    def skip(self, what: str, *values: Tensor | float | None) -> bool:
        """True (and counted) when any of ``values`` is non-finite: the caller skips the update.
        Raises :class:`NonFiniteError` on the ``limit``-th skip in a row."""
        if is_finite(*values):
            return False
        self.skipped += 1
        self.streak += 1
        if self.streak >= self.limit:
            raise NonFiniteError(
                f"{self.where}: {what} was NaN/inf in {self.streak} updates in a row (skipped {self.skipped} "
                "in all); the run diverged: lower the learning rate or check the data"
            )
        return True

    def passed(self) -> None:
        """Record a good update (resets the streak)."""
        self.streak = 0

    # -- counted on the device (CUDA graphs: the host never asks) -----------------------------------

    def on_device_tally(self, device: torch.device) -> Tensor:
        """Start counting on ``device``: ``[skipped over the run, streak, longest streak since the
        last settle]``, updated by :meth:`tally` without a host sync and read by :meth:`settle`.
        Call it before a CUDA graph is captured (a tensor made during capture is reset each replay)."""
        if self.on_device is None or self.on_device.device != device:
            self.on_device = torch.tensor([float(self.skipped), float(self.streak), float(self.streak)], device=device)
        return self.on_device

    def tally(self, bad: Tensor) -> None:
        """Count one update on the device: skipped where ``bad`` (a bool scalar) is True."""
        if self.on_device is None:
            raise RuntimeError("FiniteGuard.tally needs on_device_tally(device) first")
        count = self.on_device
        b = bad.to(count.dtype)
        streak = (count[1] + 1) * b
        count.copy_(torch.stack([count[0] + b, streak, torch.maximum(count[2], streak)]))

    def settle(self) -> None:
        """Read the device tally (one host sync): the run's skip count, and :class:`NonFiniteError`
        if ``limit`` updates in a row were skipped since the last settle."""
        if self.on_device is None:
            return
        skipped, streak, longest = (int(v) for v in self.on_device.tolist())
        self.skipped, self.streak = skipped, streak
        self.on_device[2] = streak
        if longest >= self.limit:
            raise NonFiniteError(
                f"{self.where}: NaN/inf losses or gradients in {longest} updates in a row (skipped "
                f"{skipped} in all); the run diverged: lower the learning rate or check the data"
            )


def guarded_step(
    guard: FiniteGuard,
    loss: Tensor,
    optimizer: torch.optim.Optimizer,
    params: Iterable[Tensor],
    clip: float | None = None,
    what: str = "loss",
) -> bool:
    """``loss.backward()``, optional gradient-norm clip, ``optimizer.step()``, unless the loss or the
    gradient norm is NaN/inf: then the gradients are dropped, the update is counted as skipped (and
    ``guard`` raises after its limit in a row). Returns whether the step was taken."""
    if guard.skip(what, loss):
        optimizer.zero_grad(set_to_none=True)
        return False
    loss.backward()  # type: ignore[no-untyped-call]
    params = [p for p in params if p.grad is not None]
    if clip is not None:
        norm = nn.utils.clip_grad_norm_(params, clip)
    else:
        norm = nn.utils.get_total_norm([p.grad for p in params if p.grad is not None])
    if guard.skip(f"{what} gradient", norm):
        optimizer.zero_grad(set_to_none=True)
        return False
    optimizer.step()
    guard.passed()
    return True
