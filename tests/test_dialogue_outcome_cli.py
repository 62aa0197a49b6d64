"""The outcome recipe from the user's side: `agentwm train dialogue --data`, kill and resume, bad logs,
and scoring by the outcome model's return through score_replies, the graph node and `score dialogue`."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from agentwm.agents.dialogue.outcome_train import OutcomeTrainConfig, train_outcome_model
from agentwm.cli import main
from agentwm.text.embedding_store import EmbeddingStore
from agentwm.worldmodels.dialogue_outcome import DialogueOutcomeModel
from agentwm.worldmodels.dialogue_outcome_io import load_outcome_model
from tests.text_fakes import HashEmbed

pytestmark = pytest.mark.usefixtures("one_thread")
ROOT = Path(__file__).resolve().parents[1]
KIND, RUDE = ["happy to help", "sorry, fixing it now", "sure thing"], ["no", "go away", "not my problem"]
USER = ["hi", "my order is late", "can you help", "thanks", "ok"]
CANDIDATES = ["sorry, fixing it now", "go away"]


def write_logs(path: Path, n: int = 60, seed: int = 0) -> Path:
    """Support chats whose outcome (``resolved``) is set by the agent's first reply."""
    rng = random.Random(seed)
    with open(path, "w") as fh:
        for i in range(n):
            ok = rng.random() < 0.5
            turns = [{"speaker": "user", "text": rng.choice(USER)},
                     {"speaker": "agent", "text": rng.choice(KIND if ok else RUDE)}]
            for _ in range(rng.randint(0, 2)):
                turns += [{"speaker": "user", "text": rng.choice(USER)}, {"speaker": "agent", "text": rng.choice(USER)}]
            fh.write(json.dumps({"id": f"c{i}", "role": "agent", "turns": turns, "outcomes": {"resolved": ok}}) + "\n")
    return path


