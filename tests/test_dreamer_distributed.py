"""Data-parallel Dreamer (torchrun, gloo on CPU): one update on 2 ranks equals one single-process
update on the 2 batches concatenated; resuming refuses another world size by name."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from agentwm.agents.dreamer import DreamerAgent, resolve_config
from agentwm.worldmodels.base import ActionSpec

WORLD = 2
B, T, OBS, ACT = 4, 8, 4, 2


def _argmax_sampling() -> None:
    """Every categorical draw -> its most likely class: the update becomes a deterministic function
    of its batch, so the ranks and the single process can be compared row for row."""
    import agentwm.agents.dreamer.actor_critic as agent_mod
    import agentwm.core.distributions as dist_mod
    import agentwm.worldmodels.rssm_fast as fast_mod

    def argmax(
        logits: torch.Tensor, generator: torch.Generator | None = None, noise: torch.Tensor | None = None
    ) -> torch.Tensor:
        return logits.argmax(-1)

    for mod in (dist_mod, fast_mod, agent_mod):
        if hasattr(mod, "sample_indices"):
            mod.sample_indices = argmax  # type: ignore[attr-defined]


def _batch(seed: int) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    is_first = torch.zeros(B, T, dtype=torch.bool)
    is_first[:, 0] = True
    is_terminal = torch.zeros(B, T, dtype=torch.bool)
    is_terminal[0, -1] = True
    return {
        "obs": torch.randn(B, T, OBS, generator=g),
        "action": torch.nn.functional.one_hot(torch.randint(ACT, (B, T), generator=g), ACT).float(),
        "reward": torch.rand(B, T, generator=g),
        "is_first": is_first,
        "is_terminal": is_terminal,
    }


def _agent() -> DreamerAgent:
    torch.manual_seed(0)
    cfg = resolve_config(["debug"], ["device=cpu", "horizon=4", "actor_lr=0.01", "critic_lr=0.01", "wm_lr=0.01"])
    return DreamerAgent((OBS,), ActionSpec("discrete", ACT), cfg)


def _state(agent: DreamerAgent, metrics: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    out = {f"param/{k}": v.detach().clone() for k, v in agent.state_dict().items()}
    for name, p in agent.named_parameters():
        if p.grad is not None:
            out[f"grad/{name}"] = p.grad.detach().clone()
    averaged = ("loss/world_model", "loss/actor", "loss/critic", "grad/wm", "grad/actor", "grad/critic")
    out.update({f"metric/{k}": metrics[k] for k in averaged})  # over the ranks (the rest: rank 0's batch)
    return out


def _rank(rank: int, rdv: str, out: str) -> None:
    torch.set_num_threads(1)
    _argmax_sampling()
    dist.init_process_group("gloo", init_method=f"file://{rdv}", rank=rank, world_size=WORLD)
    from agentwm.agents.dreamer.distributed import GradSync

    agent = _agent()
    agent.sync = GradSync(WORLD)
    if rank == 1:  # a different start: the broadcast must make it rank 0's
        with torch.no_grad():
            for p in agent.parameters():
                p.add_(1.0)
    agent.sync.broadcast_module(agent)
    metrics = agent.update(_batch(100 + rank))
    if rank == 0:
        torch.save(_state(agent, metrics), out)
    dist.barrier()
    dist.destroy_process_group()


def test_two_rank_update_equals_concatenated_batch(tmp_path: Path) -> None:
    out = tmp_path / "rank0.pt"
    mp.spawn(_rank, args=(str(tmp_path / "rdv"), str(out)), nprocs=WORLD, join=True)
    ranked = torch.load(out, weights_only=True)

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        import agentwm.agents.dreamer.actor_critic as agent_mod
        import agentwm.core.distributions as dist_mod
        import agentwm.worldmodels.rssm_fast as fast_mod

        saved = {m: getattr(m, "sample_indices", None) for m in (dist_mod, fast_mod, agent_mod)}
        _argmax_sampling()
        try:
            agent = _agent()
            parts = [_batch(100 + r) for r in range(WORLD)]
            metrics = agent.update({k: torch.cat([p[k] for p in parts]) for k in parts[0]})
        finally:
            for mod, fn in saved.items():
                if fn is not None:
                    mod.sample_indices = fn  # type: ignore[attr-defined]
    finally:
        torch.set_num_threads(threads)
    single = _state(agent, metrics)

    assert ranked.keys() == single.keys()
    assert sum(k.startswith("grad/") for k in single) > 10  # world model, actor and critic gradients
    for key, value in single.items():
        torch.testing.assert_close(ranked[key], value, rtol=1e-4, atol=1e-6, msg=key)
    moved = [k for k in single if k.startswith("param/") and not torch.equal(single[k], _agent().state_dict()[k[6:]])]
    assert len(moved) > 10  # the update changed the weights (the comparison is not of two untouched agents)


def test_the_batch_counts_all_ranks_and_splits_evenly() -> None:
    from agentwm.agents.dreamer import distributed as dp

    assert dp.rank_batch(16, dp.Ranks(0, 1, 0)) == 16  # one process: the whole batch
    assert dp.rank_batch(16, dp.Ranks(1, 2, 1)) == 8  # two ranks: the single-process update, halved each
    assert dp.rank_batch(16, dp.Ranks(3, 4, 3)) == 4
    with pytest.raises(ValueError, match=r"batch_size=16 does not split over 3 ranks.*multiple of 3"):
        dp.rank_batch(16, dp.Ranks(0, 3, 0))


def test_resume_refuses_another_world_size(tmp_path: Path) -> None:
    from agentwm.agents.dreamer import distributed as dp

    ckpt = tmp_path / "checkpoints" / "ckpt_0000000300"
    ckpt.mkdir(parents=True)
    (ckpt / "manifest.json").write_text(json.dumps({"frames": 300}))
    (ckpt / "state.json").write_text(json.dumps({"loop": {"frames": 300, "world_size": 2}}))
    (tmp_path / "checkpoints" / "latest").write_text(ckpt.name)
    dp.check_resume_ranks(tmp_path, dp.Ranks(0, 2, 0))  # the same world size: fine
    with pytest.raises(ValueError, match=r"cannot resume with world_size=1: the run was trained with world_size=2.*"
                       r"torchrun --nproc_per_node=2"):  # fmt: skip
        dp.check_resume_ranks(tmp_path, dp.Ranks(0, 1, 0))
    with pytest.raises(ValueError, match="rank 1 has no checkpoint at 300 frames"):
        dp.check_resume_ranks(tmp_path, dp.Ranks(1, 2, 1))
    (ckpt / "state.json").write_text(json.dumps({"loop": {"frames": 300}}))  # a run from before: one process
    with pytest.raises(ValueError, match="world_size=4: the run was trained with world_size=1"):
        dp.check_resume_ranks(tmp_path, dp.Ranks(0, 4, 0))


def test_ranks_from_torchrun_env(monkeypatch: pytest.MonkeyPatch) -> None:
    from agentwm.agents.dreamer import distributed as dp

    for key in ("RANK", "WORLD_SIZE", "LOCAL_RANK"):
        monkeypatch.delenv(key, raising=False)
    assert dp.ranks_from_env() == dp.Ranks(0, 1, 0) and not dp.ranks_from_env().active
    monkeypatch.setenv("RANK", "3")
    monkeypatch.setenv("WORLD_SIZE", "4")
    monkeypatch.setenv("LOCAL_RANK", "1")
    ranks = dp.ranks_from_env()
    assert ranks == dp.Ranks(3, 4, 1) and ranks.active and not ranks.main
    assert dp.rank_dir(Path("run"), ranks) == Path("run/ranks/rank3")
