"""Load a collected TextWorld dataset (see :mod:`.collect`) into padded episode tensors."""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors.torch import load_file
from torch import Tensor


@dataclass
class Episodes:
    """Episodes as index tensors into ``emb`` (row ``-1`` of ``emb`` is the zero vector).

    ``obs``/``act`` ``[N, T]`` text ids, ``reward``/``cont``/``remaining`` ``[N, T]``, ``length [N]``,
    ``goal [N, K]`` ids of objective sentences, ``goal_len [N]``, ``games`` per episode; when the
    dataset has counterfactual labels, ``opt [N, T]`` (the winning command) and ``alts [N, T, A]``
    (other menu commands) ids.
    """

    emb: Tensor
    obs: Tensor
    act: Tensor
    reward: Tensor
    cont: Tensor
    remaining: Tensor
    length: Tensor
    goal: Tensor
    goal_len: Tensor
    games: list[str]
    opt: Tensor | None = None
    alts: Tensor | None = None

    def __len__(self) -> int:
        return int(self.obs.shape[0])

    def batch(self, index: list[int], value_gamma: float) -> dict[str, Tensor]:
        """Embedded, padded batch of the episodes in ``index`` (trimmed to the longest)."""
        T = int(self.length[index].max())
        ids = torch.tensor(index)
        obs, act = self.obs[ids, :T], self.act[ids, :T]
        mask = (torch.arange(T)[None] < self.length[ids, None]).float()
        rem = self.remaining[ids, :T].float()
        cont = self.cont[ids, :T]
        value = torch.where(rem >= 1, value_gamma ** (rem - 1).clamp(min=0), torch.zeros_like(rem)) * cont
        K = int(self.goal_len[ids].max())
        goal = self.goal[ids, :K]
        out = {
            "obs": self.emb[obs], "act": self.emb[act], "reward": self.reward[ids, :T], "cont": cont,
            "value": value, "mask": mask, "goal": self.emb[goal], "goal_mask": (goal >= 0).float(),
        }
        if self.opt is not None and self.alts is not None:
            opt, alts = self.opt[ids, :T], self.alts[ids, :T]
            out.update(opt=self.emb[opt], opt_mask=(opt >= 0).float(), alts=self.emb[alts], alts_mask=(alts >= 0).float())
        return out

    def batches(self, size: int, value_gamma: float, rng: random.Random) -> Iterator[dict[str, Tensor]]:
        """One epoch of batches of similar-length episodes, in random order."""
        order = sorted(range(len(self)), key=lambda i: (int(self.length[i]), rng.random()))
        chunks = [order[i : i + size] for i in range(0, len(order), size)]
        rng.shuffle(chunks)
        for chunk in chunks:
            yield self.batch(chunk, value_gamma)


def load_episodes(folder: str | Path, max_goal: int = 16) -> Episodes:
    """Read a dataset folder written by :func:`~agentwm.agents.textworld.collect.collect`."""
    folder = Path(folder)
    for name in ("episodes.jsonl", "embeddings.safetensors"):
        if not (folder / name).is_file():
            raise FileNotFoundError(f"{folder} is not a TextWorld dataset: no {name} (make one with 'agentwm textworld collect')")
    emb = load_file(str(folder / "embeddings.safetensors"))["emb"]
    emb = torch.cat([emb, torch.zeros(1, emb.shape[1])])  # id -1 -> zeros
    episodes = [json.loads(line) for line in (folder / "episodes.jsonl").read_text().splitlines() if line.strip()]
    if not episodes:
        raise ValueError(f"{folder}/episodes.jsonl holds no episodes")
    N, T = len(episodes), max(len(e["steps"]) for e in episodes)
    obs = torch.full((N, T), -1, dtype=torch.long)
    act = torch.full((N, T), -1, dtype=torch.long)
    reward, cont = torch.zeros(N, T), torch.zeros(N, T)
    remaining = torch.zeros(N, T, dtype=torch.long)
    length = torch.zeros(N, dtype=torch.long)
    goal = torch.full((N, max_goal), -1, dtype=torch.long)
    goal_len = torch.zeros(N, dtype=torch.long)
    labelled = "opt" in episodes[0]["steps"][0]
    A = max((len(s.get("alts", [])) for e in episodes for s in e["steps"]), default=0)
    opt = torch.full((N, T), -1, dtype=torch.long)
    alts = torch.full((N, T, max(A, 1)), -1, dtype=torch.long)
    for i, ep in enumerate(episodes):
        steps = ep["steps"]
        length[i] = len(steps)
        for t, s in enumerate(steps):
            obs[i, t] = s["obs"]
            act[i, t] = s.get("action", -1)
            reward[i, t] = float(s["reward"])
            cont[i, t] = 0.0 if (s["won"] or s.get("lost", False)) else 1.0
            remaining[i, t] = int(s["remaining"])
            opt[i, t] = s.get("opt", -1)
            for j, a in enumerate(s.get("alts", [])):
                alts[i, t, j] = a
        g = ep["objective"][:max_goal]
        goal[i, : len(g)] = torch.tensor(g, dtype=torch.long)
        goal_len[i] = max(len(g), 1)
    games = [e["game"] for e in episodes]
    if not labelled:
        return Episodes(emb, obs, act, reward, cont, remaining, length, goal, goal_len, games)
    return Episodes(emb, obs, act, reward, cont, remaining, length, goal, goal_len, games, opt, alts)


def merge(parts: list[Episodes]) -> Episodes:
    """Concatenate datasets (their text tables are kept apart by offsetting ids)."""
    if len(parts) == 1:
        return parts[0]
    embs, shifted = [], []
    extra: list[tuple[Tensor, Tensor]] = []
    offset = 0
    T = max(p.obs.shape[1] for p in parts)
    for p in parts:
        table = p.emb[:-1]

        def shift(x: Tensor, off: int = offset) -> Tensor:
            return torch.where(x >= 0, x + off, x)

        def pad(x: Tensor, fill: float) -> Tensor:
            return torch.nn.functional.pad(x, (0, T - x.shape[1]), value=fill)

        shifted.append((pad(shift(p.obs), -1), pad(shift(p.act), -1), pad(p.reward, 0), pad(p.cont, 0),
                        pad(p.remaining, 0), p.length, shift(p.goal), p.goal_len, p.games))
        if p.opt is not None and p.alts is not None:
            extra.append((pad(shift(p.opt), -1), torch.nn.functional.pad(shift(p.alts), (0, 0, 0, T - p.alts.shape[1]), value=-1)))
        embs.append(table)
        offset += table.shape[0]
    emb = torch.cat(embs + [torch.zeros(1, parts[0].emb.shape[1])])
    cols = list(zip(*shifted))
    merged = Episodes(emb, *(torch.cat(c) for c in cols[:8]), [g for gs in cols[8] for g in gs])  # type: ignore[arg-type, call-arg]
    if len(extra) == len(parts):
        A = max(a.shape[2] for _, a in extra)
        merged.opt = torch.cat([o for o, _ in extra])
        merged.alts = torch.cat([torch.nn.functional.pad(a, (0, A - a.shape[2]), value=-1) for _, a in extra])
    return merged
