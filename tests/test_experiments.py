"""Experiments: registry, overrides and hashes, cache hit/miss, pretraining chains, protocols."""

import json
import subprocess

import pytest
import torch

from cgm import experiments as ex
from cgm.network import CGMConfig, CGMNet
from cgm.protocols import evaluate_action, evaluate_motion, spread_indices
from cgm.train import TrainConfig

# A run small enough for a unit test: 2 steps of a width-0.125 model on 16 px clips of 4 frames.
TINY = dict(steps=2, width=0.125, size=16, clip_len=4, batch_size=2, n=8, eval__max_clips=2)


def test_registry_covers_the_paper():
    names = {e.name for e in ex.list_experiments()}
    for name in (
        "table1/cgm",
        "table6/nearest",
        "table6/bilinear",
        "table6/cgmul",
        "table7/backbone",
        "table7/cgmul",
        "fig6/scale1",
        "fig6/scale16",
        "table2/pretrain",
        "table2/ucf101_pretrained",
        "table2/kinetics400_half_scratch",
        "table3/r3d50",
        "table3/rx3d101",
        "table3/slowfast",
        "table4/slowfast",
        "table5/hmdb51",
    ):
        assert name in names
    for e in ex.list_experiments():
        for profile in ex.PROFILES:
            try:
                cfg = e.build(profile)
            except ValueError as err:  # the laptop profile covers the self-supervised runs only
                assert profile == "laptop" and "laptop profile covers" in str(err), (e.name, profile)
                continue
            assert cfg.model.size % cfg.model.scale == 0
            if cfg.pretrain_from:
                assert cfg.pretrain_from in names


def test_profiles_follow_the_paper():
    paper = ex.resolve("table7/cgmul", "paper")
    assert (paper.model.clip_len, paper.model.size, paper.model.num_classes) == (16, 112, 101)
    assert (paper.train.batch_size, paper.train.lr, paper.train.decay_every) == (64, 1e-3, 50)
    assert (paper.train.lambda_lr, paper.train.lambda_cls) == (1.0, 10.0)
    assert ex.resolve("table6/cgmul", "paper").train.lambda_cls == 0.0
    assert ex.resolve("table3/slowfast", "paper").model.backbone == "slowfast_r101"
    smoke = ex.resolve("table7/cgmul")
    assert smoke.data["name"] == "synthmotion" and smoke.train.device == "cpu"
    assert ex.resolve("table1/cgm").data["name"] == "natural"
    assert ex.resolve("table2/kinetics400_half_pretrained").train.labeled_fraction == 0.5


def test_overrides_change_the_hash_and_are_checked():
    base = ex.config_hash(ex.resolve("table6/cgmul"))
    assert ex.config_hash(ex.resolve("table6/cgmul")) == base
    assert ex.config_hash(ex.resolve("table6/cgmul", steps=3)) != base
    assert ex.config_hash(ex.resolve("table6/cgmul", width=0.5)) != base
    assert ex.config_hash(ex.resolve("table6/cgmul", progress=True)) == base  # not a result change
    assert ex.resolve("table6/cgmul", model__scale=8).model.scale == 8
    assert ex.resolve("table6/cgmul", n=64).data["kw"]["n"] == 64
    with pytest.raises(ValueError, match="not a config field; valid: .*width"):
        ex.resolve("table6/cgmul", widht=0.5)
    with pytest.raises(ValueError, match="unknown backbone 'r3d19'"):
        ex.resolve("table6/cgmul", backbone="r3d19")
    with pytest.raises(ValueError, match="unknown experiment 'table9/x'; valid: table1/cgm"):
        ex.resolve("table9/x")
    with pytest.raises(ValueError, match="valid: smoke, laptop, paper"):
        ex.resolve("table6/cgmul", "huge")
    with pytest.raises(ValueError, match="laptop profile covers the self-supervised motion"):
        ex.resolve("table7/cgmul", "laptop")


def test_paper_profile_needs_data_roots(monkeypatch):
    monkeypatch.delenv("CGM_UCF101_ROOT", raising=False)
    with pytest.raises(ValueError, match="CGM_UCF101_ROOT"):
        ex.check_data(ex.resolve("table7/cgmul", "paper"))


