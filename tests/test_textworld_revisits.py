"""Imagined revisits (VisitMemory, revisit_adjusted), the counting coverage rule, and their wiring into the planner."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor

from agentwm.agents.textworld.revisits import VisitMemory, revisit_adjusted
from agentwm.worldmodels.text_latent import TextLatentConfig, TextLatentModel, count_cover
from tests.hash_embed import HashEmbed


def _unit(*values: float) -> Tensor:
    return F.normalize(torch.tensor(values), dim=-1)


def test_revisit_needs_a_similar_observation_and_no_progress_since() -> None:
    memory = VisitMemory()
    assert torch.equal(memory.revisit(torch.ones(2, 3), torch.zeros(2, 2)), torch.zeros(2))
    room_a, room_b = _unit(1.0, 0.0, 0.0), _unit(0.0, 1.0, 0.0)
    memory.add(room_a, torch.tensor([0.0, 0.0]))
    memory.add(room_b, torch.tensor([0.6, 0.0]))  # progress was made on the way to room b
    pred = torch.stack([room_a, room_a, room_b, _unit(0.0, 0.0, 1.0)])
    cover = torch.tensor([[0.0, 0.0], [0.6, 0.0], [0.6, 0.0], [0.6, 0.0]])
    got = memory.revisit(pred, cover)
    # back to room a with nothing done since: a revisit; back to room a after progress: not one
    assert got[0] == pytest.approx(1.0) and got[1] == pytest.approx(0.0)
    assert got[2] == pytest.approx(1.0) and got[3] == pytest.approx(0.0)
    with pytest.raises(ValueError, match="pred_obs"):
        memory.revisit(torch.ones(3), torch.zeros(3, 2))
    with pytest.raises(ValueError, match="one state"):
        memory.add(torch.ones(2, 3), torch.zeros(2))


def test_revisit_nearest_counts_only_the_closest_visit() -> None:
    memory = VisitMemory()
    memory.add(_unit(1.0, 0.0), torch.tensor([0.0]))  # seen before progress
    memory.add(_unit(0.8, 0.6), torch.tensor([0.5]))  # seen after it
    pred = _unit(0.9, 0.45)[None]  # nearer the second visit, whose coverage differs
    cover = torch.tensor([[0.0]])
    assert float(memory.revisit(pred, cover)) > 0.8  # "any" rule: the first visit qualifies
    assert float(memory.revisit(pred, cover, nearest=True)) == 0.0


def test_revisit_adjusted_discounts_only_matches() -> None:
    score = torch.tensor([0.8, 0.6, 0.4])
    out = revisit_adjusted(score, torch.tensor([0.95, 0.5, 0.9]), threshold=0.9, discount=0.5)
    assert torch.allclose(out, torch.tensor([0.4, 0.6, 0.2]))
    assert torch.equal(revisit_adjusted(score, torch.ones(3), 0.9, 1.0), score)


def test_count_cover_credits_a_repeated_step_once_per_play() -> None:
    sims = torch.tensor([[0.1, 0.70, 0.68, 0.3]])  # "go east" against: flavour, "travel east", "venture east", "go north"
    once = count_cover(torch.zeros(1, 4), sims)
    assert torch.allclose(once, torch.tensor([[0.1, 0.70, 0.0, 0.3]]))
    twice = count_cover(once, sims)
    assert torch.allclose(twice, torch.tensor([[0.1, 0.70, 0.68, 0.3]]))
    assert torch.equal(count_cover(twice, sims), twice)  # both steps done: a third play credits nothing
    # a weaker match than the best (beyond the margin) is never credited by this command
    far = count_cover(torch.zeros(1, 2), torch.tensor([[0.9, 0.5]]))
    assert torch.allclose(far, torch.tensor([[0.9, 0.0]]))
    # the running max, as in training, marks both at once
    assert torch.allclose(torch.maximum(torch.zeros(1, 4), sims), sims)




def _step(observation: str, admissible: list[str]):  # type: ignore[no-untyped-def]
    from agentwm.envs.text import TextStep

    return TextStep(observation=observation, objective="Go east. Open the box.", admissible=tuple(admissible), reward=0.0, done=False, won=False, info={})


def test_planner_applies_the_revisit_term_and_the_counting_cover() -> None:
    from agentwm.agents.textworld.agents import LearnedPlanner

    torch.manual_seed(0)
    model = TextLatentModel(TextLatentConfig(emb_dim=16, max_goal=4, hidden=8, proj=8, units=8, members=2)).eval()
    menu = ["go east", "open box", "go west"]
    plain = LearnedPlanner(model, HashEmbed(), loop_penalty=0.0)
    discounted = LearnedPlanner(model, HashEmbed(), loop_penalty=0.0, revisit_discount=0.5, revisit_threshold=-1.0, progress_tolerance=10.0)
    for agent in (plain, discounted):
        agent.reset(_step("room", menu))
    _, base = plain.scores(_step("room", menu))
    _, half = discounted.scores(_step("room", menu))
    assert discounted.last_revisit is not None and len(discounted.visits) == 1
    assert torch.allclose(half, 0.5 * base)  # every candidate leads back to a visited state here
    with pytest.raises(ValueError, match="revisit_discount"):
        LearnedPlanner(model, HashEmbed(), revisit_discount=1.5)
    # the counting rule changes the carry's coverage after a repeated command; the default does not
    goal, mask = HashEmbed().embed(["go east", "go east"])[None], torch.ones(1, 2)
    act = HashEmbed().embed(["go east"])
    state = model.initial(1, goal, mask)
    for rule, expected in (("max", [1.0, 1.0]), ("count", [1.0, 0.0])):
        model.cover_rule = rule
        after = model.observe(act, state, act)["cover"][0]
        assert torch.allclose(after[:2], torch.tensor(expected), atol=1e-5), rule
    model.cover_rule = "max"


def test_make_agent_rejects_an_unknown_cover_rule() -> None:
    from agentwm.agents.textworld.factory import make_agent

    with pytest.raises(ValueError, match="cover_rule must be"):
        make_agent("direct", cover_rule="ordered")
