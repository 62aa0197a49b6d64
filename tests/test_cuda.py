"""The CUDA paths, on a real GPU: skipped on machines without one (CI), run where one is lent.

What a CPU-only machine cannot check: that the update runs on the GPU in bf16 and stays finite,
that replay batches reach the GPU through pinned memory, that the GPU imagines what the CPU
imagines, and that a user who gives no ``--device`` trains on the GPU."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from agentwm.agents.dreamer import DreamerAgent, resolve_config
from agentwm.agents.replay import SequenceReplay
from agentwm.worldmodels.base import ActionSpec

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")

FAST = ["log_every=50", "eval_episodes=1", "train_ratio=16", "prefill=100"]


def _agent(device: str, amp: str = "auto") -> DreamerAgent:
    torch.manual_seed(0)
    cfg = resolve_config(["debug"], ["batch_size=4", "batch_length=16", f"amp={amp}"], device=device)
    return DreamerAgent((4,), ActionSpec("discrete", 2), cfg).to(torch.device(device))


def _replay() -> SequenceReplay:
    rng = np.random.default_rng(0)
    replay = SequenceReplay(512, 1, (4,), 2, seed=0)
    for t in range(200):
        act = np.eye(2, dtype=np.float32)[rng.integers(2, size=1)]
        replay.add(rng.normal(size=(1, 4)).astype(np.float32), act, rng.random(1), np.array([t % 50 == 0]),
                   np.array([t % 50 == 49]))  # fmt: skip
    return replay


def test_update_runs_in_bf16_on_the_gpu_and_stays_finite() -> None:
    agent = _agent("cuda")
    assert agent._autocast().fast_dtype == torch.bfloat16 and agent._autocast()._enabled  # auto -> bf16 on CUDA
    batch = _replay().sample(4, 16, device="cuda")
    before = [p.detach().clone() for p in agent.wm.parameters()]
    for _ in range(3):
        metrics = agent.update(batch)
    # Every metric stays on the GPU (read later, in one copy), except the guard's host-side counter.
    on_host = {k for k, v in metrics.items() if isinstance(v, torch.Tensor) and v.device.type != "cuda"}
    assert on_host <= {"guard/skipped_updates"}, on_host
    assert all(bool(torch.isfinite(v).all()) for v in metrics.values() if isinstance(v, torch.Tensor))
    assert all(p.device.type == "cuda" and bool(torch.isfinite(p).all()) for p in agent.parameters())
    assert any(not torch.equal(a, b) for a, b in zip(before, agent.wm.parameters()))  # it learned something


def test_replay_batches_reach_the_gpu_unchanged() -> None:
    on_gpu, on_cpu = _replay().sample(4, 16, device="cuda"), _replay().sample(4, 16, device="cpu")
    torch.cuda.synchronize()  # the copies are asynchronous (pinned host memory)
    for key, value in on_cpu.items():
        assert on_gpu[key].device.type == "cuda"
        assert torch.equal(on_gpu[key].cpu(), value), key


def test_the_gpu_imagines_what_the_cpu_imagines_in_fp32() -> None:
    cpu, gpu = _agent("cpu", amp="off"), _agent("cuda", amp="off")
    gpu.load_state_dict(cpu.state_dict())
    start = cpu.wm.initial(8)
    actions = torch.nn.functional.one_hot(torch.arange(8 * 5) % 2, 2).float().reshape(5, 8, 2)
    torch.backends.cuda.matmul.allow_tf32 = False  # compare fp32 with fp32
    with torch.no_grad():
        roll_cpu = cpu.wm.imagine(start, actions)
        roll_gpu = gpu.wm.imagine({k: v.cuda() for k, v in start.items()}, actions.cuda())
    # The latents are sampled; start from the same state and compare the deterministic parts.
    assert torch.allclose(roll_cpu.states["deter"][1], roll_gpu.states["deter"][1].cpu(), atol=1e-4)
    assert roll_gpu.rewards is not None and roll_gpu.rewards.device.type == "cuda"


def test_training_with_no_device_flag_uses_the_gpu(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from agentwm.cli import main
    from agentwm.core import device

    monkeypatch.setattr(device, "_said", set())  # said once per process: say it again here

    logdir = tmp_path / "run"
    sets = [x for s in FAST for x in ("--set", s)]
    assert main(["train", "dreamer", "--preset", "debug", "--steps", "200", "--logdir", str(logdir), "--quiet", *sets]) == 0
    out, err = capsys.readouterr()
    assert "device auto -> cuda" in err
    assert json.loads((logdir / "config.json").read_text())["device"] == "cuda"
    assert json.loads(out.splitlines()[-1])["frames"] == 200
    assert main(["eval", "dreamer", "--logdir", str(logdir), "--episodes", "1"]) == 0


def test_the_device_guarded_update_never_waits_for_the_gpu() -> None:
    agent = _agent("cuda")
    agent.use_device_guard()
    batch = _replay().sample(4, 16, device="cuda")
    agent.update(batch)  # lazy initialisations
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")  # any host-device sync raises
    try:
        agent.update(batch)
    finally:
        torch.cuda.set_sync_debug_mode("default")


def test_graphed_update_replays_learns_and_skips_nonfinite_batches() -> None:
    from agentwm.agents.dreamer.graphed import GraphedUpdate

    agent = _agent("cuda")
    update = GraphedUpdate(agent, warmup=2, settle_every=5)
    replay = _replay()
    batch = replay.sample(4, 16, device="cuda")
    first = update(batch)["loss/world_model"].item()
    for _ in range(40):  # warm-up, capture, then replays, on one batch: the world model fits it
        metrics = update(batch)
    assert agent.updates == 41 and update.graph is not None
    assert metrics["loss/world_model"].item() < first
    update(replay.sample(4, 16, device="cuda"))  # a new batch is copied in
    before = {k: v.clone() for k, v in agent.state_dict().items()}
    bad = dict(batch)
    bad["reward"] = torch.full_like(batch["reward"], float("nan"))
    metrics = update(bad)
    assert metrics["guard/skipped_updates"].item() == 1
    assert all(torch.equal(before[k], v) for k, v in agent.state_dict().items())
    with pytest.raises(ValueError, match="fixed batch shapes"):
        update(replay.sample(2, 16, device="cuda"))


def test_training_with_cuda_graph_on(tmp_path: Path) -> None:
    from agentwm.cli import main

    logdir = tmp_path / "run"
    sets = [x for s in [*FAST, "cuda_graph=on"] for x in ("--set", s)]
    assert main(["train", "dreamer", "--preset", "debug", "--steps", "300", "--logdir", str(logdir), "--quiet", *sets]) == 0
    rows = [json.loads(line) for line in (logdir / "metrics.jsonl").read_text().splitlines()]
    assert any("loss/world_model" in r for r in rows)
    assert main(["train", "dreamer", "--preset", "debug", "--steps", "400", "--logdir", str(logdir), "--quiet", *sets,
                 "--resume"]) == 0  # fmt: skip
