"""The partner's view of a negotiation (agentwm.worldmodels.dialogue_mirror) and the scorer's ``views="both"``."""

from __future__ import annotations

import argparse
import json
import random
from pathlib import Path

import numpy as np
import pytest
import torch

from agentwm.agents.dialogue.outcome_train import train_outcome_model
from agentwm.worldmodels.base import repeat_state
from agentwm.worldmodels.dialogue_mirror import BothViews, Mirror, both_views
from agentwm.worldmodels.dialogue_outcome import DialogueOutcomeModel
from tests.benchmark_module import load_benchmark
from tests.test_dialogue_outcomes import _config
from tests.text_fakes import HashEmbed

pytestmark = pytest.mark.usefixtures("one_thread")
PHRASES = ["i want the hats", "deal", "no", "the ball?", "you take the books", "i need the ball"]


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> DialogueOutcomeModel:
    """A small model trained on negotiation-shaped logs (pool counts, the agent's values, agreement)."""
    tmp = tmp_path_factory.mktemp("mirror")
    rng = random.Random(0)
    lines = []
    for _ in range(80):
        counts = [1, 2, 1]
        values = rng.choice([(4, 1, 4), (2, 2, 2), (0, 5, 0), (6, 2, 0)])
        turns = [{"speaker": "YOU" if t % 2 == 0 else "THEM", "text": rng.choice(PHRASES)} for t in range(rng.randint(2, 5))]
        agreed = turns[-1]["text"] == "deal" or rng.random() < 0.3
        lines.append(json.dumps({"role": "YOU", "turns": turns, "context": {"counts": counts, "values": list(values)},
                                 "outcomes": {"points": 5.0 if agreed else 0.0, "agreement": agreed},
                                 "split": "test" if len(lines) % 8 == 0 else "val" if len(lines) % 8 == 1 else "train",
                                 "meta": {"dialogue": f"d{len(lines) // 2}"}}))
    logs = tmp / "dond.jsonl"
    logs.write_text("\n".join(lines) + "\n")
    trained, _ = train_outcome_model(_config(tmp, logs, outcome="points", steps=20), embed=HashEmbed())
    trained.metadata["logs"] = str(logs)
    return trained.eval()


CTX = {"counts": [1, 2, 1], "values": [4, 1, 4]}
TALK = [("THEM", "i want the hats"), ("YOU", "you take the books"), ("THEM", "i need the ball")]


def _heard(model: DialogueOutcomeModel, talk: list[tuple[str, str]], ctx: dict[str, list[int]] = CTX) -> Mirror:
    mirror = Mirror.start(model, [ctx])
    for speaker, text in talk:
        mirror = mirror.hear(model.embed_texts([text]), torch.tensor([speaker == "YOU"]))
    return mirror


def test_mirror_reads_the_talk_like_the_negotiators_partner_model(model: DialogueOutcomeModel) -> None:
    """Same hypotheses, carries and posterior as the negotiation agent's mirror (one implementation)."""
    from agentwm.agents.dialogue.negotiation import Side

    side = Side.start(model, CTX["counts"], CTX["values"])
    for speaker, text in TALK:
        side.hear(model.embed_texts([text])[0], own=speaker == "YOU")
    mirror = _heard(model, TALK)
    assert torch.allclose(mirror.carry["deter"], side.mirror["deter"], atol=1e-6)
    assert torch.allclose(mirror.weights, side.weights, atol=1e-6)
    assert not torch.allclose(mirror.weights, torch.full_like(mirror.weights, 1 / len(mirror.weights)))
    with pytest.raises(ValueError, match="counts.*values"):
        Mirror.start(model, [{"values": [1, 2]}])


