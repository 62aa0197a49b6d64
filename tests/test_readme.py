"""The README's examples run as written, and its test command is the one CI runs."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()


def _python_blocks() -> list[str]:
    blocks = re.findall(r"```python\n(.*?)```", README, re.DOTALL)
    assert len(blocks) >= 3, "README lost a python example (planning graph, score_replies, RL)"
    return blocks


def _run(block: str) -> dict[str, object]:
    namespace: dict[str, object] = {}
    exec(compile(block, "README.md", "exec"), namespace)  # noqa: S102 -- our own README example
    return namespace


def test_readme_planning_graph_example_runs() -> None:
    ns = _run(_python_blocks()[0])
    out = ns["out"]
    assert isinstance(out, dict)
    assert out["chosen"] in ("push left", "push right")
    assert {r["candidate"] for r in out["ranking"]} == {"push left", "push right"}
    assert out["fallbacks"] == []


def test_readme_score_replies_example_runs() -> None:
    replies = _run(_python_blocks()[1])["replies"]
    assert isinstance(replies, list) and sorted(r.rank for r in replies) == [1, 2]
    assert all(set(r.components) >= {"engagement", "relevance", "rating"} for r in replies)


def test_readme_rl_example_runs() -> None:
    ns = _run(_python_blocks()[2])
    assert tuple(ns["plan"].action.shape) == (1, 2)  # type: ignore[attr-defined]
    assert tuple(ns["rollout"].rewards.shape) == (15, 8)  # type: ignore[attr-defined]
    assert tuple(ns["returns"].shape) == (8,)  # type: ignore[attr-defined]


def test_readme_test_command_is_the_one_ci_runs() -> None:
    commands = re.findall(r"```bash\n(.*?)\n```", README, re.DOTALL)
    test_command = next(c for c in commands if c.endswith("python -m pytest -q"))
    ci_lines = (ROOT / ".ci" / "run").read_text().splitlines()
    assert test_command in ci_lines, "README's test command and .ci/run's differ"
    main_job = next(c for c in commands if "agentwm plan" in c)
    assert main_job.startswith("pip install -c constraints.txt torch==2.13.0 && pip install -c constraints.txt -e . &&")


def test_readme_links_point_at_files() -> None:
    for target in re.findall(r"\]\(((?:docs|benchmarks)/[^)#]+)", README):
        assert (ROOT / target).exists(), f"README links to a missing file: {target}"
    for page in ("dreamer", "families", "graph", "dialogue", "performance", "README"):
        assert (ROOT / "docs" / f"{page}.md").is_file()
