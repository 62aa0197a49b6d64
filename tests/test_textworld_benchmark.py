"""benchmarks/textworld.py options: the validation split and the coverage rule shared by the learned agents."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

import pytest


def _bench() -> ModuleType:
    """Loaded by path: benchmarks/ on sys.path would shadow the textworld package."""
    path = Path(__file__).resolve().parents[1] / "benchmarks" / "textworld.py"
    spec = importlib.util.spec_from_file_location("agentwm_bench_textworld", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_split_and_cover_rule_options() -> None:
    pytest.importorskip("textworld", reason="TextWorld is not installed (pip install 'agentwm[text]')")
    bench = _bench()
    args = bench.parse_args(["--games-dir", "g"])
    assert args.split == "test" and args.cover_rule is None  # headline figures: test games, the agents' defaults
    args = bench.parse_args(["--games-dir", "g", "--split", "validation", "--cover-rule", "count"])
    assert args.split == "validation" and args.cover_rule == "count"
    with pytest.raises(SystemExit):
        bench.parse_args(["--games-dir", "g", "--split", "train"])  # training seeds are never benchmarked
    with pytest.raises(SystemExit):
        bench.parse_args(["--games-dir", "g", "--cover-rule", "ordered"])
