"""Episodic transition memory: the map of one episode, exact imagined revisits, planning back to a remembered room."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytest
import torch
from torch import Tensor

from agentwm.envs.text import TextStep
from agentwm.envs.textworld import carried, is_move, rebase_menu, room_name
from agentwm.worldmodels.base import State, repeat_state
from agentwm.worldmodels.text_latent import TextLatentConfig, TextLatentModel
from agentwm.worldmodels.text_memory import TransitionMemory
from agentwm.worldmodels.text_memory_model import MemoryWorldModel
from tests.hash_embed import HashEmbed

HALL = "-= Hall =- A key lies here. Exits east and north."
DEN = "-= Den =- A bare den. Exits west and east."
ATTIC = "-= Attic =- Dusty. An exit west and one north."
MENUS = {
    HALL: ["go east", "go north", "take key"],
    DEN: ["go west", "go east", "look"],
    ATTIC: ["go north", "go west", "look"],
}




def _tiny_model() -> TextLatentModel:
    torch.manual_seed(0)
    return TextLatentModel(TextLatentConfig(emb_dim=16, max_goal=4, hidden=8, proj=8, units=8, members=2)).eval()


def _walk(world: MemoryWorldModel, moves: Sequence[str]) -> State:
    """Start in the Hall and play ``moves`` on the map Hall -east- Den -east- Attic, folding each step into a carry."""
    east = {HALL: DEN, DEN: ATTIC}
    west = {DEN: HALL, ATTIC: DEN}
    state = world.observe({"observation": HALL, "admissible": MENUS[HALL]}, world.initial(["Take the key."]))
    here = HALL
    for move in moves:
        here = (east if move == "go east" else west)[here]
        state = world.observe({"observation": here, "admissible": MENUS[here]}, state, move)
    return state


def test_room_helpers_read_textworld_text() -> None:
    assert room_name(HALL) == "Hall" and room_name("You open the box.") is None
    assert is_move("go west") and not is_move("take key")
    now = ["go east", "drop teacup", "drop key"]
    then = ["go north", "drop key", "put key on plate", "take nest from plate", "insert key into chest", "take bun from box", "close box"]
    assert carried(now) == {"teacup", "key"}
    out = rebase_menu(then, now)
    assert "put teacup on plate" in out and "insert teacup into chest" in out and "insert teacup into box" in out
    assert "put key on plate" in out and "take nest from plate" in out
    # an object no longer carried loses its commands
    assert not any("key" in c for c in rebase_menu(then, ["go east"]))


def test_memory_keeps_the_map_and_exact_outcomes() -> None:
    memory = TransitionMemory(room_name, is_move)
    memory.start(HALL, MENUS[HALL])
    memory.record(HALL, "take key", "You take the key.", ["go east", "drop key"])
    memory.record("You take the key.", "go east", DEN, MENUS[DEN])
    memory.record(DEN, "go east", ATTIC, MENUS[ATTIC])
    assert memory.room == "Attic"
    assert memory.edges == {("Hall", "go east"): "Den", ("Den", "go east"): "Attic"}
    assert memory.menu("Hall") == ("go east", "drop key")  # the menu after the last step there
    assert memory.next("Hall", HALL, "take key") == ("You take the key.", "Hall", 0.0)
    assert memory.next("Den", None, "go west") is None  # never walked west: not known (no guessing of inverse moves)
    assert memory.next("Hall", None, "go east") == (DEN, "Den", 0.0)
    assert memory.routes("Hall", 3) == {"Den": ["go east"], "Attic": ["go east", "go east"]}
    assert memory.routes("Hall", 1) == {"Den": ["go east"]}
    assert memory.unexplored("Den") == ["go west"]
    memory.visit(DEN, torch.tensor([0.2, 0.0]))
    assert memory.revisited(DEN.replace("bare", "dusty"), torch.tensor([0.21, 0.0]), 0.02)  # same room, no progress
    assert not memory.revisited(DEN, torch.tensor([0.5, 0.0]), 0.02)  # progress since
    memory.start(DEN, MENUS[DEN])
    assert memory.edges == {} and memory.visits == {} and memory.room == "Den"


def test_imagined_revisit_is_the_real_remembered_room_folded_in() -> None:
    model, embed = _tiny_model(), HashEmbed()
    world = MemoryWorldModel(model, embed, room_name, is_move)
    state = _walk(world, ["go east", "go east", "go west", "go west"])  # back in the Hall
    rows = [["go east", "go north", "take key"], ["go east", "look", "look"]]
    rollout = world.imagine(repeat_state(state, 3), rows, 2)
    known, revisit = rollout.extras["known"], rollout.extras["revisit"]
    assert known[:, 0].tolist() == [True, True]  # go east -> Den, go east -> Attic: both remembered
    assert known[:, 1].tolist() == [False, False] and known[:, 2].tolist() == [False, False]  # never tried: predicted
    # the remembered step is the real observation, folded in exactly as observe() folds it
    assert torch.allclose(rollout.extras["obs"][0, 0], embed.embed([DEN])[0], atol=1e-6)
    latent = {k: state[k] for k in ("h", "goal", "goal_mask", "cover")}
    real = model.observe(embed.embed([DEN]), latent, embed.embed(["go east"]))
    imagined = model.step(latent, embed.embed(["go east"]), embed.embed([DEN]), torch.tensor([True]))[0]
    assert torch.allclose(imagined["h"], real["h"], atol=1e-6)
    guessed = model.step(latent, embed.embed(["go east"]))[0]
    assert not torch.allclose(guessed["h"], real["h"], atol=1e-3)  # without the memory: the model's guess
    # Den and Attic were visited with the same coverage (no progress since): exact revisits; guesses never are
    assert revisit[:, 0].tolist() == [True, True] and not bool(revisit[:, 1:].any())
    with pytest.raises(ValueError, match="rows"):
        world.imagine(repeat_state(state, 3), rows, 3)


def test_plans_walk_to_remembered_rooms_and_use_their_menus() -> None:
    world = MemoryWorldModel(_tiny_model(), HashEmbed(), room_name, is_move)
    state = _walk(world, ["go east", "go west"])
    assert world.plans(state, 1) == [["go east"], ["go north"], ["take key"]]  # depth 1: the menu
    deep = world.plans(_walk(world, ["go east", "go east", "go west", "go west"]), 3)
    assert ["go east", "go east"] in deep  # a walk to the Attic
    assert ["go east", "go east", "go north"] in deep  # then an exit not tried yet
    assert ["go east", "look"] in deep and ["go east", "go west"] not in deep  # known moves are walks of their own
    assert all(len(p) <= 3 for p in deep)
    assert ["take key", "go east", "go east"] not in deep
    walked = _walk(world, ["go east", "go east", "go west", "go west"])
    local = world.plans(walked, 3, local_walks=True)
    assert ["take key", "go east", "go east"] in local and ["take key", "go east"] in local  # a command here, then a walk
    assert not any(p[0] == "go north" and len(p) > 1 for p in local)  # an unexplored exit leads nowhere known


class _WantsHall(TextLatentModel):
    """A stand-in for a trained model: progress value 1 where the observation is the Hall, 0.1 elsewhere."""

    hall: Tensor

    def step(self, state: State, action: Tensor, known_obs: Tensor | None = None, known: Tensor | None = None) -> Any:
        new, r, c, _ = super().step(state, action, known_obs, known)
        at_hall = (new["pred_obs"] @ self.hall) > 0.99  # [B, E]
        return new, torch.zeros_like(r), torch.ones_like(c), torch.where(at_hall, 1.0, 0.1)


def _play(agent: Any, moves: Sequence[str]) -> TextStep:
    """Walk the agent from the Hall through ``moves`` (forced, whatever it would choose); the last room's step."""
    goal, here = "Take the key.", HALL
    east, west = {HALL: DEN, DEN: ATTIC}, {DEN: HALL, ATTIC: DEN}
    agent.reset(TextStep(HALL, goal, tuple(MENUS[HALL])))
    for move in moves:
        agent.scores(TextStep(here, goal, tuple(MENUS[here])))
        agent.last = move
        here = (east if move == "go east" else west)[here]
    return TextStep(here, goal, tuple(MENUS[here]))


