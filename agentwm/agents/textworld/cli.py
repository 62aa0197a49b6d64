"""Command line of the TextWorld pipeline: ``make-games``, ``collect``, ``relabel``, ``train``, ``play``.

Reachable as ``agentwm textworld <command>`` (and ``agentwm train textworld`` for training) or
``python -m agentwm.agents.textworld <command>``. Bad input ends in a one-line error, exit code 2.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from pydantic import ValidationError


def add_commands(sub: Any) -> None:
    """Add the pipeline's subcommands to an argparse subparsers object."""
    p = sub.add_parser("make-games", help="generate TextWorld games with tw-make's generator")
    p.add_argument("--setting", required=True, choices=["quest5", "quest8", "tiny"], help="quest5: world 5, 10 objects, quest 5; quest8: world 6, 12 objects, quest 8; tiny: world 2, 2 objects, quest 2 (smoke runs)")
    p.add_argument("--split", required=True, choices=["train", "validation", "test"], help="seeds train 0-2999, validation 3000-3499, test 3500-3999")
    p.add_argument("--count", type=int, required=True, help="games to make (the first of the split)")
    p.add_argument("--start", type=int, default=0, help="skip this many seeds of the split first")
    p.add_argument("--out", required=True, help="folder for the games")
    p.add_argument("--workers", type=int, default=1, help="parallel generator processes")
    p.add_argument("--check", action="store_true", help="also play each game's walkthrough and list the games it cannot win within 50 steps (parser ambiguities)")
    p.set_defaults(func=_printing(_make_games))

    p = sub.add_parser("collect", help="play games (walkthroughs, perturbed, random) into a dataset")
    p.add_argument("--games", required=True, help="folder of games made by make-games")
    p.add_argument("--setting", required=True, choices=["quest5", "quest8"], help="which games of the folder")
    p.add_argument("--split", default="train", choices=["train", "validation", "test"], help="which split's games")
    p.add_argument("--limit", type=int, default=None, help="at most this many games")
    p.add_argument("--offset", type=int, default=0, help="skip this many games of the split first")
    p.add_argument("--out", required=True, help="dataset folder to write")
    p.add_argument("--perturbed", type=int, default=4, help="perturbed walkthroughs per game")
    p.add_argument("--random-episodes", type=int, default=1, help="random-play episodes per game")
    p.add_argument("--seed", type=int, default=0, help="seed of the random choices")
    p.add_argument("--alternatives", type=int, default=3, help="other menu commands per state stored beside the winning one")
    p.set_defaults(func=_printing(_collect))

    p = sub.add_parser("relabel", help="copy a dataset with more of each stored menu as counterfactual commands")
    p.add_argument("--data", required=True, help="dataset folder made by collect")
    p.add_argument("--out", required=True, help="dataset folder to write")
    p.add_argument("--alternatives", type=int, default=16, help="other menu commands per state")
    p.add_argument("--seed", type=int, default=0, help="seed of the choice among the menu")
    p.set_defaults(func=_printing(_relabel))

    p = sub.add_parser("play", help="play a trained model's planner (or an ablation) on games")
    p.add_argument("--model", default=None, help="checkpoint folder of the world model (learned) or direct model (direct); default: the shipped one in models/textworld-minilm-gru-dest")
    p.add_argument("--agent", default="learned_memory", choices=["learned", "learned_memory", "direct", "mcts", "objective_match", "memory_explorer", "random"], help="which agent (learned_memory, the default: the world model with an episodic transition memory, plans over the remembered map; learned: the planner without memory; mcts: tree search over the world model; direct, objective_match: no imagination)")
    p.add_argument("--games", required=True, nargs="+", help="game files (.z8)")
    p.add_argument("--prior", default="auto", help="learned and learned_memory: a direct model's checkpoint whose Q is combined with the imagined return; 'none' for imagination alone; auto (default): the shipped direct model for learned_memory with the shipped world model, none otherwise")
    p.add_argument("--hint-weight", type=float, default=None, help="learned_memory and direct: weight of the objective's next unfinished sentence in each command's score (default 0.3 for learned_memory, 0 for direct)")
    p.add_argument("--horizon", type=int, default=None, help="imagined steps per candidate (default: the planner's, 1; learned_memory: the longest plan, 2)")
    p.add_argument("--max-steps", type=int, default=50, help="steps per episode")
    p.set_defaults(func=_printing(_play))


def add_train_command(sub: Any) -> None:
    """``train textworld``: the world model or the direct ablation."""
    p = sub.add_parser("textworld", help="train the latent text world model on collected TextWorld experience")
    p.add_argument("--data", required=True, nargs="+", help="dataset folders from 'agentwm textworld collect'")
    p.add_argument("--val-data", nargs="*", default=[], help="dataset folders of validation games")
    p.add_argument("--logdir", required=True, help="checkpoint folder")
    p.add_argument("--kind", default="world_model", choices=["world_model", "direct"], help="world model, or the no-imagination ablation")
    p.add_argument("--epochs", type=int, default=30, help="passes over the data")
    p.add_argument("--seed", type=int, default=0, help="seed")
    p.add_argument("--lr", type=float, default=1e-3, help="Adam learning rate")
    p.add_argument("--init", default=None, help="checkpoint folder to fine-tune from (same kind and sizes)")
    p.add_argument("--alternatives", type=int, default=8, help="other menu commands per state used by each update")
    p.add_argument("--scale", action="append", default=[], metavar="TERM=WEIGHT",
                   help="weight of a loss term, e.g. counterfactual=5 (repeatable; the shipped model used counterfactual=5)")
    p.set_defaults(func=_printing(_train))


