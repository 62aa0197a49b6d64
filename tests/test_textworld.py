"""TextWorld pipeline: env adapter, menu matching, dataset, world-model training, planning on tiny games."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from agentwm.envs.text import TextEnv, UnknownActionError, match_action, split_objective

MENU = ["take passkey from bar", "take key", "go east", "open box", "put key on bar", "insert key into box"]


def test_match_action_exact_and_tolerant() -> None:
    assert match_action("Go  East", MENU) == "go east"
    assert match_action("take the passkey", MENU) == "take passkey from bar"
    assert match_action("open the box", MENU) == "open box"
    with pytest.raises(UnknownActionError, match="not on the menu"):
        match_action("dance", MENU)
    with pytest.raises(UnknownActionError, match="not on the menu"):
        match_action("take the passkey", MENU, tolerant=False)
    with pytest.raises(UnknownActionError, match="ambiguous"):
        match_action("take", ["take key from bar", "take box from bar"])


def test_split_objective() -> None:
    assert split_objective("Hi! First, go east. Then open the box.") == ["Hi!", "First, go east.", "Then open the box."]
    assert split_objective("a. b. c.", max_steps=2) == ["a.", "b."]


textworld = pytest.importorskip("textworld", reason="TextWorld is not installed (pip install 'agentwm[text]')")


@pytest.fixture(scope="module")
def games(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    from agentwm.envs.textworld import make_game

    folder = tmp_path_factory.mktemp("games")
    return [make_game("tiny", seed, folder) for seed in (0, 1)]


def test_env_plays_walkthrough_to_a_win(games: list[Path]) -> None:
    from agentwm.envs.textworld import TextWorldEnv

    env = TextWorldEnv(games[0], labels=True)
    assert isinstance(env, TextEnv)
    first = env.reset()
    assert first.objective and first.admissible and first.observation and not first.done
    policy = list(first.info["policy"])
    assert first.info["remaining"] == len(policy) >= 1
    step = first
    for command in policy:
        assert not step.done
        step = env.step(command)
    assert step.won and step.done and step.reward == 1.0 and step.info["remaining"] == 0
    with pytest.raises(RuntimeError, match="reset"):
        env.step(policy[0])
    env.close()


def test_walkthrough_check_finds_games_the_parser_cannot_finish(games: list[Path], tmp_path: Path) -> None:
    from agentwm.envs.textworld import make_game, walkthrough_wins

    assert walkthrough_wins(games[0]) and not walkthrough_wins(games[0], max_steps=1)
    # test seed 3531 at quest 8: "take Henderson's latchkey from box" is always answered
    # "Which do you mean, the Henderson's box or the box?", so even the walkthrough loops
    assert not walkthrough_wins(make_game("quest8", 3531, tmp_path), max_steps=20)


def test_env_rejects_commands_off_the_menu(games: list[Path]) -> None:
    from agentwm.envs.textworld import TextWorldEnv

    env = TextWorldEnv(games[0], max_steps=3)
    env.reset()
    with pytest.raises(UnknownActionError, match="not on the menu"):
        env.step("fly to the moon")
    step = env.step("LOOK")  # case and spacing are forgiven
    assert not step.done
    env.step("look")
    assert env.step("look").done  # max_steps ends the episode, not won
    env.close()


def test_env_bad_files(tmp_path: Path) -> None:
    from agentwm.envs.textworld import TextWorldEnv, make_game

    with pytest.raises(FileNotFoundError, match="no TextWorld game"):
        TextWorldEnv(tmp_path / "missing.z8")
    with pytest.raises(ValueError, match="not a TextWorld game file"):
        TextWorldEnv(tmp_path / "game.txt")
    with pytest.raises(ValueError, match="0-3999"):
        make_game("quest5", 4000, tmp_path)
    with pytest.raises(ValueError, match="unknown setting"):
        make_game("quest99", 1, tmp_path)


@pytest.fixture(scope="module")
def dataset(games: list[Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    from agentwm.agents.textworld.collect import CollectConfig, collect

    out = tmp_path_factory.mktemp("data")
    return collect(CollectConfig(games=[str(g) for g in games], out=str(out), perturbed=2, random_episodes=1, random_steps=6), progress=False)


def test_dataset_labels(dataset: Path) -> None:
    from agentwm.agents.textworld.data import load_episodes

    lines = [json.loads(x) for x in (dataset / "episodes.jsonl").read_text().splitlines()]
    walk = [e for e in lines if e["kind"] == "walkthrough"]
    assert len(walk) == 2 and len(lines) == 8
    for ep in walk:  # a walkthrough counts down to a win
        remaining = [s["remaining"] for s in ep["steps"]]
        assert remaining == list(range(remaining[0], -1, -1)) and ep["steps"][-1]["won"]
    data = load_episodes(dataset)
    batch = data.batch(list(range(len(data))), value_gamma=0.5)
    assert batch["obs"].shape[-1] == 384 and batch["goal"].shape[0] == len(data)
    won = batch["cont"] == 0
    assert bool((batch["value"][won] == 0).all())
    one_left = (data.remaining[:, : batch["mask"].shape[1]] == 1) & (batch["cont"] == 1)
    assert bool(torch.allclose(batch["value"][one_left], torch.ones(int(one_left.sum()))))


def test_relabel_takes_more_of_each_menu(dataset: Path, tmp_path: Path) -> None:
    from agentwm.agents.textworld.collect import relabel
    from agentwm.agents.textworld.data import load_episodes

    out = relabel(dataset, tmp_path / "more", alternatives=5, progress=False)
    texts = json.loads((out / "texts.json").read_text())
    old = json.loads((dataset / "texts.json").read_text())
    assert texts[: len(old)] == old  # ids of the source stay valid
    for ep in (json.loads(x) for x in (out / "episodes.jsonl").read_text().splitlines()):
        for s in ep["steps"]:
            if "opt" in s:
                alts = [texts[a] for a in s["alts"]]
                others = [m for m in s["menu"] if s["opt"] < 0 or m != texts[s["opt"]]]
                assert set(alts) <= set(others) and len(alts) == min(5, len(others)) == len(set(alts))
    data = load_episodes(out)
    assert data.emb.shape[0] == len(texts) + 1 and data.alts is not None and data.alts.shape[2] == 5
    with pytest.raises(FileNotFoundError, match="not a TextWorld dataset"):
        relabel(tmp_path / "none", tmp_path / "x")


def test_rank_loss_prefers_the_winning_command_first() -> None:
    from agentwm.worldmodels.text_latent import rank_loss

    mask = torch.tensor([[1.0, 1.0, 0.0]])
    good = rank_loss(torch.tensor([[0.5, 0.4, 0.3, 0.9]]), mask)  # the masked 0.9 is ignored
    bad = rank_loss(torch.tensor([[0.4, 0.5, 0.3, 0.9]]), mask)
    assert float(good) < 0.05 and float(bad) > 0.5
    assert float(rank_loss(torch.tensor([[0.5, 0.9, 0.9, 0.9]]), torch.zeros(1, 3))) == pytest.approx(0.0, abs=1e-6)


def test_loop_adjusted_discounts_commands_already_played() -> None:
    from agentwm.agents.textworld.agents import _LoopMemory, loop_adjusted

    memory = _LoopMemory()
    memory.add("You open the box.", "close box")
    memory.add("You close the box.", "open box")
    menu = ["open box", "close box", "take key"]
    score = torch.tensor([0.5, 0.5, 0.45])
    here = loop_adjusted(score, memory, "You close the box.", menu, penalty=0.5, repeat_discount=0.85)
    assert torch.allclose(here, torch.tensor([0.5 * 0.85 - 0.5, 0.5 * 0.85, 0.45]))
    assert menu[int(here.argmax())] == "take key"
    assert torch.equal(loop_adjusted(score, _LoopMemory(), "x", menu, 0.5, 0.85), score)


def test_best_depth_return_never_sinks_a_candidate_below_its_first_step() -> None:
    from agentwm.agents.textworld.agents import best_depth_return
    from agentwm.worldmodels.base import Rollout

    rewards = torch.tensor([[0.0, 0.0], [0.0, 1.0]])  # candidate 1 wins on its second imagined step
    continues = torch.tensor([[1.0, 1.0], [1.0, 0.0]])
    values = torch.tensor([[0.5, 0.2], [0.1, 0.0]])  # candidate 0's follow-up looks bad
    rollout = Rollout(states=[], rewards=rewards, continues=continues, actions=torch.zeros(2, 2, 1), values=values, extras={})
    best = best_depth_return(rollout, 0.9)
    assert torch.allclose(best, torch.tensor([0.9 * 0.5, 0.9]))
    assert float(rollout.returns(0.9)[0]) < float(best[0])  # the whole rollout would have sunk it


@pytest.fixture(scope="module")
def trained(dataset: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    from agentwm.agents.textworld.train import TrainConfig, train

    root = tmp_path_factory.mktemp("runs")
    out = []
    for kind in ("world_model", "direct"):
        cfg = TrainConfig(data=[str(dataset)], val_data=[str(dataset)], logdir=str(root / kind), kind=kind, epochs=60, batch_size=8)
        summary = train(cfg, progress=False)
        assert summary["best_epoch"] >= 0
        out.append(root / kind)
    return out[0], out[1]


def test_training_writes_loadable_checkpoints(trained: tuple[Path, Path]) -> None:
    from agentwm.agents.textworld.direct import DirectScorer
    from agentwm.agents.textworld.train import load_model
    from agentwm.worldmodels.text_latent import TextLatentModel

    wm, direct = (load_model(p) for p in trained)
    assert type(wm) is TextLatentModel and isinstance(direct, DirectScorer)
    rows = [json.loads(x) for x in (trained[0] / "metrics.jsonl").read_text().splitlines()]
    assert rows[-1]["loss/value"] < rows[0]["loss/value"]
    with pytest.raises(ValueError, match="TextWorld model"):
        (trained[0].parent / "bogus").mkdir()
        (trained[0].parent / "bogus" / "config.json").write_text("{}")
        load_model(trained[0].parent / "bogus")


def test_fine_tuning_starts_from_a_checkpoint(dataset: Path, trained: tuple[Path, Path], tmp_path: Path) -> None:
    from agentwm.agents.textworld.train import TrainConfig, load_model, train

    wm = load_model(trained[0])
    cfg = TrainConfig(data=[str(dataset)], val_data=[str(dataset)], logdir=str(tmp_path / "ft"), epochs=1, batch_size=8,
                      lr=1e-9, init=str(trained[0]), alternatives=2, scales={"counterfactual": 1.0, "rank": 1.0})
    train(cfg, progress=False)
    tuned = load_model(tmp_path / "ft")
    assert all(torch.allclose(a, b, atol=1e-5) for a, b in zip(wm.state_dict().values(), tuned.state_dict().values()))
    with pytest.raises(ValueError, match="other sizes or kind"):
        train(cfg.model_copy(update={"kind": "direct", "logdir": str(tmp_path / "ft2")}), progress=False)


def test_planner_wins_tiny_games_and_sees_the_end(games: list[Path], trained: tuple[Path, Path]) -> None:
    from agentwm.agents.textworld.evaluate import evaluate
    from agentwm.agents.textworld.factory import make_agent
    from agentwm.envs.textworld import TextWorldEnv

    planner = make_agent("learned", model=trained[0], horizon=4)
    result = evaluate(games, planner, max_steps=10, progress=False)
    assert result["win_rate"] == 1.0, result
    # one step before the win, the winning command scores best and the imagined game ends there
    env = TextWorldEnv(games[0], labels=True)
    step = env.reset()
    planner.reset(step)
    for command in step.info["policy"][:-1]:
        planner.tracker.observe(step)
        planner.tracker.last = command
        step = env.step(command)
    winning = step.info["policy"][-1]
    menu, scores = planner.scores(step)
    assert menu[int(scores.argmax())] == winning
    rollout = planner.last_ranking.rollout
    k = menu.index(winning)
    assert float(rollout.continues[0, k]) < 0.5  # the game ends mid-plan: later steps are discounted away
    env.close()


def test_planner_with_a_prior_combines_both_scores(games: list[Path], trained: tuple[Path, Path]) -> None:
    from agentwm.agents.textworld.evaluate import evaluate
    from agentwm.agents.textworld.factory import make_agent
    from agentwm.envs.textworld import TextWorldEnv

    planner = make_agent("learned", model=trained[0], prior=trained[1])
    alone = make_agent("learned", model=trained[0])
    env = TextWorldEnv(games[0])
    step = env.reset()
    for agent in (planner, alone):
        agent.reset(step)  # type: ignore[attr-defined]
    menu, both = planner.scores(step)  # type: ignore[attr-defined]
    _, imagined = alone.scores(step)  # type: ignore[attr-defined]
    q = planner.prior.model.q_values(planner.prior.state, planner.tracker.embedder.embed(menu)[None])[0]  # type: ignore[attr-defined]
    assert torch.allclose(both, (imagined.clamp(min=1e-4) * q.clamp(min=1e-4)).sqrt(), atol=1e-5)
    env.close()
    assert evaluate(games, planner, max_steps=10, progress=False)["win_rate"] == 1.0
    with pytest.raises(ValueError, match="prior must be trained with --kind direct"):
        make_agent("learned", model=trained[0], prior=trained[0])


def test_cli_bad_input_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from agentwm.cli import main

    assert main(["textworld", "collect", "--games", str(tmp_path / "none"), "--setting", "quest5", "--out", str(tmp_path / "d")]) == 2
    assert main(["train", "textworld", "--data", str(tmp_path), "--logdir", str(tmp_path / "run")]) == 2
    assert main(["textworld", "play", "--agent", "learned", "--model", str(tmp_path), "--games", "x.z8"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 3 and "Traceback" not in "".join(err)
    assert "no games folder" in err[0] and "not a TextWorld dataset" in err[1]


def test_learned_and_direct_agents_default_to_the_shipped_checkpoints() -> None:
    from agentwm.agents.textworld.factory import shipped_model
    from agentwm.agents.textworld.train import load_model

    for kind in ("learned", "direct"):
        folder = shipped_model(kind)
        assert folder.parent.name == "textworld-minilm-gru-dest" and load_model(folder) is not None