def test_planner_with_memory_walks_back_to_the_remembered_room() -> None:
    from agentwm.agents.textworld.memory_planner import MemoryPlanner

    embed = HashEmbed()
    model = _WantsHall(TextLatentConfig(emb_dim=16, max_goal=4, hidden=8, proj=8, units=8, members=2)).eval()
    model.hall = embed.embed([HALL])[0]
    walk = ["go east", "go west", "go east", "go east", "go west", "go east"]  # every edge seen; now in the Attic
    deep = MemoryPlanner(model, embed, depth=3, loop_penalty=0.0)
    menu, score = deep.scores(_play(deep, walk))
    assert menu == ["go north", "go west", "look"]
    assert menu[int(score.argmax())] == "go west"  # back towards the Hall, two rooms away
    assert float(score[1]) == pytest.approx(0.85**2, abs=1e-4)  # two moves, then the Hall's value 1
    assert max(deep.last_plans, key=lambda x: x[1])[0] == ["go west", "go west"]
    shallow = MemoryPlanner(model, embed, depth=1, loop_penalty=0.0)
    _, flat = shallow.scores(_play(shallow, walk))
    assert torch.allclose(flat, flat[0].expand_as(flat))  # one step ahead, nothing tells the moves apart
    unmapped = MemoryPlanner(model, embed, depth=3, loop_penalty=0.0)
    _, blind = unmapped.scores(_play(unmapped, ["go east", "go east"]))  # the way back never walked: not on the map
    assert torch.allclose(blind, blind[0].expand_as(blind))
    with pytest.raises(ValueError, match="depth"):
        MemoryPlanner(model, embed, depth=0)
    with pytest.raises(ValueError, match="revisit_discount"):
        MemoryPlanner(model, embed, revisit_discount=2.0)


