"""Argument checks every ``agentwm`` command passes before it loads a model or builds an env.

:func:`check_args` looks at the parsed namespace by option name, so new commands get the checks of
the options they share: counts must be >= 1, discounts in [0, 1], numbers finite, text inputs
non-blank, model and run folders must exist (local folders only: nothing is downloaded), files must
be readable UTF-8 JSON, and envs must be ones the command supports. Each failure is a ``ValueError``
or ``FileNotFoundError`` whose one-line message names the option; ``agentwm.cli.main`` prints it.
"""

from __future__ import annotations

import importlib.util
import json
import math
import os
from pathlib import Path
from typing import Any

# option -> smallest allowed value (counts and budgets)
_AT_LEAST = {
    "episodes": 1, "transitions": 1, "members": 1, "horizon": 1, "samples": 1, "iterations": 1,
    "simulations": 1, "env_steps": 1, "real_steps": 1, "max_episodes": 1, "frames": 1, "generations": 1,
    "particles": 1, "steps": 1, "max_new_tokens": 1, "epochs": 1, "units": 1, "limit": 1, "train_limit": 1,
    "max_steps": 1, "eval_every": 1, "planning_steps": 0, "retries": 0,
}  # fmt: skip
_POSITIVE = ("minutes", "temperature")  # finite and > 0
_FINITE = ("kappa", "target")
_MPC_COMMANDS = ("plan",)


def _option(name: str, args: Any = None) -> str:
    """The flag for a namespace field: ``--steps`` where it is the ``train`` family's run length."""
    if args is not None and getattr(args, "command", None) == "train":
        from agentwm.cli.train import FAMILIES

        family = FAMILIES.get(getattr(args, "family", None) or "")
        if family is not None and family[2] == name:
            return "--steps"
    return "--" + name.replace("_", "-")


def _check_numbers(args: Any) -> None:
    for name, low in _AT_LEAST.items():
        value = getattr(args, name, None)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < low):
            raise ValueError(f"{_option(name, args)} must be an integer >= {low}, got {value!r}")
    for name in _POSITIVE:
        value = getattr(args, name, None)
        if value is not None and not (math.isfinite(value) and value > 0):
            raise ValueError(f"{_option(name)} must be a finite number > 0, got {value!r}")
    for name in _FINITE:
        value = getattr(args, name, None)
        if value is not None and not math.isfinite(value):
            raise ValueError(f"{_option(name)} must be a finite number, got {value!r}")
    gamma = getattr(args, "gamma", None)
    if gamma is not None and not (math.isfinite(gamma) and 0.0 <= gamma <= 1.0):
        raise ValueError(f"--gamma must be a number in [0, 1], got {gamma!r}")


def read_json_file(path: str | Path, option: str) -> Any:
    """A JSON file's content; errors name the option and the file."""
    file = Path(path)
    if not file.is_file():
        raise FileNotFoundError(f"{option}: no file {file}")
    try:
        return json.loads(file.read_bytes().decode("utf-8"))
    except UnicodeDecodeError as err:
        raise ValueError(f"{option}: {file} is not UTF-8 text ({err.reason} at byte {err.start})") from err
    except json.JSONDecodeError as err:
        raise ValueError(f"{option}: {file} is not valid JSON ({err})") from err


def check_model_folder(path: str, option: str = "--model") -> Path:
    """A local checkpoint folder holding ``config.json``; Hub-style names are refused (no downloads)."""
    folder = Path(path).expanduser()
    if not folder.is_dir():
        hub = "/" in path and not path.startswith((".", "/", "~")) and len(path.split("/")) == 2
        why = " (agentwm loads local folders only; Hub names are not downloaded)" if hub else ""
        raise FileNotFoundError(f"{option}: no folder {path}{why}")
    config = folder / "config.json"
    if not config.is_file():
        raise FileNotFoundError(f"{option}: {folder} holds no config.json (not a saved model folder)")
    data = read_json_file(config, option)
    if not isinstance(data, dict):
        raise TypeError(f"{option}: {config} is not a JSON object")
    return folder


