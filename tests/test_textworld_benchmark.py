"""benchmarks/textworld.py options: the validation split and the coverage rule shared by the learned agents."""

from __future__ import annotations

from types import ModuleType

import pytest

from tests.benchmark_module import load_benchmark


def _bench() -> ModuleType:
    return load_benchmark("textworld")


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