def test_batched_mirrors_read_each_talk_as_alone(model: DialogueOutcomeModel) -> None:
    """cat + tile keep every talk's hypotheses apart: a batched read equals the per-talk reads."""
    a, b = _heard(model, TALK), _heard(model, TALK[:1], {"counts": [2, 1, 3], "values": [2, 3, 1]})
    both = Mirror.cat([a, b]).tile(2)  # talks a, a, b, b (as repeat_state orders copies)
    assert both.talks == 4 and torch.allclose(torch.zeros(4).index_add(0, both.owner, both.weights), torch.ones(4))
    carry = {k: torch.cat([model.observe_turns(TALK, role="YOU", context=CTX)[k]] * 2 +
                          [model.observe_turns(TALK[:1], role="YOU", context={"counts": [2, 1, 3], "values": [2, 3, 1]})[k]] * 2)
             for k in ("deter", "ctx", "turns")}
    roll = model.imagine(carry, [["deal"] * 4], 3, generator=torch.Generator().manual_seed(0), outcome="agreement")
    out, val = both.read(roll, "agreement")
    assert out.shape == val.shape == (3, 4) and bool(((out >= 0) & (out <= 1)).all())
    for talk, mirror in ((0, a), (2, b)):
        sub = type(roll)(states=roll.states, rewards=roll.rewards[:, talk : talk + 1], continues=roll.continues[:, talk : talk + 1],
                         values=None, extras={"emb": roll.extras["emb"][:, talk : talk + 1],
                                              "agent": roll.extras["agent"][:, talk : talk + 1]})
        alone, _ = mirror.read(sub, "agreement")
        assert torch.allclose(alone[:, 0], out[:, talk], atol=1e-5)
    # the candidate (step 0) is the same for copies of a talk; futures after it are sampled apart
    assert torch.allclose(out[0, 0], out[0, 1]) and not torch.allclose(out[0, 0], out[0, 2])
    mixed = both_views(roll, both, "agreement")
    own = roll.extras["outcome_all"][..., model.config.outcomes.index("agreement")]
    assert torch.allclose(mixed.rewards, (1 - roll.continues) * 0.5 * (own + out))
    assert torch.allclose(mixed.values, 0.5 * (roll.values + val))  # type: ignore[operator]
    with pytest.raises(ValueError, match="both sides share"):
        both.read(roll, "points")


def test_scorer_views_both_ranks_by_the_shared_agreement(model: DialogueOutcomeModel) -> None:
    from agentwm.planning.outcome_replies import OutcomeScorer
    from agentwm.planning.replies import score_replies

    scorer = OutcomeScorer(model, role="YOU")
    cands = ["deal", "no", "i want the hats"]
    first = scorer.score(TALK, cands, horizon=3, samples=4, private_context=CTX, views="both", futures="retrieved")
    again = scorer.score(TALK, cands, horizon=3, samples=4, private_context=CTX, views="both", futures="retrieved")
    own = scorer.score(TALK, cands, horizon=3, samples=4, private_context=CTX, outcome="agreement", futures="retrieved")
    assert len(scorer._mirrors) == 1 and [r.score for r in first] == [r.score for r in again]
    assert sorted(r.rank for r in first) == [1, 2, 3] and [r.score for r in first] != [r.score for r in own]
    for r in first:
        assert 0.0 <= r.score <= 1.0
        assert r.score == pytest.approx(r.parts["ends_within_horizon"] + r.parts["after_horizon"], abs=1e-5)
    # by hand: the same imagined futures read from both sides
    gen = torch.Generator().manual_seed(0)
    roll = BothViews(model, scorer.mirror(TALK, CTX)).imagine(repeat_state(scorer.carry(TALK, CTX), 12),
                                                              [[c for c in cands for _ in range(4)]], 3, generator=gen)
    assert torch.allclose(roll.returns(1.0).view(3, 4).mean(1), torch.tensor([r.score for r in first]), atol=1e-5)
    assert score_replies(TALK, cands, model=model, role="YOU", samples=4, private_context=CTX, views="both",
                         futures="retrieved")[0].score \
        == pytest.approx(first[0].score)
    with pytest.raises(ValueError, match="both sides share"):
        scorer.score(TALK, cands, private_context=CTX, views="both", outcome="points")
    with pytest.raises(ValueError, match="counts.*values"):
        scorer.score(TALK, cands, private_context={"values": [4, 1, 4]}, views="both")
    with pytest.raises(ValueError, match="views must be"):
        scorer.score(TALK, cands, private_context=CTX, views="partner")  # type: ignore[arg-type]


