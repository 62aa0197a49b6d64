"""Planners and ranking on toy world models with known optima (see tests/toy_models.py)."""

from __future__ import annotations

import pytest
import torch
from toy_models import JUMP, LEFT, RIGHT, STAY, Chain, PointMass, RiskyBandit

from agentwm.planning import (
    CEM,
    MPPI,
    Planner,
    PlanResult,
    RandomShooting,
    Scorer,
    as_scorer,
    rank_candidates,
    tile_state,
)
from agentwm.worldmodels import Rollout

G = 0.9
X0 = [0.0, 0.9, -0.3]  # PointMass starts; target 0.6, so the best first actions are 0.6, -0.3, 0.9
CHAIN_STARTS = [1, 5, 3]  # goal 3: best first actions right, left, stay
CHAIN_FIRST = [RIGHT, LEFT, STAY]
CHAIN_BEST = {1: [RIGHT, RIGHT, STAY, STAY], 5: [LEFT, LEFT, STAY, STAY], 3: [STAY] * 4}
WALK, AT_GOAL = G + G**2 + G**3, 1 + G + G**2 + G**3  # optimal returns from 2 steps away / at the goal


def make_planner(kind: str, model, **overrides) -> Planner:
    """Planners sized for the small toys (a few thousand imagined rows at most)."""
    discrete = model.action_spec.kind == "discrete"
    if kind == "shooting":
        kw = {"horizon": 4 if discrete else 3, "samples": 2048 if discrete else 4096}
        kw.update(overrides)
        return RandomShooting(model, gamma=G, generator=0, **kw)
    if kind == "cem":
        kw = {
            "horizon": 4 if discrete else 3,
            "samples": 128 if discrete else 64,
            "elites": 8,
            "iterations": 5,
        }
        kw.update(overrides)
        return CEM(model, gamma=G, generator=0, **kw)
    kw = {"horizon": 4 if discrete else 3, "samples": 64, "iterations": 5, "temperature": 0.02}
    if discrete:  # keep half of the old probabilities: early updates from 64 samples are noisy
        kw["momentum"] = 0.5
    kw.update(overrides)
    return MPPI(model, gamma=G, generator=0, **kw)


PLANNERS = ["shooting", "cem", "mppi"]


# ----------------------------------------------------------------------------------------------
# Each planner finds the known optimum, discrete and continuous, for B = 1 and B = 3.


@pytest.mark.parametrize("batch", [1, 3])
@pytest.mark.parametrize("kind", PLANNERS)
def test_continuous_planners_find_the_optimum(kind, batch):
    model = PointMass(target=0.6)
    x0 = torch.tensor(X0[:batch]).unsqueeze(-1)
    result = make_planner(kind, model).plan({"x": x0})

    assert isinstance(result, PlanResult)
    assert result.action.shape == (batch, 1) and result.actions.shape == (3, batch, 1)
    assert result.score.shape == (batch,)
    torch.testing.assert_close(result.action, 0.6 - x0, atol=0.15 if kind == "shooting" else 0.1, rtol=0)
    true = model.true_return(x0, result.actions, G)
    assert (true > {"shooting": -0.05, "cem": -0.02, "mppi": -0.05}[kind]).all(), true  # optimum is 0
    # The reported score is the evaluated score (random shooting, CEM) or MPPI's weighted estimate.
    torch.testing.assert_close(result.score, true, atol=0.05 if kind == "mppi" else 1e-5, rtol=0)
    assert all(k.startswith("plan/") and v.dim() == 0 and not v.requires_grad for k, v in result.info.items())


