"""Fault injection: kill a tiny Dreamer run at random moments, damage its checkpoints, fill the
disk, and feed every command bad input; count what survived.

    python benchmarks/faults.py                  # 24 kills (half inside checkpoint writes), all corruptions
    python benchmarks/faults.py --kills 3        # the CI-sized form (tests/test_faults.py)

Kills: a ``train dreamer`` child (debug preset, a checkpoint every 40 frames) is SIGKILLed after a
random delay, or from inside a checkpoint write (its n-th file write, rename or fsync); each kill
is followed by loading the newest checkpoint the way ``--resume`` does. A kill is survived when that
load works, no checkpoint is reported damaged, and the checkpoint is at most one interval behind the
frames the run had logged (``frames_lost_max`` is the worst gap). The last child runs to the end.
Corruptions: every file of the newest checkpoint (and the ``latest`` pointer) truncated, zeroed or
replaced by garbage; handled when the load falls back to a good checkpoint and names the file.
Also: a pickle planted in a run folder must not run, and a full disk (ENOSPC from a patched write)
must be reported in one line with the previous checkpoint kept. Bad inputs: the corpus of
:mod:`fault_inputs` (CLI commands and API calls), each must end in one clean line, no traceback.

Prints one JSON object and writes it to ``benchmarks/results/faults.json`` with the command, commit,
date and CPU.
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import io
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.append(str(Path(__file__).resolve().parent))  # appended: benchmarks/textworld.py must not shadow textworld
from _results import write_result

EVERY = 40  # checkpoint interval of the killed runs (frames)
SETS = ["prefill=40", "train_ratio=8", "log_every=10", f"checkpoint_every={EVERY}", "eval_every=100000",
        "replay_capacity=5000"]  # fmt: skip


# ------------------------------------------------------------------------------------------------
# Kills


def child(logdir: str, steps: int, kill_in_write: int | None) -> int:
    """The killed process: ``train dreamer`` (resuming when the folder holds a run); with
    ``kill_in_write`` it SIGKILLs itself at its n-th checkpoint file write, rename or fsync."""
    from agentwm.agents.dreamer import run_checkpoint as ckpt
    from agentwm.cli import main

    if kill_in_write is not None:
        calls = [0]

        def killing(fn: Any) -> Any:
            def wrapped(*args: Any, **kwargs: Any) -> Any:
                calls[0] += 1
                if calls[0] == kill_in_write:
                    os.kill(os.getpid(), signal.SIGKILL)
                return fn(*args, **kwargs)

            return wrapped

        for name in ("save_file", "save_numpy", "write_bytes_synced", "fsync_path", "atomic_write"):
            setattr(ckpt, name, killing(getattr(ckpt, name)))
        ckpt.os.replace = killing(os.replace)  # type: ignore[attr-defined]
    argv = ["train", "dreamer", "--preset", "debug", "--steps", str(steps), "--logdir", logdir, "--quiet"]
    argv += [x for s in SETS for x in ("--set", s)]
    if (Path(logdir) / "config.json").is_file():
        argv.append("--resume")
    return main(argv)


def _logged(logdir: Path) -> int:
    path = logdir / "metrics.jsonl"
    frames = [0]
    if path.exists():
        for line in path.read_text().splitlines():
            with contextlib.suppress(json.JSONDecodeError, KeyError, TypeError):
                frames.append(int(json.loads(line)["frames"]))
    return max(frames)


def _resume_load(logdir: Path) -> tuple[int | None, str]:
    """Load the newest checkpoint as a resume does: ``(frames or None, warnings printed)``."""
    import numpy as np

    from agentwm.agents.dreamer import DreamerAgent, SequenceReplay, resolve_config
    from agentwm.agents.dreamer import run_checkpoint as ckpt
    from agentwm.worldmodels.base import ActionSpec

    cfg = resolve_config(["debug"], SETS)
    agent = DreamerAgent((4,), ActionSpec("discrete", 2), cfg)
    replay = SequenceReplay(cfg.replay_capacity, 1, (4,), 2, np.float32)
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        loaded = ckpt.load_latest(logdir, agent, replay)
    return (None if loaded is None else loaded[1]), err.getvalue()


def kill_trials(kills: int, seed: int, work: Path) -> dict[str, Any]:
    """``kills`` SIGKILLs of one run, each followed by a resume-style load; then a run to the end."""
    rng = random.Random(seed)
    logdir = work / "killed"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "OMP_WAIT_POLICY": "PASSIVE", "PYTHONPATH": str(ROOT)}
    survived, lost_max, steps = 0, 0, 100_000
    for i in range(kills):
        in_write = rng.randrange(1, 40) if i % 2 else None
        cmd = [sys.executable, __file__, "--child", str(logdir), "--steps", str(steps)]
        cmd += ["--kill-in-write", str(in_write)] if in_write else []
        proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        start = time.monotonic()
        before = _logged(logdir)
        while proc.poll() is None and time.monotonic() - start < 300:
            if in_write is None and _logged(logdir) > before and rng.random() < 0.02:
                break  # a random moment once the run is under way
            time.sleep(0.05)
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
        _, err = proc.communicate()
        killed = proc.returncode == -signal.SIGKILL
        reached = _logged(logdir)
        try:
            frames, warnings = _resume_load(logdir)
        except Exception as exc:  # noqa: BLE001 - a failed load is what this counts
            frames, warnings = None, f"{type(exc).__name__}: {exc}"
        ok = killed and "unusable" not in warnings and not warnings.strip().startswith("Traceback")
        ok = ok and (frames is not None or reached < EVERY + 20)
        lost = reached - (frames or 0)
        ok = ok and lost <= EVERY + 10  # at most one interval (+ the frames of the step in progress)
        lost_max = max(lost_max, lost)
        survived += ok
        if not ok:
            print(f"kill {i} not survived: killed={killed} frames={frames} reached={reached} "
                  f"{warnings.strip()[:300]} {err.decode()[-300:]}", file=sys.stderr)  # fmt: skip
    final_steps = _logged(logdir) + 2 * EVERY
    done = subprocess.run([sys.executable, __file__, "--child", str(logdir), "--steps", str(final_steps)],
                          cwd=ROOT, env=env, capture_output=True, timeout=600, check=False)  # fmt: skip
    finished = done.returncode == 0 and json.loads(done.stdout.decode().splitlines()[-1])["frames"] == final_steps
    if not finished:
        print(f"final resume failed: {done.stderr.decode()[-500:]}", file=sys.stderr)
    return {"kills": kills, "kills_survived": survived, "frames_lost_max": lost_max, "final_run_finished": finished}


# ------------------------------------------------------------------------------------------------
# Corruptions and a full disk


def _two_checkpoints(root: Path) -> Path:
    """A run folder with two complete checkpoints (40 and 80 frames) written by the library."""
    import numpy as np

    from agentwm.agents.dreamer import DreamerAgent, SequenceReplay, resolve_config
    from agentwm.agents.dreamer import run_checkpoint as ckpt
    from agentwm.worldmodels.base import ActionSpec

    cfg = resolve_config(["debug"], SETS)
    agent = DreamerAgent((4,), ActionSpec("discrete", 2), cfg)
    replay = SequenceReplay(cfg.replay_capacity, 1, (4,), 2, np.float32)
    rng = np.random.default_rng(0)
    for frames in (EVERY, 2 * EVERY):
        for _ in range(EVERY):
            replay.add(rng.normal(size=(1, 4)), np.eye(2)[[rng.integers(2)]], rng.normal(size=1),
                       np.zeros(1, bool), np.zeros(1, bool))  # fmt: skip
        state = {"loop": {"frames": frames}, "rng": {"numpy": np.random.get_state()}}
        ckpt.save(root, frames, agent, state, replay, keep=3)
    (root / "config.json").write_text(json.dumps(cfg.model_dump()))
    return root


def _damage(path: Path, how: str) -> None:
    data = path.read_bytes()
    if how == "truncated":
        path.write_bytes(data[: len(data) // 2])
    elif how == "zeroed":
        path.write_bytes(bytes(len(data)))
    else:
        path.write_bytes(os.urandom(max(16, len(data))))


def corruption_trials(work: Path) -> dict[str, Any]:
    """Damage each file of the newest checkpoint three ways; each load must fall back and say why."""
    pristine = _two_checkpoints(work / "pristine")
    newest = pristine / "checkpoints" / f"ckpt_{2 * EVERY:010d}"
    chunk = f"replay/{EVERY:012d}-{2 * EVERY:012d}.safetensors"
    targets = [*(f"{newest.name}/{p.name}" for p in sorted(newest.iterdir())), chunk, "latest"]
    total, handled = 0, 0
    for target in targets:
        for how in ("truncated", "zeroed", "garbage"):
            run = work / f"c{total}"
            shutil.copytree(pristine, run)
            _damage(run / "checkpoints" / target, how)
            total += 1
            try:
                frames, warnings = _resume_load(run)
            except Exception as exc:  # noqa: BLE001
                print(f"{target} {how}: {type(exc).__name__}: {exc}", file=sys.stderr)
                continue
            named = Path(target).name in warnings
            ok = (frames == 2 * EVERY and not warnings) if target == "latest" else (frames == EVERY and named)
            handled += ok
            if not ok:
                print(f"{target} {how}: frames={frames} {warnings.strip()[:300]}", file=sys.stderr)
    planted = _planted_pickle(work)
    disk = disk_full_trial(work)
    return {"corruptions": total + 2, "corruptions_handled": handled + planted + disk}


class _Boom:
    def __reduce__(self) -> tuple[Any, ...]:
        return (os.system, ("touch PWNED",))


def _planted_pickle(work: Path) -> bool:
    """A crafted ``state.pt`` (earlier format) and ``envs.pkl`` in a run folder: neither may run."""
    import pickle

    import torch

    run = _two_checkpoints(work / "planted")
    newest = run / "checkpoints" / f"ckpt_{2 * EVERY:010d}"
    marker = work / "PWNED"
    (newest / "envs.pkl").write_bytes(pickle.dumps(_Boom()))
    older = run / "checkpoints" / f"ckpt_{EVERY:010d}"
    manifest = json.loads((older / "manifest.json").read_text())
    manifest.pop("format")
    (older / "manifest.json").write_text(json.dumps(manifest))
    torch.save({"replay_rng": {}, "boom": _Boom()}, older / "state.pt")
    cwd = os.getcwd()
    os.chdir(work)
    try:
        frames, _ = _resume_load(run)  # newest loads (envs.pkl ignored without the opt-in)
        shutil.rmtree(newest)
        try:
            _resume_load(run)  # the older one's pickle is refused
            refused = False
        except ValueError as exc:
            refused = "state.pt" in str(exc)
    finally:
        os.chdir(cwd)
    ok = frames == 2 * EVERY and refused and not marker.exists()
    if not ok:
        print(f"planted pickle: frames={frames} refused={refused} ran={marker.exists()}", file=sys.stderr)
    return ok


def disk_full_trial(work: Path) -> bool:
    """ENOSPC from a checkpoint write: one line naming the cause, the previous checkpoint kept."""
    import numpy as np

    from agentwm.agents.dreamer import DreamerAgent, SequenceReplay, resolve_config
    from agentwm.agents.dreamer import run_checkpoint as ckpt
    from agentwm.worldmodels.base import ActionSpec

    run = _two_checkpoints(work / "full")
    cfg = resolve_config(["debug"], SETS)
    agent = DreamerAgent((4,), ActionSpec("discrete", 2), cfg)
    replay = SequenceReplay(cfg.replay_capacity, 1, (4,), 2, np.float32)
    ckpt.load_latest(run, agent, replay)
    replay.add(np.zeros((1, 4)), np.eye(2)[[0]], np.zeros(1), np.zeros(1, bool), np.zeros(1, bool))

    def full(*args: Any, **kwargs: Any) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), "state.json")

    original = ckpt.write_bytes_synced
    ckpt.write_bytes_synced = full  # type: ignore[assignment]
    try:
        ckpt.save(run, 3 * EVERY, agent, {"loop": {}}, replay, keep=3)
        message = ""
    except ValueError as exc:
        message = str(exc)
    finally:
        ckpt.write_bytes_synced = original  # type: ignore[assignment]
    latest = ckpt.latest(run)
    leftovers = list((run / "checkpoints").glob(".tmp-*")) + list((run / "checkpoints" / "replay").glob(".tmp-*"))
    ok = ("no space left on device" in message and "\n" not in message and latest is not None
          and latest.name == f"ckpt_{2 * EVERY:010d}" and not leftovers)  # fmt: skip
    if not ok:
        print(f"disk full: {message!r} latest={latest} leftovers={leftovers}", file=sys.stderr)
    return ok


# ------------------------------------------------------------------------------------------------


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--kills", type=int, default=24, help="SIGKILLs of the training run (half inside writes)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=None, help="where to write the JSON (default: benchmarks/results/faults.json)")
    p.add_argument("--child", default=None, help=argparse.SUPPRESS)
    p.add_argument("--steps", type=int, default=100_000, help=argparse.SUPPRESS)
    p.add_argument("--kill-in-write", type=int, default=None, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        raise SystemExit(child(args.child, args.steps, args.kill_in_write))
    import torch
    from _fault_inputs import bad_input_trials

    torch.set_num_threads(1)
    work = Path(tempfile.mkdtemp(prefix="agentwm_faults_"))
    try:
        result = {**kill_trials(args.kills, args.seed, work), **corruption_trials(work),
                  **bad_input_trials(work)}  # fmt: skip
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(json.dumps(result))
    write_result("faults", result, path=args.out)


if __name__ == "__main__":
    main()