def test_auc_gap_interval_resamples_whole_dialogues() -> None:
    bench = load_benchmark("dialogue_outcomes")
    rng = np.random.default_rng(0)
    label = np.repeat((rng.random(200) < 0.6).astype(float), 2)  # both sides of a dialogue share the outcome
    noise, other = np.repeat(rng.random(200), 2), np.repeat(rng.random(200), 2)
    pairs, rows = np.repeat(np.arange(200), 2), np.arange(400)
    assert bench.auc_gap_ci(noise, noise, label, pairs, draws=200) == {"gap": 0.0, "lo": 0.0, "hi": 0.0}
    better = bench.auc_gap_ci(label + 0.8 * noise, noise, label, pairs, draws=200)
    assert better["lo"] > 0.2 and better["lo"] <= better["gap"] <= better["hi"]
    slight = label * 0.1 + other
    by_pair = bench.auc_gap_ci(slight, noise, label, pairs, draws=300)
    by_row = bench.auc_gap_ci(slight, noise, label, rows, draws=300)
    assert by_pair["lo"] < by_pair["gap"] < by_pair["hi"] and by_pair["gap"] == by_row["gap"]
    # copies resampled as one dialogue: a wider interval than treating them as independent evidence
    assert by_pair["hi"] - by_pair["lo"] > 1.2 * (by_row["hi"] - by_row["lo"])


def test_benchmark_reuses_parts_it_did_not_rerun(tmp_path: Path) -> None:
    bench = load_benchmark("dialogue_outcomes")
    old = {"dond": {"negotiation": {"rollouts": {"mean_points": 4.4}}}, "chitchat": {"positions": 3},
           "meta": {"command": "python benchmarks/dialogue_outcomes.py", "commit": "abc", "date": "2026-12-04"}}
    out = tmp_path / "r.json"
    out.write_text(json.dumps(old))
    got = bench._reused(argparse.Namespace(out=str(out), reuse=["negotiation", "chitchat"]))
    assert got["dond_negotiation"] == old["dond"]["negotiation"] and got["chitchat"] == {"positions": 3}
    assert got["reused_from"]["commit"] == "abc"
    out.write_text(json.dumps({"benchmark": "dialogue_outcomes", "result": {**old, "reused_from": {"commit": "first"}}}))
    again = bench._reused(argparse.Namespace(out=str(out), reuse=["negotiation"]))  # as write_result wraps it
    assert again["dond_negotiation"] == old["dond"]["negotiation"] and again["reused_from"] == {"commit": "first"}
    out.write_text(json.dumps({"meta": {}}))
    with pytest.raises(SystemExit, match="no dond.negotiation"):
        bench._reused(argparse.Namespace(out=str(out), reuse=["negotiation"]))


def test_outcome_train_help_prints(capsys: pytest.CaptureFixture[str]) -> None:
    """--help lists every flag (a '%' in a description once crashed argparse)."""
    from agentwm.agents.dialogue.outcome_train import main

    with pytest.raises(SystemExit) as done:
        main(["--help"])
    assert done.value.code == 0 and "cosine-decayed to 10%" in capsys.readouterr().out


