"""Make many TextWorld games of one setting and split, with a progress bar (``make-games``)."""

from __future__ import annotations

from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from tqdm import tqdm

from agentwm.envs.textworld import SPLITS, game_path, make_game, split_seeds


def _one(args: tuple[str, int, str]) -> str:
    setting, seed, out = args
    return str(make_game(setting, seed, out))


def make_games(
    setting: str, split: str, count: int, out: str | Path, *, start: int = 0, workers: int = 1, progress: bool = True
) -> list[Path]:
    """Generate the first ``count`` games of ``split`` (after ``start``) into ``out``.

    Games already in ``out`` are kept, so an interrupted run resumes where it stopped.
    Returns the game paths in seed order.
    """
    if count < 1:
        raise ValueError(f"count must be >= 1, got {count}")
    if workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers}")
    seeds = split_seeds(split, count, start)
    todo = [(setting, s, str(out)) for s in seeds if not game_path(out, setting, s).with_suffix(".json").is_file()]
    bar = tqdm(total=len(seeds), initial=len(seeds) - len(todo), desc=f"{setting}/{split} games", disable=not progress)
    if workers == 1:
        for job in todo:
            _one(job)
            bar.update()
    else:
        with ProcessPoolExecutor(workers) as pool:
            for _ in pool.map(_one, todo):
                bar.update()
    bar.close()
    return [game_path(out, setting, s) for s in seeds]


def list_games(folder: str | Path, setting: str, split: str) -> list[Path]:
    """The games of ``setting`` in ``folder`` whose seeds belong to ``split``, in seed order."""
    found = []
    for path in sorted(Path(folder).glob(f"{setting}-*.z8")):
        try:
            seed = int(path.stem.split("-")[1])
        except (IndexError, ValueError):
            continue
        if seed in SPLITS[split] and path.with_suffix(".json").is_file():
            found.append(path)
    return found
