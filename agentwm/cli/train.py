"""``agentwm train <family>``: one flag idiom for every family, generated from the family's config.

Every family takes ``--logdir``, ``--steps`` (its run length, whatever it counts), ``--seed``,
``--set key=value``, ``--print-config``, ``--preset`` where the family has presets and ``--resume``
where it can continue a run; then one flag per config field. The old names (``--out``,
``--env-steps``, ``--frames`` ...) still work for one release, hidden, with a note on stderr.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import signal
import sys
from typing import Any

from pydantic import BaseModel

from agentwm.cli.config_flags import (
    add_config_flags,
    add_deprecated,
    add_field_flag,
    apply_sets,
    given_fields,
)


def print_json(obj: Any) -> None:
    """One JSON object on one line of stdout: what every command prints."""
    print(json.dumps(obj, indent=None, sort_keys=False))


_LOGDIR_REQUIRED = ("ensemble", "dreamer", "dialogue", "dialogue-outcome", "babyai")


def resolve(args: argparse.Namespace, config: type[BaseModel], **extra: Any) -> Any:
    """The family's config: its defaults, then ``extra``, then the flags given, then ``--set``."""
    return config(**apply_sets(config, {**extra, **given_fields(args, config)}, getattr(args, "set", None)))


def add_config_tail(p: argparse.ArgumentParser | argparse._ArgumentGroup, config: type[BaseModel]) -> None:
    """``--set`` and ``--print-config``, shared by every config-driven command."""
    p.add_argument("--set", action="append", metavar="KEY=VALUE",
                   help=f"any {config.__name__} field (value read as JSON, else as text; key.sub=VALUE for one "
                   "entry of a group), applied after the flags; repeatable")  # fmt: skip
    p.add_argument("--print-config", action="store_true", help="print the resolved settings as JSON and exit")


def _family(
    fam: Any,
    name: str,
    help: str,
    config: type[BaseModel],
    *,
    steps: str,
    logdir: str,
    skip: tuple[str, ...] = (),
    aliases: dict[str, list[str]] | None = None,
    quiet: str | None = None,
) -> tuple[argparse.ArgumentParser, Any]:
    q: argparse.ArgumentParser = fam.add_parser(name, help=help, description=help)
    common = q.add_argument_group("common to every `train` family")
    needed = " (required)" if name in _LOGDIR_REQUIRED else ""
    common.add_argument("--logdir", default=None, help=f"{logdir}{needed}")
    if name != "dreamer":
        add_deprecated(common, "--out", "--logdir", "logdir")
    add_field_flag(common, config, steps, "--steps", prefix="run length: ")
    add_field_flag(common, config, "seed")
    if "preset" in config.model_fields:
        add_field_flag(common, config, "preset")
    add_config_tail(common, config)
    if quiet:
        common.add_argument("--quiet", action="store_true", help=quiet)
    fields = q.add_argument_group(f"{config.__name__} settings (dicts and nested settings: --set)")
    add_config_flags(fields, config, skip=(steps, "seed", "preset", *skip), aliases=aliases)
    q.set_defaults(needs_logdir=name in _LOGDIR_REQUIRED, parser=q)
    return q, common


def _done(args: argparse.Namespace, config: BaseModel) -> bool:
    """``--print-config``: print the settings and report that the command is done."""
    if args.print_config:
        print_json(config.model_dump(mode="json"))
    return bool(args.print_config)


def _cmd_train(args: argparse.Namespace) -> int:
    from agentwm.agents.mpc import MPCConfig, train_ensemble

    config = resolve(args, MPCConfig)
    if _done(args, config):
        return 0
    _, result = train_ensemble(config, out=args.logdir, progress=not args.quiet)
    print_json(result)
    return 0


def _cmd_train_dyna(args: argparse.Namespace) -> int:
    from agentwm.agents.dyna import DynaConfig, run_dyna

    config = resolve(args, DynaConfig)
    if _done(args, config):
        return 0
    _, _, summary = run_dyna(config, out=args.logdir)
    if args.quiet:
        summary.pop("curve")
    print_json(summary)
    return 0


def _cmd_train_muzero(args: argparse.Namespace) -> int:
    from agentwm.agents.muzero import MuZeroConfig, train_muzero

    config = resolve(args, MuZeroConfig)
    if _done(args, config):
        return 0
    _, summary = train_muzero(config, out=args.logdir)
    print_json(summary)
    return 0


