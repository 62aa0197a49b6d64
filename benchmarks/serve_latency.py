"""How the served graphs answer on ``langgraph dev``: time to ``/ok``, the worst ``/ok`` round trip
while the chat model loads and runs, the first planning run (which waits for the model) and later
runs (model loaded), and a dialogue run. Targets (issue 19): later runs <= 5 s with the local
model, ``/ok`` never slower than 1 s.

    python benchmarks/serve_latency.py                     # AGENTWM_CHAT_MODEL=smollm2 (local)
    python benchmarks/serve_latency.py --model scripted    # no LLM: the server's own overhead
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # _results.py
from _results import write_result

ROOT = Path(__file__).resolve().parents[1]
ROOMS = ["a small room", "a dusty cellar", "a narrow hallway", "a cold kitchen", "an empty attic", "a locked study"]
"""One room per run: the same input twice would be answered from the LLM client's cache."""
SCRIPTED = {
    "rules": [["Propose", '["wait", "open the door"]'], ["Action: open the door", "Observation: you walk out\nDone: yes"],
              ["Action:", "Observation: nothing changes\nDone: no"]],
    "default": "1. Congratulations! What breed is it?\n2. Nice.",
}


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _ok(url: str) -> float | None:
    t0 = time.monotonic()
    try:
        with urllib.request.urlopen(f"{url}/ok", timeout=5) as r:
            return time.monotonic() - t0 if r.status == 200 else None
    except OSError:
        return None


async def _runs(url: str, runs: int) -> dict[str, object]:
    from langgraph_sdk import get_client

    client = get_client(url=url)
    planning: list[float] = []
    chosen: list[object] = []
    for i in range(runs):
        thread = await client.threads.create()
        situation = f"You are in {ROOMS[i % len(ROOMS)]}. There is a closed wooden door to the north."
        t0 = time.monotonic()
        out = await client.runs.wait(thread["thread_id"], "planning", input={"observation": situation, "goal": "leave the room"})
        planning.append(time.monotonic() - t0)
        chosen.append(out.get("chosen") if isinstance(out, dict) else out)
    thread = await client.threads.create()
    t0 = time.monotonic()
    await client.runs.wait(thread["thread_id"], "dialogue", input={"messages": [{"role": "user", "content": "I just got a puppy!"}]})
    return {"load_avg_during": os.getloadavg()[0], "planning_first_s": round(planning[0], 2),
            "planning_later_s_median": round(statistics.median(planning[1:]), 2) if runs > 1 else None,
            "planning_later_s": [round(x, 2) for x in planning[1:]],
            "dialogue_s": round(time.monotonic() - t0, 2), "chosen": chosen}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", choices=["smollm2", "scripted"], default="smollm2", help="AGENTWM_CHAT_MODEL")
    parser.add_argument("--runs", type=int, default=3, help="planning runs (the first one waits for the model)")
    args = parser.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="agentwm-serve-"))
    spec = args.model
    if spec == "scripted":
        (tmp / "rules.json").write_text(json.dumps(SCRIPTED))
        spec = f"scripted:{tmp / 'rules.json'}"
    env = {**os.environ, "AGENTWM_CHAT_MODEL": spec, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1"),
           "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    port = _port()
    url = f"http://127.0.0.1:{port}"
    cli = Path(sys.executable).with_name("langgraph")
    log = (tmp / "server.log").open("w")
    t_start = time.monotonic()
    proc = subprocess.Popen([str(cli), "dev", "--no-browser", "--no-reload", "--host", "127.0.0.1", "--port", str(port)],
                            cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    health: list[float] = []
    stop = threading.Event()
    try:
        while _ok(url) is None:
            if proc.poll() is not None or time.monotonic() - t_start > 180:
                raise SystemExit(f"langgraph dev did not start; log: {tmp / 'server.log'}")
            time.sleep(0.2)
        up_s = time.monotonic() - t_start

        def probe() -> None:
            while not stop.is_set():
                latency = _ok(url)
                health.append(latency if latency is not None else 5.0)
                time.sleep(0.2)

        prober = threading.Thread(target=probe, daemon=True)
        prober.start()
        runs = asyncio.run(_runs(url, args.runs))
        stop.set()
        prober.join()
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(20)
        log.close()
    blocking = "BlockingError" in (tmp / "server.log").read_text()
    result = {"model": args.model, "server_up_s": round(up_s, 2), **runs,
              "health_checks": len(health), "health_max_s": round(max(health), 3),
              "health_p50_s": round(statistics.median(health), 4), "blocking_errors": blocking,
              "targets": {"later_run_le_5s": (runs["planning_later_s_median"] or 0) <= 5.0, "health_max_le_1s": max(health) <= 1.0}}
    print(json.dumps(write_result("serve_latency", result, variant=None if args.model == "smollm2" else args.model)))


if __name__ == "__main__":
    main()
