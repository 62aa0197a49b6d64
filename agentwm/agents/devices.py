"""The ``device`` setting every training config shares: ``auto`` by default, resolved when the
config is built, so the run, ``--print-config`` and the saved ``config.json`` all name the
concrete device (``cuda``, ``mps`` or ``cpu``)."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import AfterValidator, Field

from agentwm.core.device import resolve_device

DeviceName = Annotated[str, AfterValidator(resolve_device)]

DEVICE_HELP = "torch device: auto (CUDA, then MPS, then the CPU), cpu, cuda, cuda:1, mps"


def device_field() -> Any:
    """``Field`` of a config's ``device``: default ``auto``, validated (so resolved) even when left out."""
    return Field("auto", validate_default=True, description=DEVICE_HELP)
