"""Size of the core install against the core plus the LLM stack (what `pip install agentwm` brought
before the LLM parts moved to extras), measured on the packages installed in this environment.

    python benchmarks/install_size.py

Reads pyproject.toml: ``core`` = ``[project] dependencies``; ``core+llm+graph`` adds the ``llm``
and ``graph`` extras. For each, the installed distributions of the whole dependency closure (as
``importlib.metadata`` resolves it here), their count and their files' size on disk, with and
without torch (whose size depends on the build: CPU or CUDA). Prints one JSON object.
"""

from __future__ import annotations

import importlib.metadata as md
import json
import os
import re
import sys
from pathlib import Path

import tomllib
from packaging.requirements import Requirement

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # _results.py, also under `agentwm bench`
from _results import write_result  # benchmarks/_results.py

ROOT = Path(__file__).resolve().parent.parent


def _closure(requirements: list[str]) -> dict[str, md.Distribution]:
    """Installed distributions needed by ``requirements`` (extras of agentwm itself expanded)."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    found: dict[str, md.Distribution] = {}
    stack = [Requirement(r) for r in requirements]
    while stack:
        req = stack.pop()
        if req.marker is not None and not req.marker.evaluate({"extra": ""}):
            continue
        if req.name == "agentwm":  # a self-reference such as agentwm[llm]
            stack += [Requirement(r) for extra in req.extras for r in project["optional-dependencies"][extra]]
            continue
        key = re.sub(r"[-_.]+", "-", req.name).lower()
        if key in found:
            continue
        try:
            found[key] = md.distribution(req.name)
        except md.PackageNotFoundError:
            continue
        stack += [Requirement(r) for r in found[key].requires or []]
    return found


def _size(dist: md.Distribution) -> int:
    total = 0
    for f in dist.files or []:
        try:
            total += os.path.getsize(str(dist.locate_file(f)))
        except OSError:
            pass
    return total


def _measure(requirements: list[str]) -> dict[str, object]:
    dists = _closure(requirements)
    sizes = {k: _size(d) for k, d in dists.items()}
    total = sum(sizes.values())
    return {"packages": len(sizes), "mb": round(total / 1e6), "mb_without_torch": round((total - sizes.get("torch", 0)) / 1e6)}


def main() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    core = list(project["dependencies"])
    arms = {"core": _measure(core), "core+llm+graph": _measure([*core, "agentwm[llm,graph]"])}
    ratio = arms["core"]["mb"] / arms["core+llm+graph"]["mb"]  # type: ignore[operator]
    ratio_nt = arms["core"]["mb_without_torch"] / arms["core+llm+graph"]["mb_without_torch"]  # type: ignore[operator]
    out = {**arms, "core_share": round(ratio, 3), "core_share_without_torch": round(ratio_nt, 3)}
    print(json.dumps(write_result("install_size", out)))


if __name__ == "__main__":
    main()
