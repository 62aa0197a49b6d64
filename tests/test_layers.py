"""The package's import rules (design.md, issue 15): every import, also inside functions, points down."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1] / "agentwm"
FAMILIES = ("dreamer", "planet", "mpc", "muzero", "dyna", "hs_worldmodels", "dialogue", "textworld")

# area -> agentwm areas it must never import
FORBIDDEN = {
    "core": ("text", "worldmodels", "planning", "envs", "agents", "testbeds", "graph", "cli"),
    "text": ("worldmodels", "planning", "envs", "agents", "testbeds", "graph", "cli"),
    "worldmodels": ("planning", "envs", "agents", "testbeds", "graph", "cli"),
    "planning": ("envs", "agents", "testbeds", "graph", "cli"),
    "envs": ("agents", "testbeds", "graph", "cli"),
    "agents": ("testbeds", "graph", "cli"),
    "testbeds": ("graph", "cli"),
    "graph": ("cli",),
}


def _modules() -> list[tuple[str, list[str]]]:
    """(dotted module name, every absolute module it imports) for each file of the package."""
    out = []
    for path in sorted(ROOT.rglob("*.py")):
        parts = path.relative_to(ROOT.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        package = name if parts[-1] == "__init__" else name.rpartition(".")[0]
        imported = []
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                imported += [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    base = ".".join(
                        package.split(".")[: len(package.split(".")) - node.level + 1] + [base]
                    ).strip(".")
                imported += [base] + [f"{base}.{alias.name}" for alias in node.names]
        out.append((name, imported))
    return out


MODULES = _modules()


def _area(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if parts[0] == "agentwm" and len(parts) > 1 else None


def test_the_walk_sees_the_package() -> None:
    names = {name for name, _ in MODULES}
    assert {"agentwm.core.returns", "agentwm.worldmodels.rssm", "agentwm.cli"} <= names
    assert len(names) > 50


@pytest.mark.parametrize("name,imported", MODULES, ids=[name for name, _ in MODULES])
def test_imports_point_down(name: str, imported: list[str]) -> None:
    area = _area(name)
    forbidden = FORBIDDEN.get(area or "", ())
    bad = sorted({m for m in imported if _area(m) in forbidden})
    assert not bad, f"{name} ({area}) imports {bad}"
    if area == "core":
        third_party = sorted(
            {m for m in imported if m.split(".")[0] not in {"torch", "numpy", "agentwm", "__future__"}}
            - {m for m in imported if m.split(".")[0] in sys.stdlib_module_names}
        )
        assert not third_party, (
            f"{name} (core) imports {third_party}: core takes torch, numpy and stdlib only"
        )
    if area == "planning":
        assert not [m for m in imported if m.split(".")[0] == "langgraph"], f"{name} imports langgraph"
    if area != "graph" and name != "agentwm.cli":
        assert not [m for m in imported if _area(m) == "graph"], f"{name} imports agentwm.graph"


@pytest.mark.parametrize("family", FAMILIES)
def test_no_agent_family_imports_another(family: str) -> None:
    others = [f for f in FAMILIES if f != family]
    prefix = f"agentwm.agents.{family}"
    for name, imported in MODULES:
        if name == prefix or name.startswith(prefix + "."):
            bad = [
                m
                for m in imported
                if any(m == f"agentwm.agents.{o}" or m.startswith(f"agentwm.agents.{o}.") for o in others)
            ]
            assert not bad, f"{name} imports another agent family: {bad}"
