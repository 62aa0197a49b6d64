"""benchmarks/_results.py records a benchmark's object with its command, commit, date and machine."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_write_result_records_provenance(tmp_path: Path) -> None:
    script = tmp_path / "bench_fake.py"
    script.write_text(
        "import sys\n"
        f"sys.path.insert(0, {str(ROOT / 'benchmarks')!r})\n"
        "from _results import write_result\n"
        "print(write_result('fake', {'p50_ms': 1.5}, variant='quick'))\n"
    )
    proc = subprocess.run([sys.executable, str(script), "--repeats", "3"], capture_output=True, text=True,
                          env={"AGENTWM_RESULTS_DIR": str(tmp_path / "res"), "PATH": "/usr/bin:/bin"},
                          timeout=60, check=False)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "{'p50_ms': 1.5}"  # the object is passed through for printing
    record = json.loads((tmp_path / "res" / "fake-quick.json").read_text())
    assert record["result"] == {"p50_ms": 1.5} and record["benchmark"] == "fake"
    assert record["command"].endswith("bench_fake.py --repeats 3")
    assert len(record["commit"].removesuffix("-dirty")) == 40 or record["commit"] == "unknown"
    assert record["date_utc"].endswith("Z") and record["machine"]["cores"] >= 1
    assert record["machine"]["cpu"] and len(record["machine"]["load_avg_1_5_15"]) == 3


def test_every_benchmark_writes_its_result() -> None:
    scripts = [p for p in (ROOT / "benchmarks").glob("*.py") if not p.name.startswith("_")]
    assert scripts
    missing = [p.name for p in scripts if "write_result(" not in p.read_text()]
    assert not missing, f"benchmarks that print a result without writing it to benchmarks/results/: {missing}"
