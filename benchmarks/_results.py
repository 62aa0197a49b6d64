"""Writes a benchmark's JSON object to ``benchmarks/results/<name>.json`` with where and how it was measured.

Every script in ``benchmarks/`` calls :func:`write_result` once with the object it prints, so a figure in
the docs can be traced to the command, commit, date and machine that produced it. ``AGENTWM_RESULTS_DIR``
redirects the files (tests point it at a temporary folder so smoke runs never overwrite measurements).
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import platform
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
RESULTS_DIR = Path(__file__).resolve().parent / "results"


def _git_commit() -> str:
    """The checkout's commit, with ``-dirty`` when tracked files differ from it; ``unknown`` outside git."""
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True,
                              timeout=10, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=ROOT,
                               capture_output=True, text=True, timeout=10, check=True).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return head + ("-dirty" if dirty else "")


def _cpu_model() -> str:
    """The CPU's model name from /proc/cpuinfo where there is one, else what ``platform`` knows."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _command() -> str:
    """The command line as a user would retype it: ``python benchmarks/<script>.py ARGS``."""
    script = Path(sys.argv[0]).resolve() if sys.argv and sys.argv[0] else Path("?")
    try:
        shown = str(script.relative_to(ROOT))
    except ValueError:
        shown = str(script)
    return shlex.join(["python", shown, *sys.argv[1:]])


def machine() -> dict[str, Any]:
    """CPU model, core counts, load average, OS and the torch build (when the script imported torch)."""
    info: dict[str, Any] = {"cpu": _cpu_model(), "cores": os.cpu_count()}
    if hasattr(os, "sched_getaffinity"):
        info["cores_usable"] = len(os.sched_getaffinity(0))
    if hasattr(os, "getloadavg"):
        info["load_avg_1_5_15"] = [round(x, 2) for x in os.getloadavg()]
    info["platform"] = platform.platform()
    info["python"] = platform.python_version()
    torch = sys.modules.get("torch")
    if torch is not None:
        info["torch"] = str(torch.__version__)
        info["torch_threads"] = int(torch.get_num_threads())
        if torch.cuda.is_available():
            info["gpu"] = torch.cuda.get_device_name()
    return info


def write_result(name: str, result: dict[str, Any], *, variant: str | None = None,
                 path: str | os.PathLike[str] | None = None) -> dict[str, Any]:
    """Write ``result`` and its provenance to ``results/<name>[-<variant>].json`` (or ``path``); return it.

    ``variant`` keeps runs that measure different things apart (a ``quick`` smoke run, a task, a seed), so
    one does not overwrite another's figures. The file is written whole to a temporary name, then renamed.
    """
    if path is None:
        folder = Path(os.environ.get("AGENTWM_RESULTS_DIR") or RESULTS_DIR)
        target = folder / (f"{name}-{variant}.json" if variant else f"{name}.json")
    else:
        target = Path(path)
    record = {
        "benchmark": name,
        "variant": variant,
        "command": _command(),
        "commit": _git_commit(),
        "date_utc": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "machine": machine(),
        "result": result,
    }
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(target.name + ".tmp")
    tmp.write_text(json.dumps(record, indent=2, default=str) + "\n")
    os.replace(tmp, target)
    print(f"wrote {target}", file=sys.stderr)
    return result