@pytest.mark.slow
def test_run_computes_then_hits_the_cache(tmp_path):
    first = ex.run("table6/cgmul", runs_dir=tmp_path, **TINY)
    assert first.source == "computed" and first.dataset == "synthmotion" and first.profile == "smoke"
    folder = tmp_path / "table6" / "cgmul" / first.hash
    assert {p.name for p in folder.iterdir()} >= {
        "config.json",
        "metrics.json",
        "result.json",
        "checkpoint.pt",
        "metrics.csv",
    }
    assert first.metrics["synthmotion/l1_hr"] > 0 and "synthmotion/copy_l1_hr" in first.metrics
    again = ex.run("table6/cgmul", runs_dir=tmp_path, **TINY)
    assert again.source == "cache" and again.metrics == first.metrics and again.hash == first.hash
    # the same config under another name is reused, not recomputed
    assert ex.run("table6/cgmul", runs_dir=tmp_path, **TINY).hash == first.hash
    other = ex.run("table6/cgmul", runs_dir=tmp_path, **{**TINY, "steps": 3})
    assert other.source == "computed" and other.hash != first.hash
    # the kept checkpoint is small, loads with weights_only and rebuilds the model
    state = torch.load(folder / "checkpoint.pt", weights_only=True)
    assert state["format"] == "cgm-weights-fp16" and "optimizer" not in state
    model = first.load_model()
    assert isinstance(model, CGMNet) and model.cfg.size == 16
    assert json.loads((folder / "result.json").read_text())["hash"] == first.hash


@pytest.mark.slow
def test_pretraining_chain_runs_the_pretraining_first(tmp_path):
    r = ex.run("table2/ucf101_pretrained", runs_dir=tmp_path, **TINY)
    pre = list((tmp_path / "table2" / "pretrain").iterdir())
    assert len(pre) == 1 and (pre[0] / "checkpoint.pt").is_file()
    assert r.config["pretrain_hash"] == pre[0].name
    assert "synthmotion/lr+hr/top1" in r.metrics
    # A clone holds results but no weights: the finished fine-tuning is read without retraining
    # the pretraining, whose checkpoint is gone.
    (pre[0] / "checkpoint.pt").unlink()
    again = ex.run("table2/ucf101_pretrained", runs_dir=tmp_path, **TINY)
    assert again.source == "cache" and again.hash == r.hash
    assert not (pre[0] / "checkpoint.pt").exists()


def test_spread_indices():
    assert spread_indices(5, None) == [0, 1, 2, 3, 4]
    assert spread_indices(10, 3) == [0, 4, 9]


@pytest.mark.slow
def test_protocols_on_an_identity_model():
    """A model whose maps are the identity scores exactly like the copy-last-frame baseline."""
    from cgm.data import build_dataset
    from cgm.network import set_identity_motion_

    torch.manual_seed(0)
    cfg = CGMConfig(clip_len=4, size=16, width=0.125, depth=(1, 1, 1, 1), num_classes=10)
    model = set_identity_motion_(CGMNet(cfg), logit=60.0)
    ds = build_dataset("synthmotion", "test", clip_len=4, size=16, future=True, n=3)
    m = evaluate_motion(model, ds, batch_size=2)
    for k in ("l1_hr", "l1_pred", "psnr_pred", "ssim_pred", "epe"):
        assert m[k] == pytest.approx(m[f"copy_{k}"], rel=1e-4, abs=1e-5), k
    assert m["clips"] == 3 and m["copy_l1_hr"] > 0
    a = evaluate_action(model, build_dataset("synthmotion", "test", clip_len=4, size=16, n=10))
    assert set(a) == {"clips", *(f"{p}/top{k}" for p in ("backbone", "lr", "hr", "lr+hr") for k in (1, 5))}
    assert all(0 <= v <= 100 for k, v in a.items() if k != "clips")


def test_fold_override_moves_the_test_split_with_the_train_split():
    cfg = ex.resolve("table5/hmdb51", "paper", fold=2)
    assert cfg.data["kw"]["fold"] == 2
    assert [s["kw"]["fold"] for s in cfg.eval["action"].values()] == [2]
    assert ex.resolve("table5/hmdb51", "paper").eval["action"]["hmdb51"]["kw"]["fold"] == 1