def _cmd_train_pets(args: argparse.Namespace) -> int:
    from pathlib import Path

    from agentwm.agents.mpc.pets import PETSConfig, run_pets

    config = resolve(args, PETSConfig)
    if _done(args, config):
        return 0
    summary = run_pets(config)
    if args.logdir is not None:  # PETS keeps no model; the run folder holds its summary
        Path(args.logdir).mkdir(parents=True, exist_ok=True)
        (Path(args.logdir) / "summary.json").write_text(json.dumps(summary))
    print_json(summary)
    return 0


def _cmd_train_worldmodels(args: argparse.Namespace) -> int:
    from agentwm.agents.hs_worldmodels import HSConfig, train_world_models

    config = resolve(args, HSConfig)
    if _done(args, config):
        return 0
    _, _, summary = train_world_models(config, out=args.logdir)
    print_json(summary)
    return 0


def _cmd_train_planet(args: argparse.Namespace) -> int:
    from agentwm.agents.planet import PlaNetConfig, train_planet

    config = resolve(args, PlaNetConfig)
    if _done(args, config):
        return 0
    _, summary = train_planet(config, out=args.logdir)
    print_json(summary)
    return 0


def _cmd_train_dialogue(args: argparse.Namespace) -> int:
    from agentwm.agents.dialogue.train import DialogueTrainConfig, train_dialogue

    extra: dict[str, Any] = {"progress": False} if args.quiet else {}
    if args.logdir is not None:
        extra["out"] = args.logdir
    config = resolve(args, DialogueTrainConfig, **extra)
    if _done(args, config):
        return 0
    _, summary = train_dialogue(config)
    print_json({k: v for k, v in summary.items() if k != "train_config"})
    return 0


def _cmd_train_dialogue_outcome(args: argparse.Namespace) -> int:
    from agentwm.cli.train_outcome import run

    return run(args)


def _cmd_train_babyai(args: argparse.Namespace) -> int:
    from agentwm.testbeds.babyai.model import BabyAIModelConfig, train_babyai_model

    config = resolve(args, BabyAIModelConfig)
    if _done(args, config):
        return 0
    _, summary = train_babyai_model(config, out=args.logdir, progress=not args.quiet)
    print_json(summary)
    return 0


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
    from agentwm.agents.dreamer import DreamerConfig, resolve_config, train
    from agentwm.agents.dreamer import run_checkpoint as checkpoint

    fields = given_fields(args, DreamerConfig)
    if args.resume and args.logdir:
        checkpoint.require_run(args.logdir)
    saved = checkpoint.saved_config(args.logdir) if args.resume and args.logdir else None
    if saved is not None:  # resume: the run's own settings, changed only by what is given now
        config = resolve_config(args.preset or [], args.set or [], base=saved, **fields)
    else:
        config = resolve_config(dreamer_presets(args.preset, fields.get("env")), args.set or [], **fields)
    if _done(args, config):
        return 0
    summary = train(config, args.logdir, resume=args.resume, progress=not args.quiet, overwrite=args.overwrite)
    if os.environ.get("RANK", "0") != "0":  # torchrun: rank 0 speaks for the run
        return 0
    print_json(summary)
    if summary["stopped_by"] is None:
        return 0
    print(f"agentwm: stopped by {summary['stopped_by']} at {summary['frames']} frames, checkpoint saved; "
          "run the same command with --resume to continue", file=sys.stderr)  # fmt: skip
    return 128 + int(signal.Signals[summary["stopped_by"]])  # the shell's code for death by that signal


