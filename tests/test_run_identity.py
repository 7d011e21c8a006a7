"""Run identity: the config hash follows what changes the numbers, the overrides text of the CLI
and the notebooks, and the overrides a cached run differs from its profile by."""

import json

import pytest

from cgm import experiments as ex
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
