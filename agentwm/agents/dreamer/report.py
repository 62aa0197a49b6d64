"""Compare Dreamer runs (seeds or settings) by their evaluation curves.

Returns differ widely between seeds, so a claim about a recipe should rest on several runs.
``compare_runs([...])`` reads each run's ``metrics.jsonl`` and ``config.json`` and returns per-run
and aggregate figures (final and best eval return, the first frame count at which an eval reached a
target); ``plot_runs`` draws the curves over each other with their mean.
"""

from __future__ import annotations

import json
import statistics
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from agentwm.agents.dreamer.best import read_best
from agentwm.checkpoint import CheckpointError


def eval_curve(logdir: str | Path, key: str = "eval/return") -> list[tuple[int, float]]:
    """``(frames, mean eval return)`` of every evaluation a run logged, in order (``key``
    ``eval/online_return``: the actor itself, where evaluation acts with an averaged one)."""
    path = Path(logdir) / "metrics.jsonl"
    if not path.is_file():
        raise FileNotFoundError(f"no Dreamer run in {logdir} (missing metrics.jsonl)")
    curve = []
    for line in path.read_text().splitlines():
        try:
            row = json.loads(line)
        except json.JSONDecodeError:  # a line torn by a crash mid-write
            continue
        if key in row:
            curve.append((int(row["frames"]), float(row[key])))
    return curve


def _settings(logdir: str | Path) -> dict[str, Any]:
    path = Path(logdir) / "config.json"
    return dict(json.loads(path.read_text())) if path.is_file() else {}


def run_summary(logdir: str | Path, target: float | None = None) -> dict[str, Any]:
    """One run: its env and seed, frames at its last eval, final and best eval return (and the
    frames of the first eval that reached it), the best checkpoint kept (frames, or None) and, with a
    ``target``, the first eval frame count at or above it, whether the final eval still is, and how
    many of the evals in the run's second half are (``late_at_target``, ``late_evals``): a run that
    reaches the target and wanders off it again is told apart from one that holds it."""
    curve, config = eval_curve(logdir), _settings(logdir)
    best = max(r for _, r in curve) if curve else None
    try:
        kept = read_best(logdir)
    except CheckpointError:
        kept = None
    out: dict[str, Any] = {
        "logdir": str(logdir), "env": config.get("env"), "seed": config.get("seed"),
        "frames": curve[-1][0] if curve else 0, "final": curve[-1][1] if curve else None,
        "best": best, "best_frames": next((f for f, r in curve if r == best), None),
        "best_checkpoint_frames": kept["frames"] if kept else None, "curve": curve,
    }  # fmt: skip
    if target is not None:
        out.update(against_target(curve, target))
    return out


def against_target(curve: Sequence[tuple[int, float]], target: float) -> dict[str, Any]:
    """An eval curve against a target: the first eval frame count at or above it
    (``frames_to_target``, None if none), whether the final eval still is (``met``), and how many
    of the evals in the curve's second half are (``late_at_target`` of ``late_evals``)."""
    reached = [frames for frames, ret in curve if ret >= target]
    late = [ret for frames, ret in curve if 2 * frames >= curve[-1][0]] if curve else []
    return {"frames_to_target": reached[0] if reached else None, "met": bool(curve) and curve[-1][1] >= target,
            "late_at_target": sum(ret >= target for ret in late), "late_evals": len(late)}  # fmt: skip


def compare_runs(logdirs: Sequence[str | Path], target: float | None = None) -> dict[str, Any]:
    """Per-run summaries and, over runs with at least one eval, the final returns' mean, std
    (population), median, min and max; with ``target``, how many runs reached it and still meet it,
    and how many of all the runs' second-half evals meet it."""
    if not logdirs:
        raise ValueError("compare_runs needs at least one run folder")
    runs = [run_summary(d, target) for d in logdirs]
    finals = [r["final"] for r in runs if r["final"] is not None]
    agg: dict[str, Any] = {"runs": len(runs), "evaluated": len(finals)}
    if finals:
        agg.update({
            "final_mean": statistics.fmean(finals), "final_std": statistics.pstdev(finals),
            "final_median": statistics.median(finals), "final_min": min(finals), "final_max": max(finals),
        })  # fmt: skip
    if target is not None:
        hit = [r["frames_to_target"] for r in runs if r["frames_to_target"] is not None]
        agg.update({"target": target, "reached": len(hit), "met_at_final": sum(r["met"] for r in runs),
                    "median_frames_to_target": statistics.median(hit) if hit else None,
                    "late_at_target": sum(r["late_at_target"] for r in runs),
                    "late_evals": sum(r["late_evals"] for r in runs)})  # fmt: skip
    return {"runs": runs, "aggregate": agg}


def plot_runs(logdirs: Sequence[str | Path], out: str | Path, target: float | None = None) -> Path:
    """A PNG of every run's eval curve (labelled by seed), their mean at the frame counts all runs
    share, and the ``target`` as a dashed line. Needs matplotlib (the plot extra)."""
    if not logdirs:
        raise ValueError("plot_runs needs at least one run folder")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    curves = {str(d): eval_curve(d) for d in logdirs}
    fig, ax = plt.subplots(figsize=(6, 4))
    for d, curve in curves.items():
        if curve:
            seed = _settings(d).get("seed")
            ax.plot(*zip(*curve), lw=1, alpha=0.6, label=f"seed {seed}" if seed is not None else Path(d).name)
    shared = sorted(set.intersection(*({f for f, _ in c} for c in curves.values())))
    if len(curves) > 1 and shared:
        by_run = [dict(c) for c in curves.values()]
        ax.plot(shared, [statistics.fmean(r[f] for r in by_run) for f in shared], lw=2.5, color="black",
                label=f"mean of {len(by_run)}")  # fmt: skip
    if target is not None:
        ax.axhline(target, ls="--", color="gray", label=f"target {target:g}")
    ax.set_xlabel("env frames")
    ax.set_ylabel("eval return (greedy)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    path = Path(out)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100, bbox_inches="tight")
    plt.close(fig)
    return path