# family -> (help, "module:ConfigClass", --steps field, what --logdir holds, --quiet help, other options)
FAMILIES: dict[str, tuple[str, str, str, str, str | None, dict[str, Any]]] = {
    "dreamer": ("train a DreamerV3-style agent (gymnasium or dmc:domain-task)", "agentwm.agents.dreamer:DreamerConfig",
                "steps", "run folder: checkpoints, metrics.jsonl, tb/, plots", "no progress bar", {}),
    "ensemble": ("fit a PETS-style ensemble on random transitions and save it", "agentwm.agents.mpc:MPCConfig",
                 "transitions", "folder to write model.safetensors + config.json", "no progress output on stderr", {}),
    "dyna": ("tabular Dyna-Q with a learned count model (Taxi, FrozenLake)", "agentwm.agents.dyna:DynaConfig",
             "real_steps", "folder to save the model and Q-table", "leave the learning curve out of the JSON",
             {"aliases": {"planning_steps": ["-k"]}}),
    "muzero": ("MuZero-style model trained from MCTS self-play (CartPole)", "agentwm.agents.muzero:MuZeroConfig",
               "env_steps", "folder to save the model (safetensors + config.json)", None, {}),
    "pets": ("PETS loop: ensemble + trajectory sampling + CEM/MPPI, agreement gate", "agentwm.agents.mpc.pets:PETSConfig",
             "max_episodes", "folder to write summary.json (PETS saves no model)", None, {}),
    "worldmodels": ("Ha & Schmidhuber: ConvVAE + MDN-RNN on pixels, CMA-ES controller in the dream",
                    "agentwm.agents.hs_worldmodels:HSConfig", "frames",
                    "folder to save V+M (safetensors), controller and config", None, {}),
    "planet": ("PlaNet: RSSM learned online + CEM planning in latent space (DMC)", "agentwm.agents.planet:PlaNetConfig",
               "episodes", "folder to save the RSSM (safetensors + config.json)", None, {}),
    "dialogue": (("train the dialogue world model on Chit-Chat and save it (with --data LOGS.jsonl --outcome NAME: "
                  "the outcome model of any conversation logs, see `train dialogue-outcome --help`)"),
                 "agentwm.agents.dialogue.train:DialogueTrainConfig", "max_steps",
                 "checkpoint folder, e.g. models/dialogue-minilm", "no progress bars", {"skip": ("out", "progress")}),
    "dialogue-outcome": (("train a dialogue outcome world model on outcome-labelled conversation logs (JSONL); "
                          "`train dialogue --data LOGS.jsonl --outcome NAME` runs this"),
                         "agentwm.agents.dialogue.outcome_train:OutcomeTrainConfig", "steps",
                         ("run folder: train_config.json, run checkpoint, metrics.jsonl, summary.json, model/ "
                          "(what score_replies and `agentwm score dialogue --model` load)"), "no progress bars",
                         {"skip": ("logdir", "progress")}),
    "babyai": ("learn the BabyAI latent world model (ensemble over the symbolic view)",
               "agentwm.testbeds.babyai.model:BabyAIModelConfig", "transitions",
               "checkpoint folder, e.g. models/babyai-ensemble", "no progress bar", {}),
}
_HANDLERS = {"dreamer": _cmd_train_dreamer, "ensemble": _cmd_train, "dyna": _cmd_train_dyna, "muzero": _cmd_train_muzero,
             "pets": _cmd_train_pets, "worldmodels": _cmd_train_worldmodels, "planet": _cmd_train_planet,
             "dialogue": _cmd_train_dialogue, "dialogue-outcome": _cmd_train_dialogue_outcome,
             "babyai": _cmd_train_babyai}  # fmt: skip


def config_class(name: str) -> type[BaseModel]:
    """The config class of a ``train`` family, imported on demand (the imports are heavy)."""
    module, _, cls = FAMILIES[name][1].partition(":")
    found: type[BaseModel] = getattr(importlib.import_module(module), cls)
    return found


def add_train_families(fam: Any, only: str | None = None) -> None:
    """Every ``agentwm train`` family, each with flags from its own config; with ``only``, the
    others get their one-line help but no flags (so ``--help`` needs no torch import)."""
    for name, (help, _, steps, logdir, quiet, options) in FAMILIES.items():
        if only is not None and name != only:
            fam.add_parser(name, help=help)
            continue
        q, common = _family(fam, name, help, config_class(name), steps=steps, logdir=logdir, quiet=quiet, **options)
        q.set_defaults(func=_HANDLERS[name])
        if name == "dialogue-outcome":
            common.add_argument("--resume", action="store_true",
                                help="continue from the checkpoint in --logdir with the run's saved settings, changed "
                                "only by the options given (e.g. --steps to train longer)")
        if name != "dreamer":
            continue
        common.add_argument("--preset", action="append", metavar="NAME",
                            help="named preset, repeatable, applied in order (debug, tiny, size1m, size12m, "
                            "dreamerv3-torch, dmc_proprio, dmc_vision, dmc_cpu, cartpole); default: tiny plus "
                            "cartpole on CartPole-v1 (learns it on a CPU in minutes) or dmc_cpu on dmc: tasks")
        common.add_argument("--resume", action="store_true",
                            help="continue from the newest checkpoint in --logdir, with the run's saved settings "
                            "changed only by the options given (e.g. --steps to train longer)")
        common.add_argument("--overwrite", action="store_true",
                            help="start a fresh run in a --logdir that holds one, deleting its checkpoints and metrics")
