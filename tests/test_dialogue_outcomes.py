"""Conversation logs, their adapters, and the dialogue outcome world model trained on them."""

from __future__ import annotations

import importlib
import json
import os
import random
import statistics
from pathlib import Path

import pytest
import torch

from agentwm.agents.dialogue.outcome_train import OutcomeTrainConfig, train_outcome_model, weight_average
from agentwm.envs.conversations import LoadStats, LogError, read_conversations, write_conversations
from agentwm.worldmodels.base import repeat_state
from agentwm.worldmodels.dialogue_outcome_io import load_outcome_model
from tests.text_fakes import HashEmbed

pytestmark = pytest.mark.usefixtures("one_thread")
needs_rank = pytest.mark.skipif(
    not hasattr(importlib.import_module("agentwm.planning.ranking"), "rank"),
    reason="the outcome scorer ranks through planning.ranking.rank (the one ranking path of issue 15)",
)
SHARED = Path(os.environ.get("AGENTWM_SHARED", Path(__file__).resolve().parents[1].parent / "shared"))
DOND = SHARED / "data" / "dealornodeal"


def synthetic_logs(path: Path, n: int = 240, seed: int = 0) -> Path:
    """Support chats whose outcome is set by the agent's first reply (kind vs rude), plus noise turns."""
    rng = random.Random(seed)
    kind, rude = ["happy to help", "sorry, fixing it now", "sure thing"], ["no", "go away", "not my problem"]
    user = ["hi", "my order is late", "can you help", "thanks", "ok"]
    with open(path, "w") as fh:
        for i in range(n):
            ok = rng.random() < 0.5
            turns = [{"speaker": "user", "text": rng.choice(user)},
                     {"speaker": "agent", "text": rng.choice(kind if ok else rude)}]
            for _ in range(rng.randint(0, 2)):
                turns += [{"speaker": "user", "text": rng.choice(user)}, {"speaker": "agent", "text": rng.choice(user)}]
            fh.write(json.dumps({"id": f"c{i}", "role": "agent", "turns": turns,
                                 "outcomes": {"resolved": ok, "csat": 4.0 if ok else 1.0},
                                 "context": {"tier": [rng.random(), 1.0]}}) + "\n")
    return path


# ----------------------------------------------------------------------------------------------
# The log format


def test_bad_lines_name_line_and_field(tmp_path: Path) -> None:
    good = {"role": "a", "turns": [{"speaker": "a", "text": "hi"}], "outcomes": {"won": True}}
    lines = [json.dumps(good), "{not json", json.dumps({**good, "turns": [{"speaker": "a", "text": "  "}]}),
             "", json.dumps({**good, "outcomes": {}}), json.dumps({**good, "role": "b"}),
             json.dumps({**good, "outcomes": {"won": "maybe"}})]
    path = tmp_path / "logs.jsonl"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(LogError, match=r"logs.jsonl line 2: not valid JSON"):
        list(read_conversations(path, strict=True))
    stats = LoadStats()
    convs = list(read_conversations(path, outcome="won", stats=stats))
    assert len(convs) == 1 and stats.loaded == 1 and stats.lines == 7
    assert stats.skipped == {"not_json": 1, "invalid": 2, "blank": 1, "no_outcome": 1, "no_role_turn": 1}
    assert any("line 3: field 'turns.0.text'" in e for e in stats.examples)
    assert any("line 7: field 'outcomes.won" in e for e in stats.examples)


def test_round_trip_joins_bursts(tmp_path: Path) -> None:
    path = tmp_path / "in.jsonl"
    path.write_text(json.dumps({"role": "a", "turns": [{"speaker": "a", "text": "hi"}, {"speaker": "a", "text": "there"},
                                                      {"speaker": "b", "text": "yo"}], "outcomes": {"x": 1}}) + "\n")
    conv = next(read_conversations(path))
    assert [t.text for t in conv.turns] == ["hi there", "yo"] and conv.id == "line-1"
    assert write_conversations([conv], tmp_path / "out.jsonl") == 1
    assert next(read_conversations(tmp_path / "out.jsonl")).turns == conv.turns