def test_a_command_seen_not_to_win_is_not_imagined_to_win() -> None:
    model, embed = _tiny_model(), HashEmbed()
    assert model.reward.out is not None
    with torch.no_grad():  # a reward head sure that every command wins
        model.reward.out.weight.zero_()
        model.reward.out.bias.fill_(10.0)
    plain = MemoryWorldModel(model, embed, room_name, is_move)
    remembering = MemoryWorldModel(model, embed, room_name, is_move, rewards=True)
    for world in (plain, remembering):
        state = world.observe({"observation": HALL, "admissible": MENUS[HALL]}, world.initial(["Take the key."]))
        state = world.observe({"observation": "You take the key.", "admissible": ["go east", "drop key"], "reward": 0.0}, state, "take key")
        state = world.observe({"observation": "You drop the key.", "admissible": MENUS[HALL], "reward": 0.0}, state, "drop key")
        # from this new text "take key" is not an exact memory, but it was tried in this room and gave 0
        rollout = world.imagine(repeat_state(state, 2), [["take key", "go north"]], 1)
        r, c = rollout.rewards[0], rollout.continues[0]
        assert float(r[1]) > 0.99  # never tried: the reward head's guess
        if world is remembering:
            assert float(r[0]) == 0.0 and float(c[0]) == 1.0
            assert state["memory"].reward("Hall", "take key") == 0.0 and state["memory"].reward("Den", "take key") is None
        else:
            assert float(r[0]) > 0.99


class _WordsEmbed(HashEmbed):
    """Hash embeddings of the lower-cased text without its final period, so "Take key." reads as "take key"."""

    def embed(self, texts: Sequence[str]) -> Tensor:
        return super().embed([t.lower().strip().rstrip(".") for t in texts])


def test_memory_explorer_walks_back_with_what_it_carries() -> None:
    from agentwm.agents.textworld.memory_explorer import MemoryExplorerAgent

    goal = "Take key. Put key on table."
    den, hall = "-= Den =- A table with an apple.", "-= Hall =- A key lies here."
    menus = {
        (den, False): ["go west", "take apple from table"], (hall, False): ["go east", "take key"],
        (hall, True): ["go east", "drop key"], (den, True): ["go west", "take apple from table", "drop key", "put key on table"],
    }
    moves = {(den, "go west"): hall, (hall, "go east"): den}
    agent = MemoryExplorerAgent(_WordsEmbed())
    here, holding, played = den, False, []
    agent.reset(TextStep(here, goal, tuple(menus[(here, holding)])))
    for _ in range(5):
        cmd = agent.act(TextStep(here, goal, tuple(menus[(here, holding)])))
        played.append(cmd)
        if cmd == "put key on table":
            break
        holding = holding or cmd == "take key"
        here = moves.get((here, cmd), here)
    # explores west, takes the key, then walks back east because the Den's remembered table now takes the key
    assert played == ["go west", "take key", "go east", "put key on table"]