def test_every_committed_run_resolves_to_its_hash():
    """Each cached run under results/runs/: its config.json read back into the typed config hashes
    to its folder name, and (for the committed default runs) its name and profile resolve to that
    hash today: a refactor of the configs must not orphan the committed results."""
    results = sorted(ex.RUNS.glob("*/*/*/result.json"))
    assert results, "no committed runs under results/runs"
    listed = subprocess.run(["git", "ls-files", "results/runs"], cwd=ex.ROOT, capture_output=True, text=True)
    committed = {ex.ROOT / p for p in listed.stdout.split()} if listed.returncode == 0 else set()
    for path in results:
        stored = json.loads((path.parent / "config.json").read_text())
        cfg = ex.ExperimentConfig(
            CGMConfig.from_dict(stored["model"]),
            TrainConfig(**stored["train"]),
            stored["data"],
            stored["eval"],
            stored["pretrain_from"],
        )
        assert ex.config_hash(cfg, stored["pretrain_hash"]) == path.parent.name, path
        if path in committed:
            r = json.loads(path.read_text())
            resolved = ex.resolve(r["name"], r["profile"])
            assert ex.config_hash(resolved, stored["pretrain_hash"]) == path.parent.name, path


def test_typed_specs_read_like_the_dicts_they_replace():
    cfg = ex.resolve("table7/cgmul")
    assert isinstance(cfg.data, ex.DataSpec) and isinstance(cfg.eval, ex.EvalSpec)
    assert cfg.data.name == cfg.data["name"] == "synthmotion" and cfg.data.kw["n"] == 1024
    assert {**cfg.data}["split"] == "train" and cfg.eval["batch_size"] == cfg.eval.batch_size == 8
    assert cfg.eval.action["synthmotion"].pipelines == ("backbone", "lr", "hr", "lr+hr")
    assert "data_root" not in cfg.eval["motion"]["synthmotion"]  # the JSON the cached hashes saw
    assert ex.DataSpec.from_dict(cfg.data.to_dict()) == cfg.data
    assert ex.resolve("table7/cgmul", eval__max_clips=3).eval.motion["synthmotion"].max_clips == 3
    with pytest.raises(ValueError, match="unknown dataset 'ucf102'"):
        ex.DataSpec("ucf102", "train")
    with pytest.raises(ValueError, match="data has no field 'listfile'"):
        ex.resolve("table7/cgmul", data__listfile="x.txt")
    with pytest.raises(ValueError, match="unknown pipelines"):
        ex.DataSpec("synthmotion", "test", pipelines=("hd",))


def test_recipe_train_changes_apply_to_the_laptop_table1_run_only():
    """table1/cgm's laptop run trains under bf16 autocast (Recipe.train); its smoke run and Table
    6's laptop rows keep float32, so their cached hashes do not move."""
    assert ex.resolve("table1/cgm", "laptop").train.amp == "bf16"
    assert ex.resolve("table1/cgm", "smoke").train.amp == "none"
    assert ex.resolve("table6/cgmul", "laptop").train.amp == "none"


def test_laptop_table1_cgm_starts_from_the_matching_flow_and_cgm_box5_fine_tunes_the_matching_cue():
    """The laptop table1/cgm starts both levels from the matching flow over its 17x17 HR maps
    (shiftable windows, still pixels); table1/cgm_box5 starts from table1/cgm_matching (the
    committed 2,000-step matching-cue run, its hash unchanged) with a 5x5 matching cost; smoke and
    paper profiles are one model."""
    flow = ex.resolve("table1/cgm", "laptop")
    fine, base = ex.resolve("table1/cgm_box5", "laptop"), ex.resolve("table1/cgm_matching", "laptop")
    assert fine.pretrain_from == "table1/cgm_matching" and base.pretrain_from is None
    assert (fine.model.cost_patch, base.model.cost_patch) == (5, 3)
    assert base.model.hr_prior == fine.model.hr_prior == "cost_local"
    assert base.train.steps == 2000 and fine.train.steps < base.train.steps
    assert flow.model.hr_prior == "cue_flow" and flow.pretrain_from is None
    m = flow.model
    assert (m.k_hr, m.cue_coarse, m.cue_shift, m.cue_still) == (17, False, True, True)
    assert flow.train.weighting == "uniform" and flow.model.last_cue == "previous"
    assert ex.config_hash(base) == "ce3bdc6aa57d"
    for profile in ("smoke", "paper"):
        for name in ("table1/cgm", "table1/cgm_box5"):
            assert ex.resolve(name, profile) == ex.resolve("table1/cgm_matching", profile)
