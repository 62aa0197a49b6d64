"""The bad-input corpus of ``benchmarks/faults.py``: CLI commands and API calls that must each be
refused with one clean line (a non-zero exit or a ValueError/TypeError), never a traceback, and
before any model is loaded (every CLI case here finishes in well under a second)."""

from __future__ import annotations

import contextlib
import io
import json
import math
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any


def _fixtures(work: Path) -> dict[str, str]:
    """Folders and files the corpus points at (a Dreamer run, broken model folders, bad files)."""
    from faults import _two_checkpoints

    run = _two_checkpoints(work / "inputs_run")
    empty = work / "empty_folder"
    empty.mkdir(exist_ok=True)
    garbage = work / "garbage_model"
    garbage.mkdir(exist_ok=True)
    (garbage / "config.json").write_bytes(b"{not json")
    (garbage / "model.safetensors").write_bytes(b"\x00garbage weights")
    bad_run = work / "bad_run"
    bad_run.mkdir(exist_ok=True)
    (bad_run / "config.json").write_text("[1, 2")
    (work / "latin1.json").write_bytes(b'["caf\xe9"]')
    (work / "garbage.json").write_text("{'context': ")
    (work / "ok.json").write_text(json.dumps(["hi", "hello, how are you?"]))
    return {"run": str(run), "empty": str(empty), "garbage": str(garbage), "bad_run": str(bad_run),
            "latin1": str(work / "latin1.json"), "bad_json": str(work / "garbage.json"),
            "ok": str(work / "ok.json"), "missing": str(work / "no_such_thing")}  # fmt: skip