def test_factory_builds_the_memory_agents() -> None:
    from agentwm.agents.textworld.factory import make_agent, shipped_model
    from agentwm.agents.textworld.memory_explorer import MemoryExplorerAgent
    from agentwm.agents.textworld.memory_planner import MemoryPlanner

    agent = make_agent("learned_memory", horizon=3)
    assert isinstance(agent, MemoryPlanner) and agent.depth == 3 and agent.world.rewards
    assert make_agent("learned_memory", rebase=False).world.rebase is None  # type: ignore[attr-defined]
    assert isinstance(make_agent("memory_explorer"), MemoryExplorerAgent)
    with pytest.raises(ValueError, match="direct scorer"):
        make_agent("learned_memory", model=shipped_model("direct"))


def test_memory_planner_with_a_direct_prior_takes_the_geometric_mean() -> None:
    from agentwm.agents.textworld.direct import DirectScorer
    from agentwm.agents.textworld.memory_planner import MemoryPlanner

    embed, config = HashEmbed(), TextLatentConfig(emb_dim=16, max_goal=4, hidden=8, proj=8, units=8, members=2)
    torch.manual_seed(1)
    model, prior = _tiny_model(), DirectScorer(config).eval()
    alone = MemoryPlanner(model, embed, loop_penalty=0.0)
    both = MemoryPlanner(model, embed, loop_penalty=0.0, prior=prior)
    step = TextStep(HALL, "Take the key.", tuple(MENUS[HALL]))
    for agent in (alone, both):
        agent.reset(step)
    menu, a = alone.scores(step)
    _, b = both.scores(step)
    assert both.prior is not None and both.prior.state is not None
    q = prior.q_values(both.prior.state, embed.embed(menu)[None])[0]
    assert torch.allclose(b, (a.clamp(min=1e-4) * q.clamp(min=1e-4)).sqrt(), atol=1e-6)


def test_play_passes_the_prior_to_the_memory_planner(monkeypatch: pytest.MonkeyPatch) -> None:
    """`agentwm textworld play --agent learned_memory --prior DIR` builds the planner with that prior."""
    import argparse

    import agentwm.agents.textworld.evaluate as evaluate_mod
    import agentwm.agents.textworld.factory as factory_mod
    from agentwm.agents.textworld.cli import _play

    seen: dict[str, Any] = {}

    def fake_make_agent(name: str, **kwargs: Any) -> str:
        seen.update(name=name, **kwargs)
        return "agent"

    monkeypatch.setattr(factory_mod, "make_agent", fake_make_agent)
    monkeypatch.setattr(evaluate_mod, "evaluate", lambda games, agent, max_steps: {"games": len(games)})
    args = argparse.Namespace(agent="learned_memory", model=None, horizon=None, prior="d", hint_weight=None, games=["g"], max_steps=5)
    assert _play(args) == {"games": 1}
    assert seen["name"] == "learned_memory" and seen["prior"] == "d" and seen["objective_weight"] == 0.3
    seen.clear()
    _play(argparse.Namespace(**{**vars(args), "agent": "direct", "prior": "auto"}))  # no prior, no hint for the ablation
    assert seen["name"] == "direct" and "prior" not in seen and "objective_weight" not in seen
    seen.clear()
    _play(argparse.Namespace(**{**vars(args), "prior": "auto", "hint_weight": 0.0}))  # the defaults: shipped direct prior
    assert seen["prior"].endswith("direct") and "objective_weight" not in seen
    seen.clear()
    _play(argparse.Namespace(**{**vars(args), "prior": "auto", "model": "m"}))  # another world model: no shipped prior
    assert "prior" not in seen
    with pytest.raises(ValueError, match="hint-weight applies"):
        _play(argparse.Namespace(**{**vars(args), "agent": "mcts", "prior": "auto", "hint_weight": 0.3}))
    with pytest.raises(ValueError, match="prior applies"):
        _play(argparse.Namespace(**{**vars(args), "agent": "direct"}))


