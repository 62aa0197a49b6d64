"""Data-parallel Dreamer training on ``torchrun``: one agent, one process per rank.

Each rank steps its own envs into its own replay and samples its own batches; after each backward
pass the gradients of the world model, the actor and the critic are averaged over the ranks (one
all-reduce of a flat buffer per module), and the return normaliser sees every rank's imagined
returns, so one update on ``W`` ranks equals one single-process update on the ``W`` batches
concatenated (tested). Every rank then takes the same optimiser step and the weights stay equal
without being sent again. Backend ``nccl`` on GPUs (rank ``r`` on ``cuda:<local rank>``), ``gloo``
on CPUs. The ``DistributedDataParallel`` wrapper is not used: the update calls the world model's
``loss``/``imagine`` and three optimisers, not one ``forward``, and the guards that skip non-finite
updates must decide on the averaged values so that every rank skips together.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.distributed as dist
from torch import Tensor, nn


@dataclass(frozen=True)
class Ranks:
    """Where this process stands: its rank, the world size and its rank on this node (torchrun's
    ``RANK``, ``WORLD_SIZE`` and ``LOCAL_RANK``)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        """Rank 0: the one that logs, evaluates and writes the run's files."""
        return self.rank == 0

    @property
    def active(self) -> bool:
        return self.world_size > 1