@pytest.mark.skipif(not DOND.is_dir(), reason="Deal or No Deal lives in ../shared/data/dealornodeal (absent)")
def test_dealornodeal_adapter() -> None:
    from agentwm.envs.conversation_sources import dealornodeal_logs

    convs = list(dealornodeal_logs(DOND))
    assert len(convs) == 12234
    first = convs[0]  # "i would like 4 hats ..." / "deal": 8 points for YOU, 6 for THEM
    assert first.outcomes == {"points": 8.0, "partner_points": 6.0, "agreement": True,
                              "take_book": 0.0, "take_hat": 4.0, "take_ball": 0.0}
    assert first.context == {"counts": [1.0, 4.0, 1.0], "values": [0.0, 2.0, 2.0]} and first.role == "YOU"
    assert convs[1].outcomes["points"] == 6.0 and convs[1].outcomes["partner_points"] == 8.0
    splits: dict[str, set[str]] = {"train": set(), "val": set(), "test": set()}
    for c in convs:
        assert c.split is not None
        splits[c.split].add(c.meta["dialogue"])
        if not c.outcomes["agreement"]:
            assert c.outcomes["points"] == 0.0
    assert sum(c.split == "test" for c in convs) == 1052  # both sides of every test dialogue
    assert not (splits["train"] & splits["test"]) and not (splits["train"] & splits["val"])


def test_chitchat_adapter() -> None:
    pytest.importorskip("chitchat_dataset")
    from agentwm.envs.conversation_sources import chitchat_logs

    rated = next(c for c in chitchat_logs() if c.outcomes)
    assert set(rated.outcomes) == {"interesting", "upbeat", "witty", "rating"}
    assert rated.outcomes["rating"] == pytest.approx(sum(float(rated.outcomes[k]) for k in ("interesting", "upbeat", "witty")) / 3)
    assert {t.speaker for t in rated.turns} <= {"A", "B"} and rated.split in ("train", "val", "test")


# ----------------------------------------------------------------------------------------------
# Training


def _config(tmp_path: Path, logs: Path, **kw: object) -> OutcomeTrainConfig:
    base: dict[str, object] = {"data": str(logs), "outcome": "resolved", "logdir": str(tmp_path / "run"),
                               "preset": "debug", "steps": 60, "batch": 16, "eval_every": 1000, "save_every": 20,
                               "progress": False, "bank_size": 50}
    return OutcomeTrainConfig(**{**base, **kw})  # type: ignore[arg-type]


def test_learns_a_synthetic_outcome_better_than_chance(tmp_path: Path) -> None:
    """Three seeds; the median held-out AUC of the value after each agent turn clears chance by a margin."""
    logs = synthetic_logs(tmp_path / "logs.jsonl")
    aucs = []
    for seed in range(3):
        _, summary = train_outcome_model(_config(tmp_path, logs, seed=seed, steps=40, logdir=str(tmp_path / f"s{seed}")),
                                         embed=HashEmbed())
        aucs.append(summary["val"]["eval/auc"])
    print("held-out AUC per seed", aucs)
    assert statistics.median(aucs) > 0.7, aucs