def cli_corpus(f: dict[str, str]) -> list[list[str]]:
    """Bad command lines (each a list of arguments to ``agentwm``)."""
    llm = ["score", "llm", "--observation", "a locked door", "--goal", "get out", "--candidates", "open door"]
    score = ["score", "ensemble", "--model", f["run"], "--obs", "[0, 0, 0, 0]", "--candidates", "[0, 1]"]
    dialogue = ["score", "dialogue", "--context-file", f["ok"], "--candidates", "yes"]
    return [
        ["eval", "dreamer", "--logdir", f["run"], "--episodes", "0"],
        ["eval", "dreamer", "--logdir", f["run"], "--episodes", "-3"],
        ["eval", "dreamer", "--logdir", f["missing"]],
        ["eval", "dreamer", "--logdir", f["bad_run"]],
        ["eval", "dreamer", "--logdir", f["empty"]],
        ["train", "dreamer", "--logdir", f["missing"], "--resume"],
        ["train", "dreamer", "--logdir", f["run"]],  # holds a run; --resume forgotten
        ["train", "dreamer", "--logdir", f["missing"], "--set", "wm_lr=inf", "--print-config"],
        ["train", "dreamer", "--logdir", f["missing"], "--set", "actor_lr=nan", "--print-config"],
        ["train", "dreamer", "--logdir", f["missing"], "--set", "critic_lr=-1", "--print-config"],
        ["train", "dreamer", "--logdir", f["missing"], "--set", "no_such_field=1", "--print-config"],
        ["train", "dreamer", "--logdir", f["missing"], "--steps", "0"],
        ["train", "dreamer", "--logdir", f["missing"], "--env", "NoSuchEnv-v9"],
        ["train", "dreamer", "--logdir", f["missing"], "--device", "gpu7"],
        ["plan", "--env", "NoSuchEnv-v0"],
        ["plan", "--env", "Taxi-v4"],
        ["plan", "--env", "FrozenLake-v1"],
        ["plan", "--env", "dmc:cartpole-swingup"],
        ["plan", "--env", ""],
        ["plan", "--env", "no_such_module:Env-v0"],
        ["train", "dreamer", "--logdir", f["missing"], "--env", "no_such_module:Env-v0"],
        ["plan", "--episodes", "0"],
        ["plan", "--horizon", "0"],
        ["plan", "--samples", "-1"],
        ["plan", "--iterations", "0"],
        ["plan", "--transitions", "0"],
        ["plan", "--members", "0"],
        ["plan", "--gamma", "1.5"],
        ["plan", "--gamma", "nan"],
        ["plan", "--kappa", "inf"],
        ["plan", "--model", f["missing"]],
        ["plan", "--model", "some-org/some-model"],
        ["plan", "--model", f["empty"]],
        ["plan", "--model", f["garbage"]],
        ["eval", "ensemble", "--model", f["missing"]],
        ["train", "ensemble", "--logdir", f["missing"], "--env", "Taxi-v4"],
        [*score[:3], f["missing"], *score[4:]],
        [*score[:5], "not json", *score[6:]],
        [*score[:5], "[NaN, 0, 0, 0]", *score[6:]],
        [*score[:5], "[]", *score[6:]],
        [*score[:7], "[Infinity]"],
        [*llm[:7], "", "  "],
        [*llm[:3], "", *llm[4:]],
        [*llm[:5], "   ", *llm[6:]],
        [*llm, "--model", f["missing"]],
        [*llm, "--model", "HuggingFaceTB/SmolLM2-135M-Instruct"],
        [*llm, "--model", f["empty"]],
        [*llm, "--horizon", "0"],
        [*llm, "--samples", "0"],
        [*llm, "--max-new-tokens", "0"],
        [*llm, "--temperature", "0"],
        [*llm, "--temperature", "nan"],
        [*llm, "--retries", "-1"],
        [*llm, "--gamma", "-0.1"],
        ["score", "dialogue", "--context-file", f["missing"]],
        ["score", "dialogue", "--context-file", f["latin1"]],
        ["score", "dialogue", "--context-file", f["bad_json"]],
        [*dialogue, "--candidates-file", f["bad_json"]],
        [*dialogue, "--model", f["missing"]],
        [*dialogue, "--horizon", "0"],
        [*dialogue, "--samples", "0"],
        ["train", "dyna", "--env", "NoSuchEnv-v0"],
        ["train", "dyna", "--steps", "0"],
        ["train", "dyna", "--planning-steps", "-1"],
        ["train", "muzero", "--simulations", "0"],
        ["train", "muzero", "--steps", "-5"],
        ["train", "muzero", "--set", "lr=inf"],
        ["train", "muzero", "--set", "lr=0"],
        ["train", "pets", "--particles", "0"],
        ["train", "pets", "--steps", "0"],
        ["train", "worldmodels", "--generations", "0"],
        ["train", "worldmodels", "--temperature", "-1"],
        ["train", "worldmodels", "--set", "lr=nan"],
        ["train", "planet", "--steps", "0"],
        ["train", "planet", "--set", "lr=-0.001"],
        ["train", "dialogue", "--logdir", f["missing"], "--minutes", "0"],
        ["train", "dialogue", "--logdir", f["missing"], "--steps", "0"],
        ["train", "babyai", "--logdir", f["missing"], "--steps", "0"],
        ["compare", "dreamer", f["missing"]],
        ["compare", "dreamer", f["run"], "--target", "nan"],
        ["bench", "no_such_benchmark"],
    ]