def test_latent_futures_read_back_the_predicted_turn(model: DialogueOutcomeModel) -> None:
    """futures='latent': imagined turns are the decoded embeddings (not bank rows), shown as the nearest real turn."""
    from agentwm.planning.outcome_replies import OutcomeScorer

    carry = repeat_state(model.observe_turns(TALK, role="YOU", context=CTX), 4)
    latent = model.imagine(carry, [["deal"] * 4], 4, generator=torch.Generator().manual_seed(0), turns="latent")
    real = model.imagine(carry, [["deal"] * 4], 4, generator=torch.Generator().manual_seed(0))
    for t in range(1, 4):
        emb, sims = latent.extras["emb"][t], latent.extras["emb"][t] @ model.bank_emb.T
        assert not bool((sims > 1 - 1e-5).any(-1).any())  # no imagined turn is a bank row
        assert torch.allclose(emb.norm(dim=-1), torch.ones(4), atol=1e-4)
        side = model.bank_agent == bool(latent.extras["agent"][t, 0])
        best = [model.bank_texts[int(i)] for i in sims.masked_fill(~side, -2.0).argmax(-1)]
        assert latent.extras["text"][t] == best
        assert bool(((real.extras["emb"][t] @ model.bank_emb.T) > 1 - 1e-4).any(-1).all())  # retrieved: bank rows
    with pytest.raises(ValueError, match="turns must be"):
        model.imagine(carry, [["deal"] * 4], 2, turns="dreamed")  # type: ignore[arg-type]
    scorer = OutcomeScorer(model, role="YOU")
    res = scorer.score(TALK, ["deal", "no"], horizon=3, samples=4, private_context=CTX, futures="latent")
    for r in res:
        assert r.score == pytest.approx(r.parts["ends_within_horizon"] + r.parts["after_horizon"], abs=1e-4)
    with pytest.raises(ValueError, match="futures must be"):
        scorer.score(TALK, ["deal"], private_context=CTX, futures="dreamed")  # type: ignore[arg-type]


def test_benchmark_turn_figures_run_on_negotiation_logs(model: DialogueOutcomeModel) -> None:
    """Every turn-level score of the benchmark on a tiny negotiation log, the direct ablation's median seed."""
    from agentwm.agents.dialogue.outcome_train import load_logs

    bench = load_benchmark("dialogue_outcomes")
    data = load_logs(model.metadata["logs"], "points", embed=HashEmbed())
    args = argparse.Namespace(horizon=2, samples=2, lam=0.5, direct_train=60, direct_seeds=3, groups=None)
    res = bench.turn_figures(model, data, args, auc_outcome="agreement", rank_outcome="points")
    for m in ("return", "return_h3", "return_lambda", "return_latent", "return_views", "value", "direct"):
        assert 0.0 <= res[f"turn_auc_{m}"] <= 1.0
    figs = res["direct_seeds"]["figure_per_seed"]
    assert len(figs) == 3 and res["turn_auc_direct"] == sorted(figs)[1]
    assert set(res["turn_auc_gap_ci"]) >= {"return_views", "return_latent", "value"}
    gap = res["turn_auc_gap_ci"]["value"]
    assert gap["gap"] == pytest.approx(res["turn_auc_value"] - res["turn_auc_direct"], abs=2e-4)


def test_tile_keeps_each_talks_rows_together_in_repeat_state_order() -> None:
    """Rows of talks in any order: copies of talk b become talks b*n .. b*n+n-1, each with all its rows."""
    owner = torch.tensor([1, 0, 2, 0, 2, 0])  # talk sizes 3, 1, 2, interleaved
    mirror = Mirror(None, {"deter": torch.arange(6.0)[:, None]}, owner, torch.arange(6.0), 3)  # type: ignore[arg-type]
    tiled = mirror.tile(2)
    assert tiled.talks == 6 and tiled.owner.tolist() == [0, 0, 0, 1, 1, 1, 2, 3, 4, 4, 5, 5]
    assert tiled.carry["deter"].flatten().tolist() == [1, 3, 5, 1, 3, 5, 0, 0, 2, 4, 2, 4]
    assert torch.equal(tiled.loglik, tiled.carry["deter"].flatten())
    both = Mirror.cat([mirror, mirror])
    assert both.talks == 6 and both.owner.tolist() == owner.tolist() + (owner + 3).tolist()
