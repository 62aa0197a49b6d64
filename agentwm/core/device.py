"""Which torch device to run on: ``auto`` picks CUDA, then Apple's MPS, then the CPU, and says which
accelerator once on stderr, so a GPU box trains on its GPU with no flag given and a CPU-only box
runs (and prints) exactly as before."""

from __future__ import annotations

import sys

import torch

AUTO = "auto"
_said: set[str] = set()  # resolutions already reported in this process


def auto_device() -> str:
    """The best device this machine has: ``cuda``, else ``mps``, else ``cpu``."""
    if torch.cuda.is_available():
        return "cuda"
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        return "mps"
    return "cpu"


def device_label(name: str) -> str:
    """``name`` with the accelerator's model where there is one, e.g. ``cuda (NVIDIA H100 80GB HBM3)``."""
    dev = torch.device(name)
    if dev.type == "cuda" and torch.cuda.is_available():
        return f"{name} ({torch.cuda.get_device_name(dev)})"
    return name


def resolve_device(name: str, *, quiet: bool = False) -> str:
    """A concrete torch device name for ``name``: ``auto`` resolves (an accelerator is reported once
    per process on stderr unless ``quiet``; the CPU, as before, silently); any other name is checked
    to be a torch device string and returned.
    Raises ``ValueError`` naming a string torch does not read as a device."""
    if name.strip().lower() == AUTO:
        chosen = auto_device()
        if not quiet and chosen != "cpu" and chosen not in _said:
            _said.add(chosen)
            print(f"agentwm: device auto -> {device_label(chosen)}", file=sys.stderr)
        return chosen
    try:
        torch.device(name)
    except RuntimeError as err:
        raise ValueError(f"not a torch device: {name!r} (auto, cpu, cuda, cuda:1, mps, ...)") from err
    return name