def api_corpus(f: dict[str, str]) -> list[Callable[[], Any]]:
    """Bad library calls (each must raise ValueError, TypeError or FileNotFoundError with a one-line
    message naming the argument; pydantic configs raise their ValidationError naming the field)."""
    import torch

    from agentwm.agents.dreamer import DreamerConfig, evaluate_logdir
    from agentwm.checkpoint import load_config, load_weights
    from agentwm.core.finite import check_positive_finite
    from agentwm.planning import CEM, MCTS, MPPI, RandomShooting, rank_candidates
    from agentwm.text.client import LLMClient
    from agentwm.worldmodels.base import ActionSpec
    from agentwm.worldmodels.ensemble import EnsembleDynamics
    from agentwm.worldmodels.rssm import RSSM, RSSMConfig

    spec = ActionSpec("discrete", 2)
    rssm = RSSM((4,), spec, RSSMConfig.preset("debug"))
    ens = EnsembleDynamics(4, spec)
    nan_obs = torch.tensor([[0.0, math.nan, 0.0, 0.0]])
    inf_obs = torch.tensor([[0.0, math.inf, 0.0, 0.0]])
    good = ens.observe(torch.zeros(1, 4))
    bad_state = {"obs": nan_obs}
    state = rssm.observe(torch.zeros(1, 4))
    nan_actions = torch.full((3, 1, 2), math.nan)
    first = torch.eye(2)
    return [
        lambda: rssm.observe(nan_obs),
        lambda: rssm.observe(inf_obs),
        lambda: rssm.observe(torch.zeros(1, 4), state, torch.tensor([[math.nan, 1.0]])),
        lambda: rssm.observe_sequence(nan_obs[:, None], torch.zeros(1, 1, 2), torch.ones(1, 1, dtype=torch.bool)),
        lambda: rssm.imagine(state, nan_actions),
        lambda: rssm.imagine(state, torch.zeros(3, 1, 2), 0),
        lambda: ens.observe(nan_obs),
        lambda: ens.observe(inf_obs.numpy()),
        lambda: CEM(ens, horizon=3, samples=8, elites=2, iterations=1).plan(bad_state),
        lambda: MPPI(ens, horizon=3, samples=8, iterations=1).plan(bad_state),
        lambda: RandomShooting(ens, horizon=3, samples=8).plan(bad_state),
        lambda: MCTS(ens, simulations=4).plan(bad_state),
        lambda: rank_candidates(ens, bad_state, first, horizon=3),
        lambda: rank_candidates(ens, good, first, horizon=3, samples=0),
        lambda: LLMClient(object()),  # type: ignore[arg-type]
        lambda: DreamerConfig(wm_lr=math.inf),
        lambda: DreamerConfig(actor_lr=math.nan),
        lambda: DreamerConfig(critic_lr=-1.0),
        lambda: check_positive_finite("lr", math.inf),
        lambda: evaluate_logdir(f["run"], episodes=0),
        lambda: load_config(f["garbage"]),
        lambda: load_weights(f["garbage"], torch.nn.Linear(1, 1)),
    ]


def _clean_cli(argv: list[str]) -> tuple[bool, str]:
    from agentwm.cli import main

    out, err = io.StringIO(), io.StringIO()
    start = time.perf_counter()
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = main(argv)
    except SystemExit as exc:  # argparse: usage line(s) and one "error:" line
        code = exc.code if isinstance(exc.code, int) else 1
        lines = err.getvalue().strip().splitlines()
        return code != 0 and bool(lines) and "error:" in lines[-1], err.getvalue()
    except BaseException as exc:  # noqa: BLE001 - an escaped exception is a traceback for the user
        return False, f"{type(exc).__name__}: {exc}"
    lines = err.getvalue().strip().splitlines()
    quick = time.perf_counter() - start < 30  # refused before any model load
    return code != 0 and len(lines) == 1 and "Traceback" not in lines[0] and quick, err.getvalue()


def _clean_api(call: Callable[[], Any]) -> tuple[bool, str]:
    from pydantic import ValidationError

    try:
        call()
    except ValidationError as exc:  # pydantic's own report: one entry per field, the field named first
        return exc.error_count() >= 1, str(exc)
    except (ValueError, TypeError, FileNotFoundError) as exc:
        return "\n" not in str(exc).strip() and bool(str(exc).strip()), str(exc)
    except BaseException as exc:  # noqa: BLE001
        return False, f"{type(exc).__name__}: {exc}"
    return False, "accepted"


def bad_input_trials(work: Path) -> dict[str, Any]:
    """Run the whole corpus; count the inputs refused cleanly (failures are listed on stderr)."""
    fixtures = _fixtures(work)
    results = []
    for argv in cli_corpus(fixtures):
        ok, why = _clean_cli(argv)
        results.append(ok)
        if not ok:
            print(f"not refused cleanly: agentwm {' '.join(argv)} -> {why.strip()[-400:]}", file=sys.stderr)
    for i, call in enumerate(api_corpus(fixtures)):
        ok, why = _clean_api(call)
        results.append(ok)
        if not ok:
            print(f"not refused cleanly: API case {i} -> {why.strip()[-400:]}", file=sys.stderr)
    return {"bad_inputs": len(results), "bad_inputs_refused_cleanly": sum(results)}
