"""Run identity: the config hash follows what changes the numbers, the overrides text of the CLI
and the notebooks, and the overrides a cached run differs from its profile by."""

import json
import warnings

import pytest

from cgm import experiments as ex
from cgm import notebook
from cgm.overrides import format_overrides, parse_overrides


def test_hash_covers_what_changes_results_and_not_how_they_are_computed():
    base = ex.config_hash(ex.resolve("table7/cgmul"))
    for how in (dict(eval__batch_size=1), dict(num_workers=4), dict(checkpoint_every=7), dict(log_every=3)):
        assert ex.config_hash(ex.resolve("table7/cgmul", **how)) == base, how
    for what in (dict(amp="bf16"), dict(seed=1), dict(eval__max_clips=5), dict(lr=3e-4), dict(width=0.5)):
        assert ex.config_hash(ex.resolve("table7/cgmul", **what)) != base, what


def test_overrides_text_round_trips():
    text = "amp=bf16 eval__batch_size=1 depth='(1, 2, 1, 1)' data_root='/my data' lr=3e-4 seed=None"
    parsed = parse_overrides(text)
    assert parsed == {
        "amp": "bf16",
        "eval__batch_size": 1,
        "depth": (1, 2, 1, 1),
        "data_root": "/my data",
        "lr": 3e-4,
        "seed": None,
    }
    assert parse_overrides(format_overrides(parsed)) == parsed
    assert parse_overrides(None) == parse_overrides("") == {}
    assert parse_overrides({"steps": 2}) == {"steps": 2}
    with pytest.raises(ValueError, match="key=value"):
        parse_overrides("amp bf16")
    with pytest.raises(ValueError, match="overrides 'amp=\"bf16'"):
        parse_overrides('amp="bf16')


@pytest.mark.parametrize(
    "overrides",
    [
        {},
        {"amp": "bf16", "eval__batch_size": 1},
        {"steps": 2, "width": 0.125, "n": 8, "eval__max_clips": 2, "depth": (2, 1, 1, 1)},
        {"data__kw": {"n": 3, "speed": 1.0}, "model__scale": 8, "lr": 1e-4},
    ],
)
def test_overrides_between_gives_back_the_overrides(overrides):
    base = ex.resolve("table6/cgmul")
    cfg = ex.apply_overrides(base, overrides)
    found = ex.overrides_between(base, cfg)
    assert ex.apply_overrides(base, found).to_dict() == cfg.to_dict()
    assert set(found) == {"scale" if k == "model__scale" else k for k in overrides}


def test_overrides_between_refuses_what_no_override_gives():
    base = ex.resolve("table6/cgmul")
    other = ex.resolve("table7/cgmul")  # starts from another run: pretrain_from is no override
    with pytest.raises(ValueError, match="no overrides of the profile's config give this config"):
        ex.overrides_between(base, other)


def test_every_committed_run_is_its_profiles_default_config():
    for path in sorted(ex.RUNS.glob("*/*/*/config.json")):
        stored = json.loads(path.read_text())
        cfg = ex.ExperimentConfig.from_dict(stored)
        assert ex.config_hash(cfg, stored["pretrain_hash"]) == path.parent.name, path
        assert ex.overrides_between(ex.resolve(stored["name"], stored["profile"]), cfg) == {}, path


TINY = "width=0.125 size=16 clip_len=4 batch_size=2 n=8 eval__max_clips=2 steps=2"


@pytest.mark.slow
def test_a_bf16_run_of_the_cli_is_found_by_the_notebook_helpers(tmp_path, capsys):
    from cgm import cache, notebook
    from cgm.__main__ import main

    sets = [a for pair in (TINY + " amp=bf16").split() for a in ("--set", pair)]
    argv = ["run", "--experiment", "table6/cgmul", "--runs-dir", str(tmp_path), "--json", *sets]
    assert main(argv) == 0
    trained = json.loads(capsys.readouterr().out)
    assert trained["source"] == "computed"
    # A notebook's parameters: its own (steps) and the CLI's pairs as the `overrides` text, with
    # an evaluation batch that is not the one the run was scored with (not part of the run's identity).
    per_run = notebook.run_overrides(
        "table6/cgmul",
        "smoke",
        TINY.replace(" steps=2", "") + " amp=bf16 eval__batch_size=1",
        steps=2,
        seed=0,
    )
    links = cache.chain("table6/cgmul", "smoke", runs_dir=tmp_path, **per_run)
    assert links[-1].hash == trained["hash"] and links[-1].cached and not cache.to_train(links)
    found = ex.run("table6/cgmul", "smoke", runs_dir=tmp_path, **per_run)
    assert found.source == "cache" and found.metrics == trained["metrics"]
    # Without the overrides it is another run; `list` shows this one with what it changed.
    assert not cache.chain("table6/cgmul", "smoke", runs_dir=tmp_path)[-1].cached
    (listed,) = cache.cached_runs(tmp_path)
    assert listed["hash"] == trained["hash"]
    assert (
        ex.config_hash(ex.resolve("table6/cgmul", **parse_overrides(listed["overrides"]))) == trained["hash"]
    )
    assert main(["list", "--profile", "smoke", "--runs-dir", str(tmp_path)]) == 0
    (line,) = [l for l in capsys.readouterr().out.splitlines() if "amp=bf16" in l]
    assert line.startswith("table6/cgmul ") and " yes " in line and line.endswith(listed["overrides"])


