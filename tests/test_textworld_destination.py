"""The imagined destination's contrastive term (``destination_loss``): it teaches where a move leads, and is off for old configs."""

from __future__ import annotations

import json
from pathlib import Path

import torch
import torch.nn.functional as F

from agentwm.agents.textworld.train import DEFAULT_SCALES, TrainConfig, _mean_loss, load_model
from agentwm.worldmodels.text_latent import TextLatentConfig, TextLatentModel, destination_loss
from tests.benchmark_module import load_benchmark

SHIPPED = Path(__file__).resolve().parents[1] / "models" / "textworld-minilm-gru" / "world_model"


def test_destination_loss_prefers_the_right_target_and_ignores_invalid_and_duplicates() -> None:
    torch.manual_seed(0)
    target = F.normalize(torch.randn(2, 5, 16), dim=-1)
    valid = torch.ones(2, 5)
    valid[1, 4] = 0
    right = destination_loss(target, target, valid)
    generic = destination_loss(F.normalize(target.sum((0, 1), keepdim=True).expand_as(target), dim=-1), target, valid)
    assert right[1, 4] == 0 and generic[1, 4] == 0
    assert (right[valid > 0] < generic[valid > 0]).all()
    # a target repeated elsewhere in the batch (a revisited room) is not a negative of itself
    dup = target.clone()
    dup[1, 0] = dup[0, 0]
    assert torch.allclose(destination_loss(dup, dup, torch.ones(2, 5))[0, 0], destination_loss(target, target, torch.ones(2, 5))[0, 0], atol=0.2)
    assert destination_loss(target[:, :1], target[:, :1], torch.tensor([[1.0], [0.0]])).abs().sum() == 0  # one valid row: no negatives


def _room_walks(B: int = 24, T: int = 8, rooms: int = 6, D: int = 32) -> dict[str, torch.Tensor]:
    """Random walks in a fixed map: the next room is a function of (room, direction)."""
    g = torch.Generator().manual_seed(1)
    room = F.normalize(torch.randn(rooms, D, generator=g) * 0.3 + torch.randn(1, D, generator=g), dim=-1)  # similar rooms
    dirs = F.normalize(torch.randn(4, D, generator=g), dim=-1)
    table = torch.randint(0, rooms, (rooms, 4), generator=g)
    where = torch.randint(0, rooms, (B,), generator=g)
    obs, act = [], []
    for _ in range(T):
        d = torch.randint(0, 4, (B,), generator=g)
        obs.append(room[where])
        act.append(dirs[d])
        where = table[where, d]
    K = 2
    return {
        "obs": torch.stack(obs, 1), "act": torch.stack(act, 1), "reward": torch.zeros(B, T), "cont": torch.ones(B, T),
        "value": torch.full((B, T), 0.5), "mask": torch.ones(B, T),
        "goal": F.normalize(torch.randn(B, K, D, generator=g), dim=-1), "goal_mask": torch.ones(B, K),
    }


def _train_rooms(weight: float, steps: int = 150) -> tuple[float, float]:
    """Destination loss before and after ``steps`` updates with the term at ``weight`` (all other terms on)."""
    torch.manual_seed(0)
    batch = _room_walks()
    model = TextLatentModel(TextLatentConfig(emb_dim=32, max_goal=2, hidden=32, proj=16, units=32, members=2))
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    scales = {**DEFAULT_SCALES, "destination": weight}
    with torch.no_grad():
        first = float(model.loss(batch)[0]["destination"].mean())
    for _ in range(steps):
        loss = _mean_loss(model.loss(batch)[0], batch, scales)
        opt.zero_grad()
        loss.backward()  # type: ignore[no-untyped-call]
        opt.step()
    with torch.no_grad():
        return first, float(model.loss(batch)[0]["destination"].mean())


def test_training_with_the_term_teaches_the_destination() -> None:
    first, with_term = _train_rooms(1.0)
    _, without = _train_rooms(0.0)
    # the cosine loss alone predicts a generic room (the diagnosis of docs/textworld.md, phase 3)
    assert with_term < 0.5 * first and without > 0.8 * first, (first, with_term, without)


def test_zero_weight_by_default_and_old_checkpoints_load() -> None:
    assert DEFAULT_SCALES["destination"] == 0.0
    config = json.loads((SHIPPED / "config.json").read_text())
    old = TrainConfig(**config["train"])  # written before the term existed
    assert "destination" not in config["train"]["scales"] and old.scales["destination"] == 0.0
    model = load_model(SHIPPED)  # no new parameters: the shipped weights load strictly
    assert isinstance(model, TextLatentModel)
    batch = _room_walks(D=384, B=4)
    batch["goal"] = F.pad(batch["goal"], (0, 0, 0, 14))
    batch["goal_mask"] = F.pad(batch["goal_mask"], (0, 14))
    losses = model.loss(batch)[0]
    assert float(losses["destination"].detach().sum()) > 0
    without = {k: v for k, v in losses.items() if k != "destination"}
    assert torch.allclose(_mean_loss(losses, batch, old.scales), _mean_loss(without, batch, old.scales))


def test_recognisability_counts_steps_and_revisits_per_verb() -> None:
    from agentwm.agents.textworld.data import Episodes

    bench = load_benchmark("textworld_destination")
    torch.manual_seed(0)
    emb = torch.cat([F.normalize(torch.randn(6, 384), dim=-1), torch.zeros(1, 384)])  # rooms 0-2, commands 3-5, id -1: zeros
    # room 0 -go east-> room 1 -go west-> room 0 (a revisit) -open box-> room 2
    obs, act = torch.tensor([[0, 1, 0, 2]]), torch.tensor([[3, 4, 5, -1]])
    data = Episodes(emb, obs, act, torch.zeros(1, 4), torch.ones(1, 4), torch.ones(1, 4, dtype=torch.long),
                    torch.tensor([4]), torch.tensor([[0]]), torch.tensor([1]), ["g"])
    verbs = ["", "", "", "go", "go", "open", ""]
    out = bench.recognisability(TextLatentModel(), data, verbs)
    assert out["go"]["steps"] == 2 and out["go"]["revisits"] == 1 and out["open"]["steps"] == 1 and out["open"]["revisits"] == 0
    assert all(0.0 <= v[k] <= 1.0 for v in out.values() for k in ("top1", "revisit_top1"))
