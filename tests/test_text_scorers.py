"""Scorers of imagined text states: MiniLM relevance (offline) and the LLM judge with its fallback."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
import torch

from agentwm.text.client import LLMClient
from agentwm.text.embeddings import TextEmbedder
from agentwm.text.scorers import EmbeddingRelevance, LLMJudge, TextScorer
from agentwm.worldmodels.llm_outcome import LLMWorldModel
from tests.text_fakes import ScriptedChat, field, first_human


@pytest.fixture(scope="module")
def embedder() -> TextEmbedder:
    return TextEmbedder()


def test_embedding_relevance_prefers_states_about_the_goal(embedder: TextEmbedder) -> None:
    scorer = EmbeddingRelevance(embedder)
    assert isinstance(scorer, TextScorer)
    goal = "open the red door"
    states = ["the red door is now open", "you are holding a blue ball", "a grey wall blocks the way"]
    scores = scorer.score(states, [goal] * 3)
    assert scores.values.shape == (3,) and scores.calls == 0 and not scores.failed.any()
    assert int(scores.values.argmax()) == 0
    assert torch.all(scores.values <= 1.0 + 1e-5) and torch.all(scores.values >= -1.0 - 1e-5)
    rescaled = EmbeddingRelevance(embedder, rescale=True).score(states, [goal] * 3).values
    assert torch.allclose(rescaled, (scores.values + 1) / 2)
    assert asyncio.run(scorer.ascore(states[:1], [goal])).values[0] == pytest.approx(float(scores.values[0]))
    with pytest.raises(ValueError, match="same length"):
        scorer.score(states, [goal])
    with pytest.raises(TypeError, match="bare string"):
        scorer.score("text", "goal")  # type: ignore[arg-type]


def test_world_model_with_embedding_rewards_ranks_the_useful_action(embedder: TextEmbedder) -> None:
    def script(messages: list[Any], kwargs: dict[str, Any]) -> str:
        action = field(first_human(messages), "Action")
        return "Observation: the red door swings open" if "door" in action else "Observation: nothing changes"

    wm = LLMWorldModel(LLMClient(ScriptedChat(script=script)), scorer=EmbeddingRelevance(embedder),
                       goal="open the red door", done_detector="never")
    state = wm.observe(["you face a closed red door"] * 3)
    rollout = wm.imagine(state, [["toggle the door", "turn left", "wait"]], horizon=1)
    assert int(rollout.returns(gamma=0.9).argmax()) == 0


def test_llm_judge_parses_scores_dedupes_and_falls_back() -> None:
    def script(messages: list[Any], kwargs: dict[str, Any]) -> str:
        state = field(first_human(messages), "State")
        return {"near": "Score: 7/10", "far": "I'd say 20%", "weird": "no idea, sorry"}.get(state, "0.5")

    chat = ScriptedChat(script=script)
    judge = LLMJudge(LLMClient(chat, retries=0), fallback=0.1)
    scores = judge.score(["near", "far", "weird", "near"], ["g"] * 4)
    assert scores.values.tolist() == pytest.approx([0.7, 0.2, 0.1, 0.7])
    assert scores.failed.tolist() == [False, False, True, False]
    assert scores.calls == 3 == chat.calls  # the repeated pair is asked once
    again = asyncio.run(judge.ascore(["near", "other"], ["g", "g"]))
    assert again.values.tolist() == pytest.approx([0.7, 0.5]) and again.calls == 1  # "near" was cached

    down = LLMJudge(LLMClient(ScriptedChat(script=script, fail_first=99), retries=1, backoff=0.0))
    result = asyncio.run(down.ascore(["near"], ["g"]))
    assert result.values.tolist() == [0.0] and result.failed.tolist() == [True] and result.calls == 2
    with pytest.raises(ValueError, match="fallback"):
        LLMJudge(LLMClient(chat), fallback=2.0)
