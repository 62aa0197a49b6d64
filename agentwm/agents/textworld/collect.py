"""Experience from many TextWorld games: walkthroughs, perturbed walkthroughs and random play.

Each episode is stored as text (observation, menu, command) with rewards, episode ends, wins and
a privileged progress label, ``remaining`` = length of TextWorld's shortest winning command list
from that state (0 once won). Every distinct text is embedded once with MiniLM and cached beside
the episodes, so training never runs the sentence encoder.

Layout of a dataset folder: ``episodes.jsonl`` (one episode per line, texts as indices into
``texts.json``), ``texts.json`` and ``embeddings.safetensors`` (``emb [N, 384]``, unit rows),
``meta.json`` (the config that made it).
"""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import torch
from pydantic import BaseModel, Field
from tqdm import tqdm

from agentwm.checkpoint import atomic_write
from agentwm.envs.text import split_objective
from agentwm.envs.textworld import TextWorldEnv


class CollectConfig(BaseModel):
    """What experience to gather from which games."""

    games: list[str] = Field(description="TextWorld game files (.z8) to play")
    out: str = Field(description="dataset folder to write")
    perturbed: int = Field(4, ge=0, description="perturbed walkthroughs per game")
    random_episodes: int = Field(1, ge=0, description="random-play episodes per game")
    detour_prob: float = Field(0.3, ge=0.0, le=1.0, description="chance a perturbed walkthrough takes a random command instead of the winning one")
    random_steps: int = Field(30, ge=1, description="length of a random-play episode")
    max_steps: int = Field(50, ge=1, description="longest episode")
    alternatives: int = Field(3, ge=0, description="other menu commands per state stored beside the winning one (counterfactual labels)")
    seed: int = Field(0, description="seed of the random choices")


class _Texts:
    """Interns strings to indices."""

    def __init__(self) -> None:
        self.items: list[str] = []
        self.index: dict[str, int] = {}

    def __call__(self, text: str) -> int:
        if text not in self.index:
            self.index[text] = len(self.items)
            self.items.append(text)
        return self.index[text]


def _play(env: TextWorldEnv, kind: str, cfg: CollectConfig, rng: random.Random, texts: _Texts) -> dict[str, Any]:
    """One episode of ``kind`` (walkthrough, perturbed, random) as a dict of text indices."""
    step = env.reset()
    steps: list[dict[str, Any]] = []
    limit = cfg.random_steps if kind == "random" else cfg.max_steps
    while True:
        record: dict[str, Any] = {
            "obs": texts(step.observation), "menu": list(step.admissible),
            "reward": step.reward, "done": step.done, "won": step.won, "lost": bool(step.info["lost"]), "remaining": int(step.info["remaining"]),
        }
        steps.append(record)
        if step.done or len(steps) > limit:
            break
        policy = step.info["policy"]
        # counterfactual labels: the winning command here, and a few other commands of the menu
        others = [m for m in step.admissible if not policy or m != policy[0]]
        record["opt"] = texts(policy[0]) if policy else -1
        record["alts"] = [texts(m) for m in rng.sample(others, min(cfg.alternatives, len(others)))]
        if kind == "random" or (kind == "perturbed" and rng.random() < cfg.detour_prob) or not policy:
            action = rng.choice(step.admissible)
        else:
            action = policy[0]
        record["action"] = texts(action)
        step = env.step(action)
    return {"kind": kind, "steps": steps}


def _write_text(path: Path, text: str) -> None:
    def write(tmp: str) -> None:
        Path(tmp).write_text(text)

    atomic_write(path, write)