def test_a_command_seen_to_change_nothing_is_worth_gamma_times_the_best_other() -> None:
    from agentwm.agents.textworld.memory_planner import MemoryPlanner

    memory = TransitionMemory(room_name, is_move)
    memory.start(HALL, MENUS[HALL])
    memory.record(HALL, "look", HALL, MENUS[HALL])  # the same room, the same menu, no reward: a no-op
    memory.record(HALL, "take key", "You take the key.", ["go east", "drop key"])  # the menu changed: not one
    assert memory.noop("Hall", "look", MENUS[HALL]) and not memory.noop("Hall", "take key", MENUS[HALL])
    memory.record("You take the key.", "examine key", "A key.", ["go east", "drop key"])
    assert memory.noop("Hall", "examine key", ["go east", "drop key", "open door"])  # a door it does not name changed
    assert not memory.noop("Hall", "examine key", ["go east", "put key on table"])  # the key's commands changed
    assert not memory.noop(None, "look", MENUS[HALL])
    memory.record("A key.", "eat key", "Crunch.", ["go east", "drop key"], reward=1.0)
    assert not memory.noop("Hall", "eat key", ["go east", "drop key"])  # it paid: something changed

    embed, model = HashEmbed(), _tiny_model()
    step = TextStep(HALL, "Take the key.", tuple(MENUS[HALL]))
    with_rule, without = MemoryPlanner(model, embed, loop_penalty=0.0), MemoryPlanner(model, embed, loop_penalty=0.0, noops=False)
    for agent in (with_rule, without):
        agent.reset(step)
        agent.act(step)
        agent.last = "take key"  # pretend the last real command changed nothing: the Hall again, the same menu
    _, plain = without.scores(step)
    menu, score = with_rule.scores(step)
    noop = menu.index("take key")
    assert with_rule.state is not None and with_rule.world.noops(with_rule.state, menu).tolist() == [False, False, True]
    others = torch.cat([plain[:noop], plain[noop + 1:]])
    assert float(score[noop]) == pytest.approx(with_rule.gamma * float(others.max()), abs=1e-6)
    assert torch.allclose(torch.cat([score[:noop], score[noop + 1:]]), others)


def test_objective_hint_follows_the_next_unfinished_sentence() -> None:
    from agentwm.agents.textworld.memory_planner import MemoryPlanner
    from agentwm.agents.textworld.objective_hint import ObjectiveHint

    hint = ObjectiveHint(_WordsEmbed())
    hint.reset("Take key. Go east.")
    menu = ["go east", "take key", "look"]
    sim = hint.similarity(menu)
    assert float(sim[1]) == pytest.approx(1.0, abs=1e-5) and float(sim[0]) < 0.45
    hint.played("look")  # not the next step: nothing is marked done
    assert hint.done == 0
    hint.similarity(menu)
    hint.played("take key")
    assert hint.done == 1 and float(hint.similarity(menu)[0]) == pytest.approx(1.0, abs=1e-5)
    hint.played("go east")
    assert hint.done == 2 and not hint.similarity(menu).any()  # all done: no hint

    embed, model = _WordsEmbed(), _tiny_model()
    step = TextStep(HALL, "Take key.", tuple(MENUS[HALL]))
    plain, hinted = MemoryPlanner(model, embed, loop_penalty=0.0), MemoryPlanner(model, embed, loop_penalty=0.0, objective_weight=2.0)
    for agent in (plain, hinted):
        agent.reset(step)
    menu, a = plain.scores(step)
    _, b = hinted.scores(step)
    sim = (embed.embed(menu) @ embed.embed(["take key"]).T)[:, 0].clamp(min=0.0)  # "Take key." is the next sentence
    assert float(sim[2]) == pytest.approx(1.0, abs=1e-5)
    assert torch.allclose(b, a * torch.exp(2.0 * sim), atol=1e-5)
