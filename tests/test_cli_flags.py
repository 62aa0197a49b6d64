"""One CLI idiom: every `train` family takes the common flags, and its flags come from its config."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from agentwm.cli import build_parser, main
from agentwm.cli.train import FAMILIES, config_class

# family -> (a valid --steps value, a valid --set) for a settings-only run (--print-config)
COMMON = {
    "dreamer": ("120", "horizon=4"),
    "ensemble": ("400", "kappa=2.0"),
    "dialogue": ("50", "window=8"),
    "dialogue-outcome": ("50", "lr=0.002"),
    "babyai": ("300", "layers=2"),
    "dyna": ("200", "alpha=0.25"),
    "muzero": ("40", "warmup_steps=10"),
    "pets": ("2", "particles=2"),
    "worldmodels": ("300", "dreams=2"),
    "planet": ("2", "elites=5"),
}
PRESETS = {"dreamer": "debug", "dialogue": "debug", "dialogue-outcome": "debug", "planet": "debug"}
REQUIRED = {"dialogue-outcome": {"data": "logs.jsonl", "outcome": "csat"}}  # fields without a default
RESUMABLE = ("dreamer", "dialogue-outcome")


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    try:
        code = main(list(argv))
    except SystemExit as stop:  # argparse: --help (0) or a usage error (2)
        code = int(stop.code or 0)
    out = capsys.readouterr()
    return code, out.out, out.err


def test_every_family_is_covered() -> None:
    assert set(COMMON) == set(FAMILIES)


@pytest.mark.parametrize("family", sorted(COMMON))
def test_train_family_takes_the_common_flags(family: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    steps, override = COMMON[family]
    argv = ["train", family, "--logdir", str(tmp_path / "run"), "--steps", steps, "--seed", "3", "--set", override,
            "--print-config"]  # fmt: skip
    if family in PRESETS:
        argv += ["--preset", PRESETS[family]]
    for key, value in REQUIRED.get(family, {}).items():
        argv += [f"--{key}", value]
    code, out, err = run(capsys, *argv)
    assert code == 0, err
    config = json.loads(out)
    assert config["seed"] == 3 and config[FAMILIES[family][2]] == int(steps)
    key, value = override.split("=")
    assert config[key] == json.loads(value)
    assert not (tmp_path / "run").exists()  # --print-config only prints
    defaults = config_class(family)(**REQUIRED.get(family, {})).model_dump(mode="json")
    assert set(config) == set(defaults)  # the whole resolved config, nothing else


@pytest.mark.parametrize("family", sorted(COMMON))
def test_help_shows_the_config_field_descriptions(family: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "train", family, "--help")
    assert code == 0
    text = " ".join(out.split())  # argparse wraps lines
    config = config_class(family)
    steps_field = config.model_fields[FAMILIES[family][2]]
    assert f"--steps STEPS run length: {' '.join(str(steps_field.description).split())}" in text
    for flag in ("--logdir", "--seed", "--set", "--print-config"):
        assert flag in text
    assert ("--preset" in text) == (family in PRESETS)
    assert ("--resume" in text) == (family in RESUMABLE)
    assert not re.search(r"--out(?![a-z-])", text)  # the old name is hidden (--outcome is another flag)
    described = [n for n, f in config.model_fields.items() if f.description and n not in ("seed", "out", "progress")]
    hits = [n for n in described if " ".join(str(config.model_fields[n].description).split()) in text]
    assert len(hits) >= len(described) // 2, (described, hits)  # flag-friendly fields (dicts/models: --set)


def test_defaults_are_stated_once_in_the_config(capsys: pytest.CaptureFixture[str]) -> None:
    from agentwm.agents.mpc import MPCConfig

    code, out, _ = run(capsys, "plan", "--print-config")
    assert code == 0 and json.loads(out) == MPCConfig().model_dump(mode="json")
    code, out, _ = run(capsys, "train", "dyna", "--help")
    text = " ".join(out.split())
    assert "(default: 20000)" in text and "(default: Taxi-v4)" in text


def test_old_flags_still_work_with_a_note(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["train", "dyna", "--out", str(tmp_path / "q"), "--real-steps", "200", "--print-config"]
    code, out, err = run(capsys, *argv)
    assert code == 0 and json.loads(out)["real_steps"] == 200
    lines = err.strip().splitlines()
    assert len(lines) == 2 and all("DeprecationWarning" in line for line in lines)
    assert "--out is deprecated, use --logdir" in err and "--real-steps is deprecated, use --steps" in err
    assert build_parser(argv).parse_args(argv).logdir == str(tmp_path / "q")
    for family, old in (("muzero", "--env-steps"), ("worldmodels", "--frames"), ("planet", "--episodes"),
                        ("pets", "--max-episodes")):  # fmt: skip
        code, out, err = run(capsys, "train", family, old, "20", "--print-config")
        assert code == 0 and json.loads(out)[FAMILIES[family][2]] == 20 and f"{old} is deprecated" in err


@pytest.mark.parametrize("family", sorted(COMMON))
def test_bad_set_key_is_one_line_naming_it(family: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "train", family, "--set", "no_such_knob=1", "--print-config")
    assert code == 2 and out == ""
    assert len(err.strip().splitlines()) == 1 and "no_such_knob" in err


def test_bad_values_are_one_line_naming_the_field(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "train", "dyna", "--set", "alpha=3", "--print-config")
    assert code == 2 and len(err.strip().splitlines()) == 1 and "alpha" in err and "got 3" in err
    code, _, err = run(capsys, "train", "dyna", "--steps", "lots")
    assert code == 2 and "--steps" in err.strip().splitlines()[-1]


def test_nested_set_and_required_logdir(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "train", "muzero", "--set", "net.latent=8", "--print-config")
    config = json.loads(out)
    assert code == 0 and config["net"]["latent"] == 8 and config["net"]["units"] > 8  # the rest kept
    code, _, err = run(capsys, "train", "babyai", "--steps", "300")
    assert code == 2 and "--logdir" in err.strip().splitlines()[-1]


def test_bool_fields_get_on_and_off_flags(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "train", "pets", "--no-gate", "--print-config")
    assert code == 0 and json.loads(out)["gate"] is False
    code, out, _ = run(capsys, "train", "planet", "--pixels", "--print-config")
    assert code == 0 and json.loads(out)["pixels"] is True


def test_help_imports_no_torch() -> None:
    code = "import sys\nfrom agentwm.cli import main\ntry:\n main(['train', '--help'])\nexcept SystemExit:\n pass\n"
    code += "assert 'torch' not in sys.modules, 'torch imported'"
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True)