@pytest.mark.parametrize("batch", [1, 3])
@pytest.mark.parametrize("kind", PLANNERS)
def test_discrete_planners_find_the_optimum(kind, batch):
    model = Chain()
    starts = CHAIN_STARTS[:batch]
    result = make_planner(kind, model).plan(model.state(starts))

    assert result.action.shape == (batch, 4) and result.actions.shape == (4, batch, 4)
    assert ((result.actions == 0) | (result.actions == 1)).all() and (result.actions.sum(-1) == 1).all()
    assert result.action.argmax(-1).tolist() == CHAIN_FIRST[:batch]
    assert result.actions.argmax(-1).T.tolist() == [CHAIN_BEST[s] for s in starts]
    best = torch.tensor([AT_GOAL if s == 3 else WALK for s in starts])
    torch.testing.assert_close(result.score, best, atol=0.1 if kind == "mppi" else 1e-5, rtol=0)


def test_cem_and_mppi_beat_random_shooting_at_an_equal_budget():
    # 4-D point mass 1.5 away per dim: 20-D search space; the optimum (1, 0.5, 0, ...) returns -1.
    model = PointMass(dim=4, target=1.5)
    x0 = torch.zeros(3, 4)
    budget, iters = 500, 5
    kw = {"horizon": 5, "gamma": 0.99, "generator": 0}
    planners = {
        "shooting": RandomShooting(model, samples=budget, **kw),
        "cem": CEM(model, samples=budget // iters, elites=10, iterations=iters, **kw),
        "mppi": MPPI(model, samples=budget // iters, iterations=iters, temperature=0.1, **kw),
    }
    got = {
        name: model.true_return(x0, p.plan({"x": x0}).actions, 0.99).mean() for name, p in planners.items()
    }
    assert got["cem"] > got["shooting"] + 2.0, got
    assert got["mppi"] > got["shooting"] + 2.0, got
    assert got["cem"] <= -1.0 + 1e-5 and got["mppi"] <= -1.0 + 1e-5  # nothing beats the optimum


# ----------------------------------------------------------------------------------------------
# Warm start.


@pytest.mark.parametrize("kind", PLANNERS)
def test_warm_start_carry_has_the_right_shape_and_helps(kind):
    model = PointMass(dim=4, target=1.5)
    x0 = torch.zeros(8, 4)
    strong = make_planner(
        kind, model, horizon=5, **({"samples": 1000} if kind == "shooting" else {"samples": 200})
    )
    first = strong.plan({"x": x0})
    key = {"shooting": "actions", "cem": "mean", "mppi": "mean"}[kind]
    assert first.carry is not None and first.carry[key].shape == (5, 8, 4)
    if kind == "cem":
        assert first.carry["std"].shape == (5, 8, 4)
    if kind in ("shooting", "mppi"):  # the carry is the plan shifted one step
        torch.testing.assert_close(first.carry[key][:-1], first.actions[1:])

    # Re-plan from where the first action leads, on a tiny budget: the carried plan is a candidate.
    x1 = x0 + first.action
    weak = make_planner(
        kind, model, horizon=5, samples=8, **({} if kind == "shooting" else {"iterations": 1})
    )
    cold = model.true_return(x1, weak.plan({"x": x1}).actions, G)
    warm = model.true_return(x1, weak.plan({"x": x1}, carry=first.carry).actions, G)
    assert warm.mean() > cold.mean() + (0.0 if kind == "shooting" else 1.0), (warm, cold)
    if kind in ("shooting", "cem"):  # the carried plan is a candidate, so the result is at least as good
        carried = first.carry["actions" if kind == "shooting" else "mean"]
        assert (warm >= model.true_return(x1, carried, G) - 1e-5).all()


@pytest.mark.parametrize("kind", ["cem", "mppi"])
def test_discrete_carry_is_shifted_probabilities(kind):
    model = Chain()
    result = make_planner(kind, model).plan(model.state([1, 5, 3]))
    probs = result.carry["probs"]
    assert probs.shape == (4, 3, 4)
    torch.testing.assert_close(probs.sum(-1), torch.ones(4, 3))
    torch.testing.assert_close(probs[-1], torch.full((3, 4), 0.25))  # the new last step is uniform
    # Warm-started from its own carry after stepping, the planner continues the plan.
    nxt = make_planner(kind, model, iterations=1).plan(model.state([2, 4, 3]), carry=result.carry)
    assert nxt.action.argmax(-1).tolist() == [RIGHT, LEFT, STAY]


# ----------------------------------------------------------------------------------------------
# Ranking a finite candidate set.


def test_ranking_full_sequences_and_continue_cut():
    model = Chain()
    seqs = torch.tensor(
        [
            [STAY, STAY, STAY, STAY],  # stays at the goal: 1 + g + g^2 + g^3
            [JUMP, STAY, STAY, STAY],  # 0.9, then the episode is over (the model's 2s after it are cut)
            [RIGHT, LEFT, STAY, STAY],  # 0 + g + g^2 + g^3
            [LEFT, LEFT, LEFT, LEFT],  # 0
        ]
    )
    ranking = rank_candidates(model, model.state([3]), model.action_spec.one_hot(seqs), samples=2, gamma=G)
    expected = torch.tensor([AT_GOAL, 0.9, WALK, 0.0])
    torch.testing.assert_close(ranking.scores, expected)
    assert ranking.returns.shape == (4, 2)
    assert ranking.order.tolist() == [0, 2, 1, 3] and ranking.best == 0
    assert ranking.disagreement is None
    assert isinstance(ranking.rollout, Rollout) and ranking.rollout.batch_size == 8
    assert model.calls == 1  # K × S rows in one imagine call


def test_ranking_first_actions_with_a_followup_policy():
    model = Chain()
    first = model.action_spec.one_hot(torch.tensor([LEFT, STAY, RIGHT, JUMP]))
    ranking = rank_candidates(model, model.state([1]), first, horizon=4, gamma=G, followup=model.goto_goal)
    # right then walk: arrives a step early; stay/left arrive one/two steps later; jump ends at 0.9
    torch.testing.assert_close(ranking.scores, torch.tensor([G**3, G**2 + G**3, WALK, 0.9]))
    assert ranking.order.tolist() == [2, 1, 3, 0]
    torch.testing.assert_close(ranking.rollout.actions[0], first)


def test_ranking_repeat_and_random_followups():
    model = Chain()
    first = model.action_spec.one_hot(torch.tensor([LEFT, STAY, RIGHT, JUMP]))
    ranking = rank_candidates(model, model.state([2]), first, horizon=4, gamma=G, followup="repeat")
    torch.testing.assert_close(ranking.scores, torch.tensor([0.0, 0.0, 1.0, 0.9]))
    assert ranking.best == 2
    torch.testing.assert_close(ranking.rollout.actions, first.unsqueeze(0).expand(4, 4, 4))

    ranking = rank_candidates(
        model, model.state([2]), first, horizon=4, samples=256, gamma=G, followup="random", generator=0
    )
    assert ranking.returns.shape == (4, 256)
    acts = ranking.rollout.actions  # [H, K*S, A], rows ordered [K, S]
    torch.testing.assert_close(acts[0], first.repeat_interleave(256, 0))
    assert acts[1:].argmax(-1).unique().numel() == 4  # random follow-ups use every action
    assert ranking.best == 2  # stepping onto the goal first is best on average


def test_ranking_risk_scores_prefer_the_safe_candidate():
    model = RiskyBandit(noise=2.0, slope=20.0)
    safe, risky = 0.4, 1.0
    cands = torch.tensor([[safe], [risky]])
    ranking = rank_candidates(
        model, model.initial(1), cands, horizon=3, samples=256, gamma=1.0, followup="repeat"
    )
    assert ranking.best == 1  # the mean return of the risky arm is higher (3.0 vs 1.2)
    torch.testing.assert_close(ranking.scores[0], torch.tensor(3 * safe))
    torch.testing.assert_close(ranking.disagreement, torch.tensor([0.0, 10.0]))
    low_q = ranking.rescore(Scorer("lower_quantile", quantile=0.1))
    assert low_q.argmax() == 0 and low_q[1] < 0.0
    penalised = ranking.rescore("disagreement_penalized")
    torch.testing.assert_close(penalised, torch.tensor([3 * safe, ranking.returns[1].mean() - 10.0]))
    assert penalised.argmax() == 0
    again = rank_candidates(
        model,
        model.initial(1),
        cands,
        horizon=3,
        samples=256,
        gamma=1.0,
        followup="repeat",
        score="lower_quantile",
    )
    assert again.best == 0 and again.order.tolist() == [0, 1]


def test_values_bootstrap_the_return():
    # From position 5, one step right reaches the valuable end: 0 + g * V = 4.5 beats jumping (0.9).
    model = Chain(values=True)
    first = model.action_spec.one_hot(torch.tensor([LEFT, STAY, RIGHT, JUMP]))
    ranking = rank_candidates(model, model.state([5]), first, horizon=1, gamma=G)
    torch.testing.assert_close(ranking.scores, torch.tensor([0.0, 0.0, G * 5.0, 0.9]))
    result = make_planner("cem", model, horizon=1).plan(model.state([5]))
    assert result.action.argmax(-1).tolist() == [RIGHT]


# ----------------------------------------------------------------------------------------------
# Risk-aware planning, bounds, batching, reproducibility.


def test_planners_avoid_high_disagreement_when_penalised():
    model = RiskyBandit(noise=0.0, slope=20.0)
    state = model.initial(2)
    for kind in ["cem", "mppi"]:
        greedy = make_planner(kind, model, horizon=3).plan(state)
        careful = make_planner(kind, model, horizon=3, score="disagreement_penalized").plan(state)
        assert (greedy.action > 0.9).all(), (kind, greedy.action)
        # the penalised optimum is 0.5 (reward slope 1 below it, penalty slope 20/3 above it)
        assert ((careful.action > 0.25) & (careful.action < 0.6)).all(), (kind, careful.action)
        assert careful.info["plan/disagreement"] < greedy.info["plan/disagreement"]


def test_lower_quantile_planning_with_particles_avoids_the_noisy_region():
    # Above 0.5 the reward is a + N(0, 2^2): the mean prefers a = 1, the 10% quantile prefers a <= 0.5.
    # On a noisy model the refit mean is the robust output (the best sample is a lucky one).
    model = RiskyBandit(noise=2.0, slope=0.0)
    kw = {"horizon": 3, "samples": 64, "elites": 8, "iterations": 6, "particles": 16, "gamma": 1.0}
    kw.update(generator=0, output="mean")
    neutral = CEM(model, **kw).plan(model.initial(1))
    averse = CEM(model, score=Scorer("lower_quantile", quantile=0.1), **kw).plan(model.initial(1))
    assert neutral.actions.mean() > 0.7, neutral.actions
    assert 0.0 < averse.actions.min() and averse.actions.max() < 0.6, averse.actions
    assert averse.info["plan/return_std"] > 0


@pytest.mark.parametrize("kind", PLANNERS)
def test_actions_stay_within_asymmetric_bounds(kind):
    model = PointMass(dim=2, target=10.0, low=-0.5, high=2.0)  # the target is out of reach: push at high
    result = make_planner(kind, model, horizon=3).plan({"x": torch.zeros(3, 2)})
    assert model.action_min >= -0.5 and model.action_max <= 2.0  # every imagined candidate
    assert result.actions.min() >= -0.5 and result.actions.max() <= 2.0
    if kind != "shooting":  # clipped samples pile up at the bound, so the refit mean reaches it
        torch.testing.assert_close(result.action, torch.full((3, 2), 2.0), atol=0.2, rtol=0)
    for value in result.carry.values():
        assert value.shape == (3, 3, 2)
    if kind != "shooting":
        assert (result.carry["mean"] >= -0.5).all() and (result.carry["mean"] <= 2.0).all()


@pytest.mark.parametrize("kind", ["cem", "mppi"])
def test_one_imagine_call_per_iteration_and_no_grad(kind):
    seen = []

    class Spy(PointMass):
        def imagine(self, state, actions, horizon):
            seen.append((torch.is_grad_enabled(), actions.shape))
            return super().imagine(state, actions, horizon)

    model = Spy()
    make_planner(kind, model, iterations=3, particles=2).plan({"x": torch.zeros(3, 1)})
    assert seen == [(False, torch.Size([3, 3 * 64 * 2, 1]))] * 3


@pytest.mark.parametrize("kind", PLANNERS)
def test_seeded_planners_are_reproducible(kind):
    model = PointMass(dim=2)
    a = make_planner(kind, model, horizon=3, samples=32).plan({"x": torch.zeros(2, 2)})
    b = make_planner(kind, model, horizon=3, samples=32).plan({"x": torch.zeros(2, 2)})
    torch.testing.assert_close(a.actions, b.actions)
    other = make_planner(kind, model, horizon=3, samples=32)
    other._generator = 1  # a different seed gives another plan
    assert not torch.equal(a.actions, other.plan({"x": torch.zeros(2, 2)}).actions)


def test_tile_state_layout_is_batch_sample_particle():
    tiled = tile_state({"x": torch.tensor([[0.0], [1.0]]), "text": ["a", "b"]}, samples=3, particles=2)
    assert tiled["x"].view(2, 3, 2).eq(torch.tensor([0.0, 1.0]).view(2, 1, 1)).all()
    assert tiled["text"] == ["a"] * 6 + ["b"] * 6


# ----------------------------------------------------------------------------------------------
# Scorers and argument checks.


def test_scorers_golden_values():
    returns = torch.tensor([[0.0, 1.0, 2.0, 3.0, 4.0]])
    dis = torch.tensor([[1.0, 1.0, 1.0, 3.0, 4.0]])
    torch.testing.assert_close(Scorer("mean")(returns), torch.tensor([2.0]))
    torch.testing.assert_close(Scorer("lower_quantile", quantile=0.25)(returns), torch.tensor([1.0]))
    torch.testing.assert_close(Scorer("lower_quantile", quantile=0.1)(returns), torch.tensor([0.4]))
    torch.testing.assert_close(Scorer("disagreement_penalized", kappa=0.5)(returns, dis), torch.tensor([1.0]))
    torch.testing.assert_close(Scorer("lower_quantile")(returns[:, :1]), torch.tensor([0.0]))  # one particle
    assert as_scorer("mean") == Scorer()


def test_bad_arguments_raise_clear_errors():
    pm, chain = PointMass(), Chain()
    with pytest.raises(ValueError, match="score mode must be one of"):
        Scorer("median")
    with pytest.raises(ValueError, match="quantile must lie in"):
        Scorer("lower_quantile", quantile=1.5)
    with pytest.raises(ValueError, match="kappa"):
        Scorer("disagreement_penalized", kappa=-1.0)
    with pytest.raises(TypeError, match="score must be one of"):
        as_scorer(3)
    with pytest.raises(ValueError, match="horizon must be an integer >= 1"):
        CEM(pm, horizon=0)
    with pytest.raises(ValueError, match="samples must be an integer >= 1"):
        RandomShooting(pm, horizon=3, samples=2.5)
    with pytest.raises(ValueError, match="elites must be <= samples"):
        CEM(pm, horizon=3, samples=8, elites=16)
    with pytest.raises(ValueError, match="gamma must be a finite number in"):
        MPPI(pm, horizon=3, gamma=1.5)
    with pytest.raises(ValueError, match="temperature"):
        MPPI(pm, horizon=3, temperature=0.0)
    with pytest.raises(ValueError, match="momentum must be < 1"):
        CEM(pm, horizon=3, momentum=1.0)
    with pytest.raises(ValueError, match="output must be"):
        CEM(pm, horizon=3, output="last")
    with pytest.raises(ValueError, match="min_std"):
        CEM(pm, horizon=3, min_std=0.0)
    with pytest.raises(TypeError, match="generator must be"):
        CEM(pm, horizon=3, generator="seed")
    with pytest.raises(TypeError, match="WorldModel protocol"):
        CEM(object(), horizon=3)
    with pytest.raises(ValueError, match=r"carry\['mean'\] must be a tensor of shape"):
        CEM(pm, horizon=3).plan({"x": torch.zeros(2, 1)}, carry={"mean": torch.zeros(3, 1, 1)})
    with pytest.raises(ValueError, match="needs a model that reports"):
        CEM(pm, horizon=3, score="disagreement_penalized").plan({"x": torch.zeros(1, 1)})

    first = chain.action_spec.one_hot(torch.tensor([0, 1]))
    with pytest.raises(ValueError, match="ONE start state"):
        rank_candidates(chain, chain.state([1, 2]), first, horizon=3)
    with pytest.raises(ValueError, match="horizon is required"):
        rank_candidates(chain, chain.state([1]), first)
    with pytest.raises(ValueError, match="does not match"):
        rank_candidates(chain, chain.state([1]), first.unsqueeze(1).expand(2, 3, 4), horizon=4)
    with pytest.raises(ValueError, match="one-hot rows"):
        rank_candidates(chain, chain.state([1]), first * 0.5, horizon=3)
    with pytest.raises(ValueError, match="within the action bounds"):
        rank_candidates(pm, pm.initial(1), torch.tensor([[2.0]]), horizon=3)
    with pytest.raises(ValueError, match="candidates must be"):
        rank_candidates(chain, chain.state([1]), torch.zeros(2, 3), horizon=3)
    with pytest.raises(ValueError, match="followup must be"):
        rank_candidates(chain, chain.state([1]), first, horizon=3, followup="greedy")
    with pytest.raises(ValueError, match="follow-up policy must return"):
        rank_candidates(chain, chain.state([1]), first, horizon=3, followup=lambda s: torch.zeros(1, 4))


def test_one_ranking_path_ranks_text_candidates_sync_and_async():
    import asyncio

    from graph_fakes import ScriptedTextWorldModel

    from agentwm.planning import arank, rank

    wm = ScriptedTextWorldModel({"open the door": 1.0, "wait": 0.1, "shout": -1.0})
    state = wm.observe("a closed door")
    cands = ["wait", "shout", "open the door"]
    ranking = rank(wm, state, cands, horizon=2, samples=3, gamma=0.5)
    torch.testing.assert_close(ranking.scores, torch.tensor([0.15, -1.5, 1.5]))
    assert ranking.returns.shape == (3, 3) and ranking.order.tolist() == [2, 0, 1] and ranking.best == 2
    assert ranking.rollout.rewards.shape == (2, 9)  # all K x S imagined in one call
    assert wm.calls == 1
    again = asyncio.run(arank(wm, state, cands, horizon=2, samples=3, gamma=0.5))
    torch.testing.assert_close(again.scores, ranking.scores)
    with pytest.raises(ValueError, match="horizon is required"):
        rank(wm, state, cands)
    with pytest.raises(TypeError, match=r"candidates\[0\] must be a str"):
        rank(wm, state, [1], horizon=1)  # type: ignore[list-item]


def test_rankings_refuse_nan_scores():
    from agentwm.planning import score_samples

    class NaNChain(Chain):
        def step(self, state, action):
            state, reward, continues, value, extras = super().step(state, action)
            reward = torch.where(action.argmax(-1) == LEFT, torch.full_like(reward, float("nan")), reward)
            return state, reward, continues, value, extras

    model = NaNChain()
    first = model.action_spec.one_hot(torch.tensor([STAY, LEFT]))
    with pytest.raises(ValueError, match=r"candidate\(s\) \[1\] is NaN or infinite"):
        rank_candidates(model, model.state([3]), first, horizon=3, followup="repeat")
    with pytest.raises(ValueError, match="NaN"):
        score_samples(torch.tensor([[1.0], [float("nan")]]), None)
    scores, order = score_samples(torch.tensor([[1.0, 3.0], [2.0, 2.0]]), None)
    assert scores.tolist() == [2.0, 2.0] and order.tolist() == [0, 1]  # ties to the earlier candidate
