"""Where a Dreamer run's metrics go: ``metrics.jsonl`` always (the run's own record, read back by the
summary, plots and ``compare dreamer``), plus TensorBoard and Weights & Biases as chosen by the
``loggers`` setting. W&B follows its own environment (``WANDB_MODE=offline`` logs to
``<logdir>/wandb`` with no network, ``wandb sync`` uploads later) and a resumed run continues the
same W&B run (its id is kept in ``<logdir>/wandb_id.txt``)."""

from __future__ import annotations

import json
import secrets
import sys
from pathlib import Path
from typing import Any

from agentwm.extras import missing_extra

LOGGERS = ("tensorboard", "wandb")


def _frames_of(line: str, default: int) -> int:
    """The ``frames`` of a metrics line; ``default`` for a line torn by a crash mid-write."""
    try:
        return int(json.loads(line)["frames"])
    except (json.JSONDecodeError, KeyError, TypeError, ValueError):
        return default


def _start_wandb(logdir: Path, config: dict[str, Any], project: str, resumed: bool) -> Any:
    """A W&B run for ``logdir``: the same run id on resume, files under ``logdir/wandb``."""
    try:
        import wandb
    except ModuleNotFoundError as err:
        raise missing_extra(err, "wandb", "loggers=wandb") from None
    id_file = logdir / "wandb_id.txt"
    if resumed and id_file.is_file():
        run_id = id_file.read_text().strip()
    else:
        run_id = secrets.token_hex(4)  # W&B run ids: letters and digits
        id_file.write_text(run_id)
    return wandb.init(project=project, dir=str(logdir), id=run_id, name=logdir.name, config=config,
                      resume="allow", reinit="create_new")  # fmt: skip


class RunLogger:
    """Appends metric lines at env-frame steps to every chosen sink.

    Args:
        logdir: the run folder.
        resume_frames: the frame count of the checkpoint resumed from (lines past it are dropped,
            TensorBoard events past it purged); None for a fresh run (an old ``metrics.jsonl`` is removed).
        loggers: sinks beside JSONL, from :data:`LOGGERS`.
        config: the run's settings (W&B shows them beside its curves).
        wandb_project: the W&B project.
    """

    def __init__(
        self,
        logdir: Path,
        resume_frames: int | None,
        loggers: tuple[str, ...] = ("tensorboard",),
        config: dict[str, Any] | None = None,
        wandb_project: str = "agentwm",
    ) -> None:
        self.path = logdir / "metrics.jsonl"
        if resume_frames is not None and self.path.exists():  # drop lines past the checkpoint (and torn ones)
            keep = [ln for ln in self.path.read_text().splitlines() if _frames_of(ln, resume_frames + 1) <= resume_frames]
            self.path.write_text("".join(ln + "\n" for ln in keep))
        elif resume_frames is None and self.path.exists():
            self.path.unlink()
        self.tb: Any = None
        self.wandb: Any = None
        if "tensorboard" in loggers:
            try:  # a core dependency, but a broken install should still leave JSONL
                from torch.utils.tensorboard import SummaryWriter

                self.tb = SummaryWriter(str(logdir / "tb"), purge_step=resume_frames)
            except ImportError:
                print("agentwm: tensorboard not installed (pip install tensorboard); logging JSONL only",
                      file=sys.stderr)  # fmt: skip
        if "wandb" in loggers:
            self.wandb = _start_wandb(logdir, config or {}, wandb_project, resume_frames is not None)

    def write(self, frames: int, values: dict[str, float]) -> None:
        """One line of ``values`` at ``frames`` env frames."""
        with self.path.open("a") as fh:
            fh.write(json.dumps({"frames": frames, **values}) + "\n")
        if self.tb is not None:
            for key, value in values.items():
                self.tb.add_scalar(key, value, frames)
        if self.wandb is not None:
            self.wandb.log(values, step=frames)

    def close(self) -> None:
        if self.tb is not None:
            self.tb.close()
        if self.wandb is not None:
            self.wandb.finish()


class NullLogger:
    """The logger of ranks other than 0 in a data-parallel run: rank 0 writes the run's metrics."""

    def write(self, frames: int, values: dict[str, float]) -> None:
        pass

    def close(self) -> None:
        pass
