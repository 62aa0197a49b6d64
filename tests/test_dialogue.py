"""Dialogue world model: losses, imagination, scoring API, input checks, checkpoints, CLI.

Unit tests use a hashing embedder (deterministic random unit vectors per text) so they run in
milliseconds; the shipped-checkpoint tests use the real offline MiniLM.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
import torch
from pydantic import ValidationError

from agentwm.core.returns import discounted_return
from agentwm.planning.replies import DialogueScorer, score_replies
from agentwm.worldmodels.base import TextWorldModel
from agentwm.worldmodels.dialogue import LOSS_KEYS, MAX_TEXT_CHARS, DialogueConfig, DialogueWorldModel

SHIPPED = Path(__file__).resolve().parent.parent / "models" / "dialogue-minilm"
CONTEXT = ["hey! how was your weekend?", "great, I went hiking with my dog"]


class HashEmbedder:
    """Deterministic unit vectors from a hash of the text (no model, no I/O)."""

    def __init__(self, dim: int = 384) -> None:
        self.dim = dim
        self.calls = 0

    def embed(self, texts: list[str]) -> torch.Tensor:
        self.calls += 1
        rows = []
        for t in texts:
            g = torch.Generator().manual_seed(int(hashlib.sha1(t.encode()).hexdigest()[:8], 16))
            rows.append(torch.nn.functional.normalize(torch.randn(self.dim, generator=g), dim=0))
        return torch.stack(rows)


def tiny_model(seed: int = 0) -> DialogueWorldModel:
    torch.manual_seed(seed)
    model = DialogueWorldModel(DialogueConfig.preset("debug"), embedder=HashEmbedder())
    bank = [f"real utterance number {i}" for i in range(40)]
    model.set_bank(model.embedder.embed(bank), bank)
    return model.eval()


def toy_batch(B: int = 3, T: int = 5) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    mask = torch.ones(B, T)
    mask[0, 3:] = 0.0
    return {
        "emb": torch.nn.functional.normalize(torch.randn(B, T, 384, generator=g), dim=-1) * mask[..., None],
        "mask": mask,
        "turns": torch.arange(T).float().expand(B, T).clone(),
        "words": torch.full((B, T), 7.0),
        "has_next": mask.clone(),
        "ratings": torch.tensor([[7.0, 8.0, 6.0]] * B),
        "rated": torch.tensor([1.0] + [0.0] * (B - 1)),
    }


# ----------------------------------------------------------------------------------------------
# Model


def test_loss_terms_are_unreduced_masked_and_train_every_part() -> None:
    model = tiny_model().train()
    batch = toy_batch()
    losses, metrics = model.loss(batch)
    assert set(losses) == set(LOSS_KEYS) == set(model.config.loss_scales)
    for key, value in losses.items():
        assert value.shape == (3, 5), key
        assert torch.isfinite(value).all(), key
        assert (value[0, 3:] == 0).all(), f"{key} must be zero on padded turns"
    assert (losses["nce"][:, 0] == 0).all(), "the first turn of a window has no context to predict it from"
    assert (losses["rating"][1:] == 0).all(), "unrated conversations give no rating loss"
    model.total_loss(losses).backward()
    for name in ("encoder", "gru", "prior_net", "post_net", "next_head", "heads"):
        grads = [p.grad for p in getattr(model, name).parameters()]
        assert any(g is not None and g.abs().sum() > 0 for g in grads), f"{name} gets no gradient"
    assert 0.0 <= float(metrics["wm/nce_acc"]) <= 1.0


def test_loss_rejects_incomplete_batches() -> None:
    batch = toy_batch()
    del batch["words"]
    with pytest.raises(KeyError, match="words"):
        tiny_model().loss(batch)
    bad = toy_batch()
    bad["emb"] = bad["emb"][..., :10]
    with pytest.raises(ValueError, match="emb"):
        tiny_model().loss(bad)


def test_imagine_returns_a_rollout_with_text_and_follows_the_return_math() -> None:
    model = tiny_model()
    assert isinstance(model, TextWorldModel)
    state = model.observe_context(CONTEXT)
    rollout = model.imagine(state, [["nice! where did you go?", "ok"]], horizon=3, sample=False)
    assert rollout.rewards.shape == rollout.continues.shape == (3, 2)
    assert ((rollout.continues >= 0) & (rollout.continues <= 1)).all()
    assert len(rollout.extras["text"]) == 3 and all(len(row) == 2 for row in rollout.extras["text"])
    assert rollout.extras["actions"][0] == ["nice! where did you go?", "ok"]
    # later turns of ours and every reply are imagined: real utterances from the bank
    for t in range(3):
        assert all(text in model.bank_texts for text in rollout.extras["text"][t])
    assert all(text in model.bank_texts for text in rollout.extras["actions"][1])
    # an imagined reply never repeats the turn it answers
    for t in range(1, 3):
        for b in range(2):
            assert rollout.extras["text"][t][b] != rollout.extras["actions"][t][b]
    # reward = weighted parts; returns = the core's discounted return
    w = model.config.reward_weights
    parts = sum(w[k] * rollout.extras[k] for k in ("engagement", "relevance", "rating"))
    torch.testing.assert_close(rollout.rewards, parts)
    torch.testing.assert_close(rollout.returns(0.9), discounted_return(rollout.rewards, rollout.continues, 0.9))


def test_observe_matches_observe_context_and_imagine_checks_inputs() -> None:
    model = tiny_model()
    a = model.observe_context(CONTEXT)
    b = model.observe(CONTEXT[1], model.observe(CONTEXT[0]))
    torch.testing.assert_close(a["deter"], b["deter"])
    with pytest.raises(ValueError, match="horizon"):
        model.imagine(a, [["x"]], horizon=0)
    with pytest.raises(ValueError, match="every row"):
        model.imagine(a, [["x", "y"], ["z"]], horizon=2)
    with pytest.raises(ValueError, match="batch"):
        model.imagine({k: torch.cat([v, v, v]) for k, v in a.items()}, [["x", "y"]], horizon=1)


def test_learned_compatibility_starts_at_the_cosine_trains_and_round_trips(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = DialogueWorldModel(DialogueConfig.preset("debug", match_dim=8), embedder=HashEmbedder())
    assert DialogueWorldModel(DialogueConfig.preset("debug", match_dim=0)).match_k is None
    state = model.eval().observe_context(CONTEXT)
    cands = model.embed(["where did you go?", "cool", "my car broke down"])
    cosine = model.predict_next(state) @ cands.T / model.config.temperature
    torch.testing.assert_close(model.next_turn_logits(state, cands), cosine)  # zero-initialised term
    # the term is trained by the next-turn loss and then changes the ranking logits
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    model.train()
    for _ in range(3):
        losses, _ = model.loss(toy_batch())
        opt.zero_grad()
        model.total_loss(losses).backward()
        assert model.match_k is not None and model.match_k.weight.grad is not None
        assert model.match_k.weight.grad.abs().sum() > 0
        opt.step()
    model.eval()
    state = model.observe_context(CONTEXT)
    learned = model.next_turn_logits(state, cands)
    assert not torch.allclose(learned, model.predict_next(state) @ cands.T / model.config.temperature)
    model.save(tmp_path / "ckpt")
    loaded = DialogueWorldModel.load(tmp_path / "ckpt", embedder=HashEmbedder())
    torch.testing.assert_close(loaded.next_turn_logits(loaded.observe_context(CONTEXT), cands), learned)


# ----------------------------------------------------------------------------------------------
# Scoring API


def test_scores_are_deterministic_under_a_seed() -> None:
    model = tiny_model()
    cands = ["where did you go?", "cool", "I love dogs! what breed?"]
    first = score_replies(CONTEXT, cands, model=model, samples=4, seed=3)
    again = score_replies(CONTEXT, cands, model=model, samples=4, seed=3)
    assert [r.score for r in first] == [r.score for r in again]
    assert [r.imagined for r in first] == [r.imagined for r in again]
    other = score_replies(CONTEXT, cands, model=model, samples=4, seed=4)
    assert [r.score for r in other] != [r.score for r in first]
    assert sorted(r.rank for r in first) == [1, 2, 3]
    best = min(first, key=lambda r: r.rank)
    assert best.score == max(r.score for r in first)


def test_score_components_add_up_to_the_score() -> None:
    model = tiny_model()
    results = score_replies(CONTEXT, ["a", "b"], horizon=2, gamma=0.8, model=model)
    w = model.config.reward_weights
    for r in results:
        assert r.score == pytest.approx(sum(w[k] * v for k, v in r.components.items()), rel=1e-5)
        assert len(r.imagined) == 2 and r.imagined[0].ours == r.reply
        assert 0.0 <= r.p_reply <= 1.0


def test_scorer_caches_the_context() -> None:
    model = tiny_model()
    scorer = DialogueScorer(model)
    scorer.score(CONTEXT, ["a"])
    calls = model.embedder.calls
    scorer.score(CONTEXT, ["b"])
    assert model.embedder.calls == calls + 1, "the context must not be embedded again"


@pytest.mark.parametrize(
    ("context", "candidates", "match"),
    [
        ([], ["hi"], "context is empty"),
        (CONTEXT, [], "candidates is empty"),
        (CONTEXT, ["   "], "candidates\\[0\\] is empty"),
        (CONTEXT, ["ok", 7], "candidates\\[1\\] must be a str"),
        (["x" * (MAX_TEXT_CHARS + 1)], ["ok"], "characters"),
        (CONTEXT, ["ok"] * 2000, "at most"),
        ("just a string", ["ok"], "list of strings"),
    ],
)
def test_bad_input_gets_a_clear_error(context: object, candidates: object, match: str) -> None:
    with pytest.raises((ValueError, TypeError, ValidationError), match=match):
        score_replies(context, candidates, model=tiny_model())  # type: ignore[arg-type]


def test_bad_settings_are_rejected() -> None:
    with pytest.raises(ValidationError, match="horizon"):
        score_replies(CONTEXT, ["ok"], horizon=0, model=tiny_model())
    with pytest.raises(ValidationError, match="gamma"):
        score_replies(CONTEXT, ["ok"], gamma=1.5, model=tiny_model())
    with pytest.raises(ValidationError, match="loss_scales"):
        DialogueConfig(loss_scales={"nce": 1.0})


# ----------------------------------------------------------------------------------------------
# Checkpoints and CLI


def test_save_load_round_trip(tmp_path: Path) -> None:
    model = tiny_model()
    model.save(tmp_path / "ckpt", {"note": "test"})
    loaded = DialogueWorldModel.load(tmp_path / "ckpt", embedder=HashEmbedder())
    assert loaded.bank_texts == model.bank_texts
    assert loaded.metadata["note"] == "test"
    a = score_replies(CONTEXT, ["x", "y"], model=model, samples=2, seed=1)
    b = score_replies(CONTEXT, ["x", "y"], model=loaded, samples=2, seed=1)
    assert [r.model_dump() for r in a] == [r.model_dump() for r in b]
    with pytest.raises(FileNotFoundError, match="config"):
        DialogueWorldModel.load(tmp_path / "missing")


@pytest.fixture(scope="module")
def shipped() -> DialogueWorldModel:
    if not (SHIPPED / "model.safetensors").is_file():
        pytest.fail(f"the shipped checkpoint {SHIPPED} is missing")
    return DialogueWorldModel.load(SHIPPED)


def test_shipped_checkpoint_is_small_loads_offline_and_scores(shipped: DialogueWorldModel) -> None:
    size = sum(f.stat().st_size for f in SHIPPED.iterdir())
    assert size <= 16 * 2**20, f"shipped checkpoint is {size / 2**20:.1f} MiB"
    assert (SHIPPED / "README.md").read_text().count("Recall@1") >= 2
    assert len(shipped.bank_texts) >= 1000
    context = ["I just adopted a puppy!"]
    cands = ["Congratulations! What breed is it? What's its name?", "k", "What did you have for lunch?"]
    results = score_replies(context, cands, model=shipped)
    assert {r.rank for r in results} == {1, 2, 3}
    # the on-topic reply leads to the most on-topic imagined conversation
    relevance = [r.components["relevance"] for r in results]
    assert relevance[0] > max(relevance[1:]), relevance
    for r in results:
        assert all(e.reply in shipped.bank_texts for e in r.imagined)
    # the next-turn head ranks the true continuation of a real exchange above unrelated turns
    state = shipped.observe_context(["what kind of music do you like?"])
    pred = shipped.predict_next(state)
    cands = shipped.embed(["I mostly listen to rock and some jazz", "my car broke down yesterday", "I love pizza"])
    assert int((cands @ pred[0]).argmax()) == 0


def test_cli_score_dialogue_prints_ranked_json(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                               shipped: DialogueWorldModel) -> None:
    from agentwm.cli import main

    ctx = tmp_path / "c.json"
    ctx.write_text(json.dumps([{"role": "user", "content": "I just adopted a puppy!"}]))
    code = main(["score", "dialogue", "--context-file", str(ctx), "--model", str(SHIPPED), "--candidates",
                 "k", "Congratulations! What breed is it?"])
    assert code == 0
    out = json.loads(capsys.readouterr().out)
    assert [r["rank"] for r in out["results"]] == [1, 2]
    assert out["best"] == out["results"][0]["reply"]
    assert set(out["results"][0]["components"]) == {"engagement", "relevance", "rating"}
    ctx.write_text("[1, 2]")
    assert main(["score", "dialogue", "--context-file", str(ctx), "--model", str(SHIPPED), "--candidates", "a"]) == 2
    assert "context[0]" in capsys.readouterr().err


# ----------------------------------------------------------------------------------------------
# Learning check (real data, real MiniLM): small by default, bigger with AGENTWM_FULL=1


@pytest.mark.slow
def test_trains_on_a_slice_and_beats_the_cosine_baseline() -> None:
    """Train on the first conversations of Chit-Chat (real MiniLM embeddings) and evaluate on the
    slice's held-out test conversations: the model must beat the issue's baseline (MiniLM cosine
    between context and candidate) at picking the true next turn among 10."""
    import os

    from agentwm.agents.dialogue.train import DialogueTrainConfig, evaluate, load_data, train_dialogue

    full = os.environ.get("AGENTWM_FULL") == "1"
    limit, steps = (2000, 1200) if full else (400, 150)
    data = load_data(limit=limit, max_turns=16, progress=False)
    config = DialogueTrainConfig(
        preset="debug", limit=limit, max_turns=16, minutes=10.0, max_steps=steps, batch=32, window=16,
        eval_every=50, eval_conversations=40, metrics=None, progress=False, bank_size=500, seed=0,
    )
    model, summary = train_dialogue(config, data=data)
    assert summary["steps"] == steps
    figures = evaluate(model, data, data.split("test"), max_turns=16, per_conversation=16, seed=1)
    assert figures["n_random"] >= 100
    assert figures["r1_random"] > figures["r1_random_cos_ctx"] + 0.02, figures
    # (the last-turn cosine is a stronger baseline; on this small slice the model stays a few points
    # below it, on the full data it is on par: see models/dialogue-minilm/README.md)
    assert figures["next_cos"] > 0.0 and 0.5 < figures["cont_acc"] <= 1.0, figures
