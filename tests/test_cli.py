"""CLI: `python -m cgm list | train | eval | run`, and its errors before any work starts."""

import csv
import json

import pytest
import torch

from cgm import experiments as ex
from cgm.__main__ import main

TINY = [
    "--set",
    "width=0.125",
    "--set",
    "size=16",
    "--set",
    "clip_len=4",
    "--set",
    "batch_size=2",
    "--set",
    "n=8",
    "--set",
    "eval__max_clips=2",
]


def test_list_names_experiments_and_profiles(capsys):
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    assert f"profiles: {', '.join(ex.PROFILES)}" in out
    for name in ("table6/cgmul", "table7/cgmul", "fig6/scale8", "table3/slowfast"):
        assert name in out
    line = next(l for l in out.splitlines() if l.startswith("table6/cgmul ") and " smoke " in l)
    assert " yes " in line and "min" in line  # committed run, with its CPU time


@pytest.mark.parametrize(
    "argv, message",
    [
        (
            ["train", "--experiment", "table9/x", "--out", "o"],
            "unknown experiment 'table9/x'; valid: table1/cgm",
        ),
        (
            ["train", "--experiment", "table6/cgmul", "--profile", "huge", "--out", "o"],
            "valid: smoke, laptop, paper",
        ),
        (["run", "--experiment", "table6/cgmul", "--set", "backbone=r3d19"], "unknown backbone 'r3d19'"),
        (["train", "--experiment", "table6/cgmul", "--out", "o", "--steps", "0"], "--steps must be >= 1"),
        (["run", "--experiment", "table6/cgmul", "--set", "widht=1"], "not a config field; valid:"),
        (["train", "--experiment", "table7/cgmul", "--profile", "paper", "--out", "o"], "CGM_UCF101_ROOT"),
        (
            [
                "train",
                "--experiment",
                "table7/cgmul",
                "--profile",
                "paper",
                "--out",
                "o",
                "--data-root",
                "/nonexistent/ucf",
            ],
            "/nonexistent/ucf is not a folder",
        ),
    ],
)
def test_bad_parameters_fail_before_work(argv, message, capsys, monkeypatch, tmp_path):
    monkeypatch.delenv("CGM_UCF101_ROOT", raising=False)
    monkeypatch.chdir(tmp_path)
    assert main(argv) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_batch_must_divide_by_world_size(capsys, monkeypatch, tmp_path):
    monkeypatch.setenv("WORLD_SIZE", "3")
    assert main(["train", "--experiment", "table6/cgmul", "--out", str(tmp_path / "o")]) == 2
    assert "must be a positive multiple of the world size 3" in capsys.readouterr().err


@pytest.mark.slow
def test_paper_profile_on_cpu_warns_with_an_estimate(tmp_path):
    from cgm import experiments as ex
    from cgm.__main__ import estimate_paper_time

    cfg = ex.resolve(
        "table6/cgmul", "paper", device="cpu", steps=1000, width=0.125, size=32, clip_len=4, batch_size=4
    )
    text = estimate_paper_time(cfg)
    assert "one step of batch 4 takes about" in text and "days" in text and "1000 steps" in text


@pytest.mark.slow
def test_train_writes_checkpoint_and_metrics_then_eval(tmp_path, capsys):
    out = tmp_path / "run"
    argv = ["train", "--experiment", "table6/cgmul", "--out", str(out), "--steps", "2", *TINY]
    assert main(argv) == 0
    state = torch.load(out / "checkpoint.pt", weights_only=True)
    assert state["step"] == 2 and state["model"] and state["optimizer"]
    assert not any(k.startswith("module.") for k in state["model"])
    rows = list(csv.DictReader(open(out / "metrics.csv")))
    assert rows[-1]["step"] == "2" and {"loss", "clips_per_s", "data_wait_frac", "lr"} <= set(rows[0])
    # --resume continues to a longer run
    assert main([*argv[: -len(TINY) - 2], "--steps", "3", "--resume", *TINY]) == 0
    assert torch.load(out / "checkpoint.pt", weights_only=True)["step"] == 3
    capsys.readouterr()
    assert (
        main(["eval", "--experiment", "table6/cgmul", "--checkpoint", str(out / "checkpoint.pt"), *TINY]) == 0
    )
    table = capsys.readouterr().out  # for people: each metric beside its copy-the-frame baseline
    assert "synthmotion/l1_hr" in table and "copy the frame" in table
    assert (
        main(
            [
                "eval",
                "--experiment",
                "table6/cgmul",
                "--checkpoint",
                str(out / "checkpoint.pt"),
                "--json",
                *TINY,
            ]
        )
        == 0
    )
    result = json.loads(capsys.readouterr().out)
    assert result["dataset"] == "synthmotion" and result["metrics"]["synthmotion/l1_hr"] > 0


# --------------------------------------------------------------------------- help, at once


SUBCOMMANDS = ("list", "train", "eval", "run", "show", "plan", "flow")


def test_help_answers_without_importing_the_stack():
    """`python -m cgm [SUB] --help` prints help with torch, torchvision and OpenCV never imported
    (the command functions import them), which is what makes it answer at once."""
    import subprocess
    import sys

    for sub in ("", *SUBCOMMANDS):
        argv = [sys.executable, "-X", "importtime", "-m", "cgm", *([sub] if sub else []), "--help"]
        done = subprocess.run(argv, capture_output=True, text=True, timeout=120)
        assert done.returncode == 0 and "usage: python -m cgm" in done.stdout, (sub, done.stderr[-500:])
        imported = {line.rsplit("|", 1)[-1].strip().split(".")[0] for line in done.stderr.splitlines()}
        heavy = imported & {"torch", "torchvision", "cv2", "numpy", "pandas", "av"}
        assert not heavy, f"`python -m cgm {sub} --help` imports {sorted(heavy)}"


def test_every_option_has_help_with_its_default():
    import argparse

    from cgm.__main__ import PROFILES, build_parser

    assert PROFILES == ex.PROFILES  # the parser's copy of the profiles' names
    parser = build_parser()
    subparsers = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    assert set(subparsers.choices) == set(SUBCOMMANDS)
    for name, sub in subparsers.choices.items():
        for action in sub._actions:
            if isinstance(action, argparse._HelpAction):
                continue
            what = f"{name} {'/'.join(action.option_strings) or action.dest}"
            assert action.help, f"{what} has no help text"
            if action.option_strings and not action.required and action.const is None:
                assert "default" in action.help, f"{what}: its help does not state its default"
    profile = next(a for a in subparsers.choices["plan"]._actions if a.dest == "profile")
    assert profile.default == "paper" and "default paper" in profile.help