def test_resumes_after_an_interrupted_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from agentwm.worldmodels.dialogue_outcome import DialogueOutcomeModel

    logs = synthetic_logs(tmp_path / "logs.jsonl", n=60)
    original = DialogueOutcomeModel.total_loss
    calls = {"n": 0}

    def dies_at_step_25(self: DialogueOutcomeModel, batch: dict[str, torch.Tensor]):  # type: ignore[no-untyped-def]
        calls["n"] += 1
        if calls["n"] > 25:
            raise KeyboardInterrupt
        return original(self, batch)

    monkeypatch.setattr(DialogueOutcomeModel, "total_loss", dies_at_step_25)
    cfg = _config(tmp_path, logs, steps=40, save_every=10)
    with pytest.raises(KeyboardInterrupt):
        train_outcome_model(cfg, embed=HashEmbed())
    assert json.loads((tmp_path / "run" / "run.json").read_text())["step"] == 20
    monkeypatch.setattr(DialogueOutcomeModel, "total_loss", original)
    calls["n"] = 0
    counted = {"n": 0}

    def counting(self: DialogueOutcomeModel, batch: dict[str, torch.Tensor]):  # type: ignore[no-untyped-def]
        counted["n"] += 1
        return original(self, batch)

    monkeypatch.setattr(DialogueOutcomeModel, "total_loss", counting)
    _, summary = train_outcome_model(cfg, embed=HashEmbed())
    assert summary["steps"] == 40 and counted["n"] == 20  # the last 20 steps only


def test_weight_average_follows_a_short_run_and_settles_on_a_long_one() -> None:
    net = torch.nn.Linear(1, 1, bias=False)
    torch.nn.init.zeros_(net.weight)
    avg = weight_average(net, 0.998)
    avg.update_parameters(net)  # the first update copies: 0
    with torch.no_grad():
        net.weight.fill_(1.0)
    for _ in range(30):
        avg.update_parameters(net)
    assert float(avg.module.weight) > 0.6  # a fixed 0.998 decay would still be at 0.06
    for _ in range(5000):  # past n = 4,490 the warm-up formula exceeds the cap
        avg.update_parameters(net)
    with torch.no_grad():
        net.weight.fill_(0.0)
    avg.update_parameters(net)
    assert float(avg.module.weight) == pytest.approx(0.998, abs=1e-4)  # the decay is capped at 0.998


def test_a_run_saved_without_an_average_resumes_only_without_one(tmp_path: Path) -> None:
    logs = synthetic_logs(tmp_path / "logs.jsonl", n=60)
    train_outcome_model(_config(tmp_path, logs, steps=20, save_every=10, ema=0.0), embed=HashEmbed())
    with pytest.raises(ValueError, match="--ema 0"):
        train_outcome_model(_config(tmp_path, logs, steps=30, save_every=10), embed=HashEmbed())
    _, summary = train_outcome_model(_config(tmp_path, logs, steps=30, save_every=10, ema=0.0), embed=HashEmbed())
    assert summary["steps"] == 30


def test_imagined_futures_differ_and_checkpoint_loads(tmp_path: Path) -> None:
    logs = synthetic_logs(tmp_path / "logs.jsonl", n=80)
    model, _ = train_outcome_model(_config(tmp_path, logs, steps=20), embed=HashEmbed())
    loaded = load_outcome_model(tmp_path / "run" / "model", embed=HashEmbed())
    state = loaded.observe_turns([("user", "hi")], role="agent", context={"tier": [0.5, 1.0]})
    rollout = loaded.imagine(repeat_state(state, 16), [["happy to help"] * 16], horizon=5,
                             generator=torch.Generator().manual_seed(0))
    assert rollout.rewards.shape == (5, 16) and rollout.extras["text"][0] == ["happy to help"] * 16
    partner_turns = rollout.extras["text"][1]
    assert len(set(partner_turns)) > 1  # sampled futures differ
    assert set(partner_turns) <= set(loaded.bank_texts)  # and stay in the logs' domain
    returns = rollout.returns(1.0)
    assert torch.isfinite(returns).all() and ((returns >= 0) & (returns <= 1)).all()  # expected P(resolved)
    for key, value in model.state_dict().items():
        assert torch.equal(value, loaded.state_dict()[key]), key