def ranks_from_env() -> Ranks:
    """The ranks torchrun (or SLURM through torchrun) set in the environment; one rank when unset."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    return Ranks(int(os.environ.get("RANK", "0")), world, int(os.environ.get("LOCAL_RANK", "0")))


def setup(device: str) -> tuple[Ranks, str, bool]:
    """Join the process group when launched by torchrun; returns the ranks, this rank's device
    (``cuda`` becomes ``cuda:<local rank>``) and whether this call started the group (then the run
    ends it). One process: nothing to join, ``device`` unchanged. A group the caller already
    started (tests, a user's own launcher) is used as it is."""
    if dist.is_available() and dist.is_initialized():
        ranks = Ranks(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", dist.get_rank())))
    else:
        ranks = ranks_from_env()
    if not ranks.active:
        return ranks, device, False
    cuda = torch.device(device).type == "cuda"
    if cuda:
        device = f"cuda:{ranks.local_rank}"
        torch.cuda.set_device(device)
    if dist.is_initialized():
        return ranks, device, False
    dist.init_process_group("nccl" if cuda else "gloo")
    return ranks, device, True


def teardown() -> None:
    """Leave the process group a run started (the end of a data-parallel run)."""
    if dist.is_initialized():
        dist.destroy_process_group()


class GradSync:
    """Averages gradients and scalars over the ranks of the default process group."""

    def __init__(self, world_size: int) -> None:
        self.world_size = world_size

    def grads(self, params: Iterable[nn.Parameter], *scalars: Tensor) -> list[Tensor]:
        """Replace each gradient of ``params`` by its mean over the ranks, in one all-reduce that also
        averages ``scalars`` (losses, so a non-finite one on any rank is seen by all); returns them."""
        with_grad = [p for p in params if p.grad is not None]
        parts = [p.grad.reshape(-1) for p in with_grad if p.grad is not None]
        dtype = parts[0].dtype if parts else torch.float32
        parts += [s.detach().reshape(1).to(dtype) for s in scalars]
        flat = torch.cat(parts)
        dist.all_reduce(flat)
        flat /= self.world_size
        offset = 0
        for p in with_grad:
            assert p.grad is not None
            n = p.grad.numel()
            p.grad.copy_(flat[offset : offset + n].view_as(p.grad))
            offset += n
        return [flat[offset + i] for i in range(len(scalars))]

    def gather(self, x: Tensor, dim: int = -1) -> Tensor:
        """``x`` of every rank, concatenated along ``dim`` in rank order (equal shapes)."""
        parts = [torch.empty_like(x) for _ in range(self.world_size)]
        dist.all_gather(parts, x.contiguous())
        return torch.cat(parts, dim)

    def any(self, flag: bool, device: torch.device | str = "cpu") -> bool:
        """True on every rank when ``flag`` is true on any (a stop request seen by one rank)."""
        t = torch.tensor([1.0 if flag else 0.0], device=device)
        dist.all_reduce(t, op=dist.ReduceOp.MAX)
        return bool(t.item() > 0)

    @staticmethod
    def broadcast_module(module: nn.Module) -> None:
        """Rank 0's parameters and buffers to every rank (the same start everywhere)."""
        with torch.no_grad():
            for tensor in module.state_dict().values():
                dist.broadcast(tensor, 0)

    @staticmethod
    def barrier() -> None:
        dist.barrier()


# ------------------------------------------------------------------------------------------------
# Run folders: rank 0 writes the run's files; rank r > 0 keeps its replay and envs beside them


def rank_dir(logdir: Path, ranks: Ranks) -> Path:
    """Where this rank's checkpoints go: the run folder for rank 0, ``ranks/rank<r>`` inside it else
    (each rank's replay and env state are its own; the weights are equal on every rank)."""
    return logdir if ranks.main else logdir / "ranks" / f"rank{ranks.rank}"


def saved_world_size(logdir: Path) -> int | None:
    """The world size the run's newest checkpoint was written with (1 for runs before this
    setting), or None when the run has no checkpoint."""
    from agentwm.agents.dreamer import run_checkpoint as ckpt
    from agentwm.checkpoint import CheckpointError, read_json

    path = ckpt.latest(logdir)
    if path is None:
        return None
    try:
        return int(read_json(path / "state.json")["loop"].get("world_size", 1))
    except (CheckpointError, KeyError, TypeError, ValueError):
        return None  # a damaged state.json: the checkpoint loader reports it by name


def rank_batch(batch_size: int, ranks: Ranks) -> int:
    """This rank's share of the update's ``batch_size`` sequences: ``batch_size`` counts all ranks
    together, so ``train_ratio`` keeps its meaning (replayed steps per env frame, all ranks) and N
    ranks make the single-process update, each computing 1/N of it. Raises ``ValueError`` naming
    both numbers when the batch does not split evenly."""
    if batch_size % ranks.world_size:
        raise ValueError(f"batch_size={batch_size} does not split over {ranks.world_size} ranks: "
                         f"set --set batch_size=<a multiple of {ranks.world_size}>")  # fmt: skip
    return batch_size // ranks.world_size


def check_resume_ranks(logdir: Path, ranks: Ranks) -> None:
    """Raise ``ValueError`` naming ``world_size`` when a resumed run was trained with another
    number of ranks (each rank's replay and envs are in the checkpoint), and point every rank at
    rank 0's checkpoint (a run killed between the ranks' writes left some ranks one ahead)."""
    from agentwm.agents.dreamer import run_checkpoint as ckpt
    from agentwm.checkpoint import read_json

    saved = saved_world_size(logdir)
    if saved is None:
        return
    if saved != ranks.world_size:
        how = "launch it with torchrun --nproc_per_node=" if saved > 1 else "launch it without torchrun ("
        raise ValueError(f"cannot resume with world_size={ranks.world_size}: the run was trained with "
                         f"world_size={saved} (each rank's replay and envs are in its checkpoint); "
                         f"{how}{saved}{'' if saved > 1 else ' process)'} or start a new logdir")  # fmt: skip
    if ranks.main:
        return
    main_ckpt = ckpt.latest(logdir)
    own = rank_dir(logdir, ranks)
    mine = ckpt.latest(own)
    assert main_ckpt is not None
    if mine is not None and mine.name == main_ckpt.name:
        return
    match = [p for p in ckpt.complete_checkpoints(own) if p.name == main_ckpt.name]
    if not match:
        frames = read_json(main_ckpt / "manifest.json").get("frames")
        raise ValueError(f"rank {ranks.rank} has no checkpoint at {frames} frames (rank 0's newest) under {own}: "
                         "the run's rank folders do not belong together; start a new logdir")  # fmt: skip
    pointer = own / "checkpoints" / "latest"
    tmp = pointer.with_name(f".tmp-latest-{os.getpid()}")
    tmp.write_text(main_ckpt.name, encoding="utf-8")
    os.replace(tmp, pointer)