def test_show_prints_the_config_and_its_hash(capsys):
    from cgm.__main__ import main

    assert (
        main(["show", "--experiment", "table3/r3d50", "--set", "amp=bf16", "--set", "eval__batch_size=1"])
        == 0
    )
    doc = json.loads(capsys.readouterr().out)
    cfg = ex.resolve("table3/r3d50", amp="bf16")
    pre = ex.config_hash(ex.resolve("pretrain/r3d50", amp="bf16"))
    assert doc["hash"] == ex.config_hash(cfg, pre) and [c["hash"] for c in doc["chain"]] == [pre, doc["hash"]]
    assert doc["config"]["train"]["amp"] == "bf16" and doc["config"]["eval"]["batch_size"] == 1
    assert doc["overrides"] == "amp=bf16 eval__batch_size=1"


def test_a_notebook_parameter_and_an_override_that_disagree_are_refused():
    with pytest.raises(ValueError, match="set in two places with different values: steps"):
        notebook.run_overrides("table6/cgmul", "smoke", "steps=3", steps=2)
    with pytest.raises(ValueError, match="not a config field"):
        notebook.run_overrides("table6/cgmul", "smoke", "stpes=3")


def test_a_wrong_data_root_is_named_first_with_every_missing_root(tmp_path, monkeypatch):
    from cgm import cache

    for var in ("CGM_VIDEOFOLDER_ROOT", "CGM_KINETICS400_ROOT", "CGM_UCF101_ROOT"):
        monkeypatch.delenv(var, raising=False)
    links = cache.chain("table3/r3d50", "paper", runs_dir=tmp_path, data_root="/no/kinetics")
    with pytest.raises(ValueError) as err:
        cache.check_chain(links, "paper")
    lines = [l for l in str(err.value).splitlines() if "must train" in l]
    assert str(err.value).startswith("3 data roots are missing") and len(lines) == 3
    assert "data_root or kinetics_root" in lines[0] and "/no/kinetics is not a folder" in lines[0]
    assert "'videofolder'" in lines[1] and "pretrain_root" in lines[1] and "data_root" not in lines[1]
    assert "'ucf_flow'" in lines[2] and "ucf101_root" in lines[2]


def test_the_cli_checks_the_chains_roots_before_the_cpu_estimate(tmp_path, monkeypatch, capsys):
    from cgm.__main__ import main

    for var in ("CGM_VIDEOFOLDER_ROOT", "CGM_UCF101_ROOT"):
        monkeypatch.delenv(var, raising=False)
    argv = ["run", "--experiment", "table3/r3d50", "--profile", "paper", "--device", "cpu"]
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        assert main([*argv, "--data-root", str(tmp_path), "--runs-dir", str(tmp_path)]) == 2
    assert not [w for w in seen if "takes about" in str(w.message)]  # no CPU estimate ran
    err = capsys.readouterr().err
    assert "pretrain/r3d50 (paper) must train" in err and "pretrain_root" in err


def test_fields_added_after_runs_were_cached_can_be_overridden():
    # to_dict leaves these out at their defaults (cached hashes): an override still finds them
    from cgm.network import ADDED_FIELDS as MODEL_ADDED
    from cgm.train import ADDED_FIELDS as TRAIN_ADDED

    base = ex.resolve("table1/cgm_box5", "laptop")
    changed = ex.resolve("table1/cgm_box5", "laptop", cue_still=True, census=0.1)
    assert changed.model.cue_still is True and changed.train.census == 0.1
    assert "cue_still" in MODEL_ADDED and "census" in TRAIN_ADDED
    assert ex.config_hash(ex.resolve("table1/cgm_box5", "laptop", cue_still=False)) == ex.config_hash(base)