def test_negotiation_games_follow_the_rules(tmp_path: Path) -> None:
    """Rollout, likelihood and random choice play complete games whose points come from the values."""
    from agentwm.agents.dialogue.negotiation import Scenario, Side, compare_rules, play, rollout_values

    rng = random.Random(0)
    lines = []
    for i in range(60):
        counts, values = [1, 2, 1], [rng.randint(0, 5) for _ in range(3)]
        take = [rng.randint(0, c) for c in counts]
        turns = [{"speaker": "YOU" if t % 2 == 0 else "THEM", "text": rng.choice(["i want the hats", "deal", "no", "the ball?"])}
                 for t in range(rng.randint(2, 5))]
        lines.append(json.dumps({"role": "YOU", "turns": turns, "context": {"counts": counts, "values": values},
                                 "outcomes": {"points": float(sum(a * b for a, b in zip(take, values))), "agreement": True,
                                              **{f"take_{n}": float(t) for n, t in zip(("book", "hat", "ball"), take)}}}))
    logs = tmp_path / "dond.jsonl"
    logs.write_text("\n".join(lines) + "\n")
    model, _ = train_outcome_model(_config(tmp_path, logs, outcome="points", steps=10), embed=HashEmbed())
    scenario = Scenario((1, 2, 1), (3, 2, 3), (1, 4, 1), agent_first=True)
    game = play(model, model, scenario, "rollouts", k=3, samples=2, horizon=3)
    speakers = [s for s, _ in game.transcript]
    assert speakers == ["YOU", "THEM"] * (len(speakers) // 2) + ["YOU"] * (len(speakers) % 2)
    assert all(t in model.bank_texts for _, t in game.transcript)
    assert 0.0 <= game.points <= 10.0 and (game.points == 0.0 or game.agreement)
    table = compare_rules(model, model, [scenario] * 3, k=3, samples=2, horizon=3)
    assert set(table) == {"rollouts", "likelihood", "random"} and all(r["games"] == 3 for r in table.values())
    # game-aware rollout values are expected points of a claim: within [0, the whole pool's worth]
    side = Side.start(model, scenario.counts, scenario.values)
    side.hear(model.bank_emb[0], own=False)  # a partner turn reweighs the value hypotheses
    assert side.weights.shape == side.loglik.shape and abs(float(side.weights.sum()) - 1) < 1e-5
    assert not torch.allclose(side.weights, torch.full_like(side.weights, 1 / len(side.weights)))
    gen = torch.Generator().manual_seed(0)
    worth = rollout_values(side, [0, 1, 2], samples=2, horizon=3, generator=gen, score="game")
    assert worth.shape == (3,) and bool(((worth >= 0) & (worth <= 11.0)).all())
    claim = side.take("expected")
    assert all(0 <= x <= c for x, c in zip(claim, scenario.counts))


@needs_rank
def test_outcome_scorer_keeps_its_cache_and_parts_add_up(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from agentwm.planning.outcome_replies import OutcomeScorer
    from agentwm.worldmodels.dialogue_outcome import DialogueOutcomeModel

    logs = synthetic_logs(tmp_path / "logs.jsonl", n=80)
    model, _ = train_outcome_model(_config(tmp_path, logs, steps=20), embed=HashEmbed())
    scorer = OutcomeScorer(model, role="agent")
    observed = {"n": 0}
    original = DialogueOutcomeModel.observe_turns

    def counting(self: DialogueOutcomeModel, *a: object, **kw: object) -> dict[str, torch.Tensor]:
        observed["n"] += 1
        return original(self, *a, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(DialogueOutcomeModel, "observe_turns", counting)
    context = ["hi", "happy to help", "my order is late"]
    first = scorer.score(context, ["sorry, fixing it now", "go away"], horizon=4, samples=6,
                         private_context={"tier": [0.2, 1.0]})
    again = scorer.score(context, ["sorry, fixing it now", "go away"], horizon=4, samples=6,
                         private_context={"tier": [0.2, 1.0]})
    assert observed["n"] == 1  # the context's carry is reused
    assert [r.score for r in first] == [r.score for r in again]  # same seed, same futures
    for r in first:
        assert r.score == pytest.approx(r.parts["ends_within_horizon"] + r.parts["after_horizon"], abs=1e-5)
        assert 0.0 <= r.parts["p_end"] <= 1.0 and r.imagined[0] == ("agent", r.reply)
    assert sorted(r.rank for r in first) == [1, 2]


@needs_rank
def test_score_outcome_replies_reuses_one_scorer_per_model(tmp_path: Path) -> None:
    from agentwm.planning.outcome_replies import score_outcome_replies, scorer_for

    logs = synthetic_logs(tmp_path / "logs.jsonl", n=80)
    model, _ = train_outcome_model(_config(tmp_path, logs, steps=10), embed=HashEmbed())
    assert scorer_for(model) is scorer_for(model) and scorer_for(model, "user") is not scorer_for(model)
    res = score_outcome_replies(["hi"], ["happy to help", "no"], model=model, samples=2)
    assert len(scorer_for(model)._contexts) == 1 and {r.rank for r in res} == {1, 2}


def test_embedding_store_persists_across_instances(tmp_path: Path) -> None:
    from agentwm.text.embedding_store import EmbeddingStore

    first = EmbeddingStore(tmp_path, encoder=HashEmbed(), shard=2)
    rows = first.embed(["a", "b", "c", "a"])
    assert first.encoded == 3 and len(list((tmp_path / "emb-all-MiniLM-L6-v2").glob("shard-*.json"))) == 2

    def no_encoder() -> None:
        raise AssertionError("a cache hit must not build the encoder")

    second = EmbeddingStore(tmp_path, encoder=no_encoder)
    assert torch.allclose(second.embed(["c", "a"]), rows[[2, 0]]) and second.encoded == 0


def test_best_split_trades_points_against_the_predicted_claim() -> None:
    """The final claim maximises points x P(the other side claims the rest); sharp predictions are complemented."""
    from agentwm.agents.dialogue.negotiation import best_split, split_table

    counts, values = (1, 2, 1), (3, 2, 3)
    table = split_table(counts)
    assert table.shape == (2 * 3 * 2, 3) and table.max(0).values.tolist() == [1, 2, 1]
    # the other side is sure to claim the two hats: claim the book and the ball (6 points, sure)
    best, worth = best_split(torch.tensor([[0.0, 2.0, 0.0]]), counts, values, table, sigma=0.1)
    assert table[int(best)].tolist() == [1, 0, 1] and abs(float(worth) - 6.0) < 1e-3
    # unsure whether it will claim the ball (0.5): every claim holds half the time, the richest wins
    best, worth = best_split(torch.tensor([[0.0, 2.0, 0.5]]), counts, values, table, sigma=0.1)
    assert table[int(best)].tolist() == [1, 0, 1] and 2.9 < float(worth) < 3.1
    # the book is worth nothing to us and the other side surely wants it: never claim it
    best, _ = best_split(torch.tensor([[1.0, 0.0, 0.0]]), counts, (0, 2, 3), table, sigma=0.1)
    assert table[int(best)].tolist() == [0, 2, 1]
    # a vaguer prediction never raises the expected points of the best claim
    _, vague = best_split(torch.tensor([[0.0, 2.0, 0.0]]), counts, values, table, sigma=1.0)
    assert float(vague) < 6.0


def test_value_hypotheses_cover_every_valuation_of_the_pool() -> None:
    """The other side's possible values: every non-negative vector worth 10 in all, none missing, none extra."""
    from agentwm.agents.dialogue.negotiation import value_hypotheses

    for counts in [(1, 2, 1), (4, 1, 1), (2, 2, 2), (1, 1, 3)]:
        hyps = value_hypotheses(counts)
        brute = {(a, b, c) for a in range(11) for b in range(11) for c in range(11)
                 if a * counts[0] + b * counts[1] + c * counts[2] == 10}
        assert set(hyps) == brute and len(hyps) == len(brute)