def _printing(handler: Any) -> Any:
    """Wrap a handler returning a dict into one printing it as JSON and returning exit code 0."""

    def run_and_print(args: argparse.Namespace) -> int:
        print(json.dumps(handler(args)))
        return 0

    return run_and_print


def _make_games(args: argparse.Namespace) -> dict[str, Any]:
    from agentwm.agents.textworld.games import make_games

    paths = make_games(args.setting, args.split, args.count, args.out, start=args.start, workers=args.workers)
    out: dict[str, Any] = {"games": len(paths), "out": args.out, "first": paths[0].name, "last": paths[-1].name}
    if args.check:
        from agentwm.envs.textworld import walkthrough_wins

        out["unwinnable"] = [p.name for p in paths if not walkthrough_wins(p)]
    return out


def _collect(args: argparse.Namespace) -> dict[str, Any]:
    from agentwm.agents.textworld.collect import CollectConfig, collect
    from agentwm.agents.textworld.games import list_games

    if not Path(args.games).is_dir():
        raise FileNotFoundError(f"no games folder {args.games}")
    games = list_games(args.games, args.setting, args.split)[args.offset :][: args.limit]
    if not games:
        raise FileNotFoundError(f"no {args.setting} {args.split} games in {args.games} (make them with 'agentwm textworld make-games')")
    cfg = CollectConfig(games=[str(g) for g in games], out=args.out, perturbed=args.perturbed,
                        random_episodes=args.random_episodes, seed=args.seed, alternatives=args.alternatives)
    return {"dataset": str(collect(cfg)), "games": len(games)}


def _relabel(args: argparse.Namespace) -> dict[str, Any]:
    from agentwm.agents.textworld.collect import relabel

    if args.alternatives < 0:
        raise ValueError(f"--alternatives must be >= 0, got {args.alternatives}")
    return {"dataset": str(relabel(args.data, args.out, alternatives=args.alternatives, seed=args.seed))}


def _train(args: argparse.Namespace) -> dict[str, Any]:
    from agentwm.agents.textworld.train import TrainConfig, train

    scales = dict(TrainConfig(data=[], logdir=".").scales)
    for item in args.scale:
        term, _, weight = item.partition("=")
        if term not in scales:
            raise ValueError(f"--scale {item!r}: unknown loss term {term!r}; terms: {', '.join(sorted(scales))}")
        try:
            scales[term] = float(weight)
        except ValueError:
            raise ValueError(f"--scale {item!r}: the weight must be a number") from None
    cfg = TrainConfig(data=args.data, val_data=args.val_data, logdir=args.logdir, kind=args.kind, epochs=args.epochs,
                      seed=args.seed, scales=scales, init=args.init, alternatives=args.alternatives, lr=args.lr)
    return train(cfg)


def _play_options(args: argparse.Namespace) -> dict[str, Any]:
    """``make_agent`` options from ``play``'s flags: the prior and the objective hint, where the agent takes them.

    The defaults give ``learned_memory`` what validation chose (the shipped ``direct`` model as prior,
    hint weight 0.3: 197 of 200 quest-8 validation games; docs/textworld.md, phase 6)."""
    from agentwm.agents.textworld.factory import shipped_model

    extra: dict[str, Any] = {}
    prior = getattr(args, "prior", None)
    if args.agent in ("learned", "learned_memory"):
        if prior == "auto":
            prior = str(shipped_model("direct")) if args.agent == "learned_memory" and args.model is None else None
        if prior not in (None, "none"):
            extra["prior"] = prior
    elif prior not in (None, "auto", "none"):
        raise ValueError(f"--prior applies to the learned and learned_memory agents, not {args.agent}")
    hint = getattr(args, "hint_weight", None)
    if hint is not None and args.agent not in ("learned_memory", "direct"):
        raise ValueError(f"--hint-weight applies to the learned_memory and direct agents, not {args.agent}")
    if hint is not None and hint < 0:
        raise ValueError(f"--hint-weight must be >= 0, got {hint}")
    hint = (0.3 if args.agent == "learned_memory" else 0.0) if hint is None else hint
    if hint:
        extra["objective_weight"] = hint
    return extra


def _play(args: argparse.Namespace) -> dict[str, Any]:
    from agentwm.agents.textworld.evaluate import evaluate
    from agentwm.agents.textworld.factory import make_agent

    agent = make_agent(args.agent, model=args.model, horizon=args.horizon, **_play_options(args))
    result = evaluate(args.games, agent, max_steps=args.max_steps)
    return {k: v for k, v in result.items() if k != "episodes"}


def run(args: argparse.Namespace) -> int:
    """Run a parsed command; one-line errors for bad input."""
    try:
        return int(args.func(args))
    except (FileNotFoundError, ValueError, ValidationError) as err:
        first = str(err).splitlines()[0] if str(err) else type(err).__name__
        print(f"error: {first}", file=sys.stderr)
        return 2


def main(argv: list[str] | None = None) -> int:
    """``python -m agentwm.agents.textworld``."""
    parser = argparse.ArgumentParser(prog="agentwm textworld", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    add_commands(sub)
    p = sub.add_parser("train", help="train a model")
    add_train_command(p.add_subparsers(dest="what", required=True))
    return run(parser.parse_args(argv))
