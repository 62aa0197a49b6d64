"""Is the world model's imagined next observation recognisable? Replays collected TextWorld episodes through each model.

For every stored transition ``t → t+1`` of a dataset (``agentwm textworld collect`` on validation
games), the model's predicted next observation (members averaged) is compared with the episode's
observations seen up to ``t+1``. Reported per command verb (``go``, ``open``, …): for steps whose
real next observation was seen before in the episode (a revisit), the share where the prediction is
nearest to that observation (``revisit_top1``; the phase-3 diagnosis of ``docs/textworld.md`` found 22%
for ``go`` with the shipped model), and over all steps the share where it is nearest to the real next
observation among the seen ones and the real one (``top1``), and the mean cosine to it (``cos``).

    python benchmarks/textworld_destination.py --data data/quest8-val --models models/textworld-minilm-gru/world_model runs/dest
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any

# keep this folder off the path so `import textworld` finds the package, not benchmarks/textworld.py
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

import torch
import torch.nn.functional as F

from agentwm.agents.textworld.data import Episodes, load_episodes
from agentwm.agents.textworld.train import load_model
from agentwm.worldmodels.text_latent import TextLatentModel


@torch.no_grad()
def recognisability(model: TextLatentModel, data: Episodes, verbs: list[str]) -> dict[str, dict[str, float]]:
    """Per command verb: ``steps``, ``top1``, ``cos``, ``revisits``, ``revisit_top1`` (see the module docstring)."""
    acc: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    for lo in range(0, len(data), 128):
        ids = list(range(lo, min(lo + 128, len(data))))
        batch = data.batch(ids, model.config.value_gamma)
        state = model.initial(len(ids), batch["goal"], batch["goal_mask"])
        post, cover = model._posterior(batch["obs"], batch["act"], state)
        feat = model._feat(post[:, :-1], batch["act"][:, :-1], state["goal"], state["goal_mask"], cover[:, :-1])
        pred = F.normalize(torch.stack([F.normalize(head(feat), dim=-1) for head in model.dynamics]).mean(0), dim=-1)
        for b, i in enumerate(ids):
            n = int(data.length[i])
            obs_ids, emb = data.obs[i, :n], batch["obs"][b, :n]
            for t in range(n - 1):
                verb = verbs[int(data.act[i, t])]
                seen = list(dict.fromkeys(int(x) for x in obs_ids[: t + 2]))  # distinct texts up to t+1
                vecs = torch.stack([emb[int((obs_ids == s).nonzero()[0])] for s in seen])
                right = seen.index(int(obs_ids[t + 1]))
                sims = vecs @ pred[b, t]
                a = acc[verb]
                a["steps"] += 1
                a["top1"] += float(int(sims.argmax()) == right)
                a["cos"] += float(sims[right])
                if int(obs_ids[t + 1]) in (int(x) for x in obs_ids[: t + 1]):
                    a["revisits"] += 1
                    a["revisit_top1"] += float(int(sims.argmax()) == right)
    out: dict[str, dict[str, float]] = {}
    for verb, a in sorted(acc.items(), key=lambda kv: -kv[1]["steps"]):
        out[verb] = {"steps": int(a["steps"]), "top1": round(a["top1"] / a["steps"], 3), "cos": round(a["cos"] / a["steps"], 3),
                     "revisits": int(a["revisits"]), "revisit_top1": round(a["revisit_top1"] / max(a["revisits"], 1), 3)}
    return out


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", required=True, nargs="+", help="dataset folders (collected on validation games)")
    p.add_argument("--models", required=True, nargs="+", help="world-model checkpoint folders")
    p.add_argument("--out", default=None, help="result file (default benchmarks/results/textworld_destination.json)")
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    result: dict[str, Any] = {}
    for folder in args.data:
        data = load_episodes(folder)
        texts = json.loads((Path(folder) / "texts.json").read_text())
        verbs = [t.split()[0] if t.split() else "" for t in texts] + [""]
        for m in args.models:
            model = load_model(m)
            if not isinstance(model, TextLatentModel) or not hasattr(model, "dynamics"):
                raise SystemExit(f"{m} is not a world-model checkpoint (the direct scorer predicts no observation)")
            result.setdefault(Path(folder).name, {})[m] = recognisability(model, data, verbs)
    print(json.dumps(result))
    _write_result(result, args.out)
    return result


def _write_result(result: dict[str, Any], path: str | None) -> None:
    """benchmarks/_results.write_result, loaded by path (this file keeps its folder off sys.path)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("_results", Path(__file__).resolve().parent / "_results.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.write_result("textworld_destination", result, path=path)


if __name__ == "__main__":
    main()
