"""The planning graph checkpointed in a real PostgreSQL server (``langgraph-checkpoint-postgres``):
a decision paused for review in this process (sync ``PostgresSaver``) is resumed in a new process
(``AsyncPostgresSaver``). ``.ci/run`` starts the server (``AGENTWM_TEST_POSTGRES_URI``); without it
the test starts a throwaway one with ``.ci/postgres.sh`` and skips, saying why, only if it cannot."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

pytest.importorskip("langgraph.checkpoint.postgres", reason="needs the serve extra: pip install -e '.[serve]'")
from langgraph.checkpoint.postgres import PostgresSaver
from postgres_resume import VALUES, builder

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def postgres_uri() -> Iterator[str]:
    uri = os.environ.get("AGENTWM_TEST_POSTGRES_URI")
    if uri:
        yield uri
        return
    started = subprocess.run([str(ROOT / ".ci" / "postgres.sh"), "start"], capture_output=True, text=True, timeout=120, check=False)
    if started.returncode != 0:
        reason = f"no PostgreSQL server could start here: {started.stderr.strip().splitlines()[-1:] or started.returncode}"
        print(reason)
        pytest.skip(reason)
    uri, folder = started.stdout.split()
    try:
        yield uri
    finally:
        subprocess.run([str(ROOT / ".ci" / "postgres.sh"), "stop", folder], timeout=60, check=False)


@pytest.mark.slow  # ~15 s: a second Python process imports torch and LangGraph
def test_a_paused_decision_resumes_from_postgres_in_a_new_process(postgres_uri: str):
    thread = f"decision-{uuid.uuid4().hex[:8]}"
    cfg = {"configurable": {"thread_id": thread}}
    with PostgresSaver.from_conn_string(postgres_uri) as saver:
        saver.setup()  # creates the checkpoint tables once (idempotent)
        app = builder().compile(checkpointer=saver)
        out = app.invoke({"observation": "a closed door", "goal": "leave", "candidates": list(VALUES)}, cfg)
        assert [r["candidate"] for r in out["__interrupt__"][0].value["ranking"]] == ["open the door", "knock", "wait"]
        assert app.get_state(cfg).next == ("review",)

    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "tests"), os.environ.get("PYTHONPATH", "")]),
           "OMP_NUM_THREADS": "1"}
    resumed = subprocess.run(
        [sys.executable, str(ROOT / "tests" / "postgres_resume.py"), postgres_uri, thread, "knock"],
        capture_output=True, text=True, timeout=120, env=env, check=False,
    )
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert json.loads(resumed.stdout.strip().splitlines()[-1]) == {"chosen": "knock", "reason": "human"}

    with PostgresSaver.from_conn_string(postgres_uri) as saver:  # the new process's result, read back here
        final = builder().compile(checkpointer=saver).get_state(cfg)
        assert final.next == () and final.values["chosen"] == "knock"
        history = list(saver.list(cfg))
        assert len(history) >= 4  # input, propose, simulate/score, review: every step persisted