def check_env(name: str, *, need_box_obs: bool = False) -> None:
    """Refuse envs the command cannot run, in one line that says what it supports."""
    supported = "gymnasium ids with flat Box observations (e.g. CartPole-v1, Pendulum-v1, MountainCarContinuous-v0)"
    if not isinstance(name, str) or not name.strip():
        raise ValueError(f"--env must be a non-empty environment id, got {name!r}")
    if name.startswith("dmc:"):
        if need_box_obs:
            raise ValueError(f"--env {name}: this command supports {supported}, not dmc: tasks")
        if importlib.util.find_spec("dm_control") is None:
            raise ValueError(f"--env {name}: DeepMind Control tasks need the dmc extra (pip install 'agentwm[dmc]')")
        return
    import gymnasium as gym

    if ":" in name:  # "module:Env-v0": gym.make imports the module, which registers the env
        module = name.split(":", 1)[0]
        try:
            found = importlib.util.find_spec(module) is not None
        except (ImportError, ValueError):
            found = False
        if not found:
            raise ValueError(f"--env {name}: no module {module!r} to import the env from")
    elif name not in gym.registry:
        raise ValueError(f"--env {name}: unknown gymnasium id; supported: {supported}")
    if need_box_obs:
        try:
            env = gym.make(name)
        except Exception as err:
            raise ValueError(f"--env {name}: cannot be built here ({type(err).__name__}: {err})") from err
        space = env.observation_space
        env.close()
        if not isinstance(space, gym.spaces.Box) or len(space.shape) != 1:
            raise ValueError(f"--env {name}: {type(space).__name__} observations are not supported; "
                             f"supported: {supported}")  # fmt: skip


def _check_text(args: Any) -> None:
    for name in ("observation", "goal"):
        value = getattr(args, name, None)
        if isinstance(value, str) and not value.strip():
            raise ValueError(f"{_option(name)} must not be empty")
    cands = getattr(args, "candidates", None)
    if isinstance(cands, list):
        if getattr(args, "family", None) == "llm" and not cands:
            raise ValueError("--candidates: give at least one candidate")
        blank = [i for i, c in enumerate(cands) if not c.strip()]
        if blank:
            raise ValueError(f"--candidates: candidate {blank[0] + 1} is empty; every candidate needs text")


def _check_score_ensemble(args: Any) -> None:
    for name in ("obs", "candidates"):
        raw = getattr(args, name)
        try:
            value = json.loads(raw, parse_constant=lambda c: float("nan"))
        except json.JSONDecodeError as err:
            raise ValueError(f"--{name} is not valid JSON ({err})") from err
        flat = value if isinstance(value, list) else [value]
        while any(isinstance(v, list) for v in flat):
            flat = [x for v in flat for x in (v if isinstance(v, list) else [v])]
        if not isinstance(value, list) or not flat:
            raise ValueError(f"--{name} must be a non-empty JSON list, got {raw!r}")
        if any(isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) for v in flat):
            raise ValueError(f"--{name} must hold finite numbers only, got {raw!r}")


def check_args(args: Any) -> None:
    """Check a parsed ``agentwm`` command line before anything heavy runs (see the module docstring)."""
    command, family = getattr(args, "command", None), getattr(args, "family", None)
    _check_numbers(args)
    _check_text(args)
    if command == "score" and family == "ensemble":
        _check_score_ensemble(args)
    model = getattr(args, "model", None)
    if isinstance(model, str):
        if command == "score" and family == "llm":
            os.environ["HF_HUB_OFFLINE"] = os.environ["TRANSFORMERS_OFFLINE"] = "1"  # never download
            if model != "smollm2":
                check_model_folder(model)
        else:
            check_model_folder(model)
    for name in ("context_file", "candidates_file"):
        path = getattr(args, name, None)
        if path is not None:
            read_json_file(path, _option(name))
    if command == "eval" and family == "dreamer" or command == "compare":
        for logdir in getattr(args, "logdirs", None) or [args.logdir]:
            if not (Path(logdir) / "config.json").is_file():
                raise FileNotFoundError(f"--logdir {logdir}: no Dreamer run there (no config.json)")
    env = getattr(args, "env", None)
    if env is not None:
        check_env(env, need_box_obs=command in _MPC_COMMANDS or (command == "train" and family == "ensemble"))
