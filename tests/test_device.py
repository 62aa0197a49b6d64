"""``--device auto``: CUDA, then MPS, then the CPU, said once on stderr, resolved in every config."""

from __future__ import annotations

import json

import pytest
import torch

from agentwm.core import device as device_mod
from agentwm.core.device import auto_device, resolve_device


@pytest.fixture(autouse=True)
def _fresh_said(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(device_mod, "_said", set())


def _no_mps(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)


def test_auto_prefers_cuda_then_mps_then_cpu(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: True)
    assert auto_device() == "cuda"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert auto_device() == "mps"
    _no_mps(monkeypatch)
    assert auto_device() == "cpu"


def test_auto_is_said_once_on_stderr(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    _no_mps(monkeypatch)
    assert resolve_device("auto") == "cpu"
    assert capsys.readouterr().err == ""  # a CPU-only machine: as before, nothing said
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: True)
    assert resolve_device("auto") == "mps"
    assert resolve_device("AUTO") == "mps"
    assert capsys.readouterr().err.count("agentwm: device auto -> mps") == 1  # once per process
    assert resolve_device("cpu") == "cpu" and capsys.readouterr().err == ""  # explicit: nothing said
    with pytest.raises(ValueError, match="not a torch device: 'gpu0'"):
        resolve_device("gpu0")


def test_gpu_label_names_the_gpu(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda dev=None: "NVIDIA Test GPU")
    assert resolve_device("auto") == "cuda"
    assert "device auto -> cuda (NVIDIA Test GPU)" in capsys.readouterr().err


@pytest.mark.parametrize(
    "module, cls",
    [("agentwm.agents.dreamer", "DreamerConfig"), ("agentwm.agents.mpc", "MPCConfig"),
     ("agentwm.agents.mpc.pets", "PETSConfig"), ("agentwm.agents.muzero", "MuZeroConfig"),
     ("agentwm.agents.planet", "PlaNetConfig")],
)  # fmt: skip
def test_configs_default_to_auto_resolved(monkeypatch: pytest.MonkeyPatch, module: str, cls: str) -> None:
    import importlib

    config = getattr(importlib.import_module(module), cls)
    _no_mps(monkeypatch)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert config().device == "cpu"  # a CPU machine: unchanged
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda dev=None: "NVIDIA Test GPU")
    assert config().device == "cuda"  # a GPU machine: the GPU, no flag given
    assert config(device="cpu").device == "cpu"  # an explicit choice stands


def test_print_config_shows_resolved_device(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    from agentwm.cli import main

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda dev=None: "NVIDIA Test GPU")
    assert main(["train", "dreamer", "--print-config"]) == 0
    out = capsys.readouterr()
    assert json.loads(out.out)["device"] == "cuda"
    assert out.err.count("device auto -> cuda") == 1
    assert main(["plan", "--print-config", "--device", "cpu"]) == 0
    assert json.loads(capsys.readouterr().out)["device"] == "cpu"
    assert main(["train", "dreamer", "--device", "gpu0", "--print-config"]) == 2
    assert "not a torch device: 'gpu0'" in capsys.readouterr().err