@pytest.fixture()
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An embedding cache holding every text of these logs (so no encoder is ever built)."""
    root = tmp_path / "cache"
    EmbeddingStore(root, encoder=HashEmbed()).embed(sorted({*KIND, *RUDE, *USER, "deal?"}))
    monkeypatch.setenv("AGENTWM_CACHE", str(root))
    return root


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1",
            "TRANSFORMERS_OFFLINE": "1"}


def _train_argv(logs: Path, logdir: Path, cache: Path, steps: int, *extra: str) -> list[str]:
    return ["train", "dialogue", "--data", str(logs), "--outcome", "resolved", "--logdir", str(logdir),
            "--preset", "debug", "--steps", str(steps), "--batch", "8", "--bank-size", "40", "--eval-every", "1000",
            "--cache-dir", str(cache), "--quiet", *extra]  # fmt: skip


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    try:
        code = main(list(argv))
    except SystemExit as stop:
        code = int(stop.code or 0)
    out = capsys.readouterr()
    return code, out.out, out.err


# ----------------------------------------------------------------------------------------------
# agentwm train dialogue --data ...


def test_data_selects_the_outcome_recipe_and_old_usage_stays(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = _run(capsys, "train", "dialogue", "--data", "logs.jsonl", "--outcome", "csat", "--logdir",
                          str(tmp_path / "r"), "--steps", "7", "--set", "lr=0.002", "--print-config")  # fmt: skip
    assert code == 0, err
    cfg = json.loads(out)
    assert (cfg["data"], cfg["outcome"], cfg["steps"], cfg["lr"], cfg["logdir"]) == ("logs.jsonl", "csat", 7, 0.002,
                                                                                     str(tmp_path / "r"))
    code, out, err = _run(capsys, "train", "dialogue", "--logdir", str(tmp_path / "r"), "--print-config")
    assert code == 0 and "window" in json.loads(out)  # the Chit-Chat recipe, as before
    code, out, _ = _run(capsys, "train", "dialogue", "--help")
    assert "--data LOGS.jsonl --outcome NAME" in " ".join(out.split())


def test_kill_and_resume_continue_the_run(tmp_path: Path, cache: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """SIGKILL mid-run, then `--resume` in the same folder: the run ends at --steps with one metrics row per step."""
    logs, logdir = write_logs(tmp_path / "logs.jsonl"), tmp_path / "run"
    argv = _train_argv(logs, logdir, cache, 3000, "--save-every", "40")  # metrics rows every 50 steps
    proc = subprocess.Popen([sys.executable, "-m", "agentwm", *argv], env=_env(), cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)  # fmt: skip
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        if (logdir / "metrics.jsonl").is_file():  # step 50: a row past the checkpoint at 40 (unless 80 is reached)
            break
        time.sleep(0.02)
    assert proc.poll() is None, proc.communicate()[1].decode()[-2000:]
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    killed_at = json.loads((logdir / "run.json").read_text())["step"]
    assert 40 <= killed_at < 3000 and not (logdir / "model").exists()
    final = (killed_at // 50 + 1) * 50  # the resumed run writes the row of step 50 again where it was past the kill

    code, _, err = _run(capsys, *argv)  # the same command again, without --resume: refused, in one line
    assert code == 2 and "add --resume" in err and len(err.strip().splitlines()) == 1
    # the saved settings, trained a little past the kill
    code, out, err = _run(capsys, "train", "dialogue", "--logdir", str(logdir), "--resume", "--steps", str(final))
    assert code == 0, err
    summary = json.loads(out)
    assert summary["steps"] == final and summary["finished"]
    steps = [json.loads(r)["step"] for r in (logdir / "metrics.jsonl").read_text().splitlines()]
    assert steps == sorted(set(steps)) and steps[-1] == final  # no row twice after the resume
    assert load_outcome_model(logdir / "model", embed=HashEmbed()).config.target == "resolved"


def test_resumed_run_repeats_the_uninterrupted_one(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    logs = write_logs(tmp_path / "logs.jsonl")
    base = {"data": str(logs), "outcome": "resolved", "preset": "debug", "steps": 30, "batch": 8, "bank_size": 40,
            "eval_every": 10, "save_every": 10, "progress": False}
    whole, _ = train_outcome_model(OutcomeTrainConfig(**base, logdir=str(tmp_path / "a")), embed=HashEmbed())  # type: ignore[arg-type]
    original, calls = DialogueOutcomeModel.total_loss, {"n": 0}

    def dies_at_step_25(self: DialogueOutcomeModel, batch: dict[str, torch.Tensor]):  # type: ignore[no-untyped-def]
        calls["n"] += 1
        if calls["n"] > 25:
            raise KeyboardInterrupt
        return original(self, batch)

    monkeypatch.setattr(DialogueOutcomeModel, "total_loss", dies_at_step_25)
    cfg = OutcomeTrainConfig(**base, logdir=str(tmp_path / "b"))  # type: ignore[arg-type]
    with pytest.raises(KeyboardInterrupt):
        train_outcome_model(cfg, embed=HashEmbed())
    monkeypatch.setattr(DialogueOutcomeModel, "total_loss", original)
    resumed, _ = train_outcome_model(cfg, embed=HashEmbed())
    for (name, a), b in zip(whole.state_dict().items(), resumed.state_dict().values()):
        assert torch.equal(a, b), name  # same batches, same RNG, same best weights: the same model


def test_bad_lines_are_skipped_counted_and_named(tmp_path: Path, cache: Path, capsys: pytest.CaptureFixture[str]) -> None:
    logs = write_logs(tmp_path / "logs.jsonl", n=40)
    good = logs.read_text().splitlines()
    bad = [
        "{not json",
        json.dumps({"role": "agent", "turns": [{"speaker": "user", "text": "hi"}], "outcomes": {}}),  # no outcome
        json.dumps({"role": "agent", "turns": [{"speaker": "user", "text": "   "}], "outcomes": {"resolved": True}}),
        json.dumps({"role": "agent", "turns": [], "outcomes": {"resolved": True}}),  # no turns
        json.dumps({"role": "agent", "turns": [{"speaker": "user", "text": "hi"}], "outcomes": {"resolved": True}}),
        "",
    ]
    logs.write_text("\n".join(good[:3] + bad + good[3:]) + "\n")
    code, out, err = _run(capsys, *_train_argv(logs, tmp_path / "run", cache, 5))
    assert code == 0, err
    load = json.loads(out)["load"]
    assert load["skipped"] == {"not_json": 1, "no_outcome": 1, "invalid": 2, "no_role_turn": 1, "blank": 1}
    assert load["loaded"] == 40 and load["roles"] == {"agent": 40}
    line = err.strip().splitlines()[-1]
    assert line.startswith("agentwm train dialogue: skipped 6 of 46 lines") and "line 4: not valid JSON" in line

    (tmp_path / "all_bad.jsonl").write_text("\n".join(bad) + "\n")
    code, out, err = _run(capsys, *_train_argv(tmp_path / "all_bad.jsonl", tmp_path / "run2", cache, 5))
    assert code == 2 and out == "" and len(err.strip().splitlines()) == 1
    assert "no usable conversation with outcome 'resolved'" in err and "line 1: not valid JSON" in err
    code, _, err = _run(capsys, *_train_argv(tmp_path / "missing.jsonl", tmp_path / "run3", cache, 5))
    assert code == 2 and "no conversation log at" in err and len(err.strip().splitlines()) == 1
    code, _, err = _run(capsys, "train", "dialogue", "--logdir", str(tmp_path / "run4"), "--data", str(logs), "--resume",
                        "--outcome", "resolved")  # fmt: skip
    assert code == 2 and "--resume: no run in" in err


# ----------------------------------------------------------------------------------------------
# Scoring by the outcome model's return


@pytest.fixture()
def outcome_model(tmp_path: Path, cache: Path) -> Path:
    logs = write_logs(tmp_path / "logs.jsonl", n=80)
    cfg = OutcomeTrainConfig(data=str(logs), outcome="resolved", logdir=str(tmp_path / "m"), preset="debug", steps=30,
                             batch=8, bank_size=40, eval_every=1000, progress=False, cache_dir=str(cache))  # fmt: skip
    train_outcome_model(cfg)
    return tmp_path / "m" / "model"


def test_score_replies_ranks_by_the_outcome_models_return(outcome_model: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from agentwm.planning.outcome_replies import OutcomeReply, OutcomeScorer
    from agentwm.planning.replies import score_replies, scorer_of

    model = load_outcome_model(outcome_model)
    assert scorer_of(model) is scorer_of(model) and isinstance(scorer_of(model), OutcomeScorer)
    assert scorer_of(outcome_model).role == "agent"  # the trained role, from the checkpoint
    observed = {"n": 0}
    original = DialogueOutcomeModel.observe_turns

    def counting(self: DialogueOutcomeModel, *a: object, **kw: object) -> dict[str, torch.Tensor]:
        observed["n"] += 1
        return original(self, *a, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(DialogueOutcomeModel, "observe_turns", counting)
    first = score_replies(["hi"], CANDIDATES, model=model, samples=4)
    again = score_replies(["hi"], CANDIDATES, model=model, samples=4)
    assert observed["n"] == 1  # one scorer per model: the context's carry is reused
    assert all(isinstance(r, OutcomeReply) for r in first) and sorted(r.rank for r in first) == [1, 2]
    assert [r.score for r in first] == [r.score for r in again]
    direct = scorer_of(model).score(["hi"], CANDIDATES, samples=4)
    assert [r.score for r in direct] == [r.score for r in first]  # the same rank path, nothing added
    with pytest.raises(ValueError, match="gamma"):
        score_replies(["hi"], CANDIDATES, 3, 0.9, model=model)
    with pytest.raises(ValueError, match="agent's own turn"):
        score_replies([("user", "hi"), ("agent", "hello")], CANDIDATES, model=model)
    with pytest.raises(ValueError, match="do not include the agent's role"):
        score_replies([("A", "hi"), ("B", "hello")], CANDIDATES, model=model)


def test_score_dialogue_cli_picks_the_model_kind(outcome_model: Path, tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    ctx = tmp_path / "c.json"
    ctx.write_text(json.dumps({"context": [["user", "hi"], ["agent", "happy to help"], ["user", "my order is late"]],
                               "candidates": CANDIDATES}))
    code, out, err = _run(capsys, "score", "dialogue", "--model", str(outcome_model), "--context-file", str(ctx),
                          "--samples", "4")  # fmt: skip
    assert code == 0, err
    res = json.loads(out)
    assert res["model_kind"] == "outcome" and res["outcome"] == "resolved" and res["role"] == "agent"
    assert res["best"] == res["results"][0]["reply"] and {r["reply"] for r in res["results"]} == set(CANDIDATES)
    assert set(res["results"][0]["parts"]) == {"ends_within_horizon", "after_horizon", "p_end"}
    ctx.write_text(json.dumps([["user", "hi"], ["agent", "happy to help"]]))
    code, out, err = _run(capsys, "score", "dialogue", "--model", str(outcome_model), "--context-file", str(ctx),
                          "--candidates", "ok")  # fmt: skip
    assert code == 2 and out == "" and "context[1] is the agent's own turn" in err and len(err.splitlines()) == 1
    code, _, err = _run(capsys, "score", "dialogue", "--model", str(outcome_model), "--context-file", str(ctx),
                        "--candidates", "ok", "--private-context", "{oops")  # fmt: skip
    assert code == 2 and "--private-context is not valid JSON" in err


def test_dialogue_node_ranks_with_an_outcome_model(outcome_model: Path) -> None:
    from agentwm.graph.dialogue import build_dialogue_graph

    app = build_dialogue_graph(world_model=str(outcome_model)).compile()
    out = app.invoke({"messages": [("user", "my order is late")], "candidates": CANDIDATES},
                     context={"samples": 4, "horizon": 3})
    assert out["chosen"] in CANDIDATES and len(out["scores"]) == 2
    first = out["scores"][0]
    assert first["p_reply"] is None and set(first["components"]) == {"ends_within_horizon", "after_horizon", "p_end"}
    assert first["imagined"][0] == {"speaker": "agent", "text": first["reply"]}
