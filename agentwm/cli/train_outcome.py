"""``agentwm train dialogue --data LOGS.jsonl --outcome NAME``: the outcome recipe on any conversation logs.

The family is registered as ``dialogue-outcome`` (its own ``--help``); ``train dialogue`` with
``--data`` or ``--outcome`` (or ``--resume`` in a folder such a run wrote) is routed to it, so the
Chit-Chat next-turn recipe keeps its old usage. A run folder holds ``train_config.json`` (the
resolved settings), ``run.safetensors`` + ``run.json`` (the resumable checkpoint, atomic),
``metrics.jsonl``, ``summary.json`` and ``model/`` (the checkpoint ``score_replies`` and ``agentwm
score dialogue --model`` load). ``--resume`` continues the newest checkpoint with the run's saved
settings, changed only by the flags given now (e.g. ``--steps`` to train longer); a kill loses at
most ``--save-every`` steps, and the resumed run repeats the uninterrupted one step for step.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

FAMILY = "dialogue-outcome"
CONFIG_FILE = "train_config.json"
_ROUTE_FLAGS = ("--data", "--outcome")


def _flag_value(argv: list[str], flag: str) -> str | None:
    for i, word in enumerate(argv):
        if word == flag and i + 1 < len(argv):
            return argv[i + 1]
        if word.startswith(flag + "="):
            return word.split("=", 1)[1]
    return None


def route(argv: list[str]) -> list[str]:
    """``train dialogue ...`` becomes ``train dialogue-outcome ...`` when it names logs (``--data``,
    ``--outcome``) or resumes a folder this recipe wrote; every other command line is returned as is."""
    if argv[:2] != ["train", "dialogue"]:
        return argv
    names_logs = any(w in _ROUTE_FLAGS or w.startswith(tuple(f + "=" for f in _ROUTE_FLAGS)) for w in argv[2:])
    logdir = _flag_value(argv, "--logdir")
    resumes = "--resume" in argv and logdir is not None and (Path(logdir) / CONFIG_FILE).is_file()
    return ["train", FAMILY, *argv[2:]] if names_logs or resumes else argv


def _saved_settings(logdir: Path) -> dict[str, Any]:
    path = logdir / CONFIG_FILE
    try:
        saved = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as err:
        raise ValueError(f"--resume: cannot read {path} ({err}); start a fresh --logdir") from err
    if not isinstance(saved, dict):
        raise TypeError(f"--resume: {path} is not a JSON object; start a fresh --logdir")
    saved.pop("logdir", None)
    return saved


def _checkpoint_step(logdir: Path) -> int | None:
    path = logdir / "run.json"
    if not path.is_file():
        return None
    try:
        return int(json.loads(path.read_text(encoding="utf-8"))["step"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def run(args: argparse.Namespace) -> int:
    """Resolve the settings (fresh or resumed), train, print the summary; progress notes on stderr."""
    from agentwm.agents.dialogue.outcome_train import OutcomeTrainConfig, train_outcome_model
    from agentwm.cli.train import print_json, resolve

    if args.logdir is None:  # --print-config alone: the config's own default folder
        del args.logdir
    logdir = Path(getattr(args, "logdir", None) or OutcomeTrainConfig.model_fields["logdir"].default)
    step = _checkpoint_step(logdir)
    extra: dict[str, Any] = {}
    if args.resume:
        if step is None and not (logdir / CONFIG_FILE).is_file():
            raise FileNotFoundError(f"--resume: no run in {logdir} (no {CONFIG_FILE}, no run.json); drop --resume")
        if (logdir / CONFIG_FILE).is_file():
            extra = _saved_settings(logdir)
    elif step is not None and not args.print_config:
        raise ValueError(f"--logdir {logdir} holds a run (checkpoint at step {step}); add --resume to continue it, "
                         "or choose a fresh --logdir")  # fmt: skip
    if args.quiet:
        extra["progress"] = False
    config = resolve(args, OutcomeTrainConfig, **extra)
    if args.print_config:
        print_json(config.model_dump(mode="json"))
        return 0
    logdir.mkdir(parents=True, exist_ok=True)
    from agentwm.checkpoint import atomic_write

    text = json.dumps(config.model_dump(mode="json"), indent=2)

    def write(tmp: str) -> None:
        Path(tmp).write_text(text, encoding="utf-8")

    atomic_write(logdir / CONFIG_FILE, write)
    name = "agentwm train dialogue"
    try:
        _, summary = train_outcome_model(config)
    except KeyboardInterrupt:
        saved = _checkpoint_step(logdir)
        where = f"the checkpoint at step {saved} is kept" if saved is not None else "no checkpoint yet"
        print(f"{name}: interrupted; {where}; run the same command with --resume to continue", file=sys.stderr)
        return 130
    load = summary.get("load", {})
    skipped = sum(load.get("skipped", {}).values())
    if skipped:
        why = ", ".join(f"{k}: {v}" for k, v in sorted(load["skipped"].items()))
        first = f"; first: {load['examples'][0]}" if load.get("examples") else ""
        print(f"{name}: skipped {skipped} of {load.get('lines')} lines ({why}){first}", file=sys.stderr)
    if not summary.get("finished", True):
        print(f"{name}: stopped by the --minutes budget at step {summary['steps']} of {config.steps}; "
              "run the same command with --resume to continue", file=sys.stderr)  # fmt: skip
    print_json({k: v for k, v in summary.items() if k != "config"})
    return 0