def collect(cfg: CollectConfig, *, progress: bool = True) -> Path:
    """Play every game of ``cfg`` and write the dataset folder; returns it."""
    from safetensors.torch import save_file

    from agentwm.text.embeddings import TextEmbedder

    rng = random.Random(cfg.seed)
    texts = _Texts()
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    episodes: list[dict[str, Any]] = []
    for game in tqdm(cfg.games, desc="collect", disable=not progress):
        env = TextWorldEnv(game, max_steps=cfg.max_steps, labels=True)
        try:
            first = env.reset()
            goal = [texts(s) for s in split_objective(first.objective)]
            kinds = ["walkthrough"] + ["perturbed"] * cfg.perturbed + ["random"] * cfg.random_episodes
            for kind in kinds:
                ep = _play(env, kind, cfg, rng, texts)
                ep.update(game=Path(game).name, objective=goal)
                episodes.append(ep)
        finally:
            env.close()
    # ---- embed every distinct text once
    embedder = TextEmbedder(batch_size=128)
    chunks = []
    order = sorted(range(len(texts.items)), key=lambda i: len(texts.items[i]))
    for lo in tqdm(range(0, len(order), 512), desc="embed", disable=not progress):
        idx = order[lo : lo + 512]
        chunks.append((idx, embedder.embed([texts.items[i] for i in idx])))
    emb = torch.zeros(len(texts.items), embedder.dim)
    for idx, vec in chunks:
        emb[torch.tensor(idx)] = vec.float()
    atomic_write(out / "embeddings.safetensors", lambda tmp: save_file({"emb": emb.contiguous()}, tmp))
    _write_text(out / "texts.json", json.dumps(texts.items))
    _write_text(out / "episodes.jsonl", "".join(json.dumps(e) + "\n" for e in episodes))
    _write_text(out / "meta.json", json.dumps(cfg.model_dump(), indent=1))
    return out


def relabel(folder: str | Path, out: str | Path, *, alternatives: int = 16, seed: int = 0, progress: bool = True) -> Path:
    """Copy a dataset with more counterfactual commands per state, read from the stored menus.

    Collection keeps every state's full menu but embeds only ``alternatives`` (3) other commands;
    ranking a whole menu is learned better when most of it is seen in training. Writes ``out``
    (same layout, only new texts embedded) and returns it.
    """
    from safetensors.torch import load_file, save_file

    from agentwm.text.embeddings import TextEmbedder

    src, dst = Path(folder), Path(out)
    if not (src / "episodes.jsonl").is_file():
        raise FileNotFoundError(f"{src} is not a TextWorld dataset: no episodes.jsonl")
    rng = random.Random(seed)
    texts = _Texts()
    for t in json.loads((src / "texts.json").read_text()):
        texts(t)
    old = len(texts.items)
    episodes = [json.loads(line) for line in (src / "episodes.jsonl").read_text().splitlines() if line.strip()]
    for ep in episodes:
        for s in ep["steps"]:
            if "opt" not in s:
                continue
            opt = texts.items[s["opt"]] if s["opt"] >= 0 else None
            others = [m for m in s["menu"] if m != opt]
            s["alts"] = [texts(m) for m in rng.sample(others, min(alternatives, len(others)))]
    emb = load_file(str(src / "embeddings.safetensors"))["emb"]
    new = texts.items[old:]
    if new:
        embedder = TextEmbedder(batch_size=128)
        vecs = [embedder.embed(new[lo : lo + 512]).float() for lo in tqdm(range(0, len(new), 512), desc="embed", disable=not progress)]
        emb = torch.cat([emb, *vecs])
    dst.mkdir(parents=True, exist_ok=True)
    atomic_write(dst / "embeddings.safetensors", lambda tmp: save_file({"emb": emb.contiguous()}, tmp))
    _write_text(dst / "texts.json", json.dumps(texts.items))
    _write_text(dst / "episodes.jsonl", "".join(json.dumps(e) + "\n" for e in episodes))
    meta = json.loads((src / "meta.json").read_text()) if (src / "meta.json").is_file() else {}
    _write_text(dst / "meta.json", json.dumps({**meta, "out": str(dst), "alternatives": alternatives, "relabelled_from": str(src), "relabel_seed": seed}, indent=1))
    return dst
