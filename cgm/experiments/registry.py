"""The registry: one named experiment per paper table row or figure point, each buildable in
every profile (`profiles.PROFILES`); `resolve(name, profile, **overrides)` gives its config."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from .bounds import check_bounds
from .config import ExperimentConfig, apply_overrides
from .profiles import SMOKE_NATURAL_EVAL, Recipe, build_config, check_profile


@dataclass(frozen=True)
class Experiment:
    """A named experiment. `fresh`: modules that start from their initialisation, not from the
    `pretrain_from` run's weights, beyond the action heads the two configs differ in (e.g. Fig. 6's
    upsampler at another scale); anything else that does not fit stops the run."""

    name: str
    paper_table: str  # a table id of cgm.paper
    paper_row: str | None  # the row's name in cgm.paper, exactly; None: the paper gives no number
    description: str
    build: Callable[[str], ExperimentConfig] = field(repr=False)
    fresh: tuple[str, ...] = ()
    paper_column: str | None = None  # the paper column of the run's main number (l1, top1, ucf101, half, ...)


EXPERIMENTS: dict[str, Experiment] = {}


def _register(name, paper_table, paper_row, description, build, fresh=(), column=None):
    EXPERIMENTS[name] = Experiment(name, paper_table, paper_row, description, build, tuple(fresh), column)


def list_experiments() -> list[Experiment]:
    """Every registered experiment, in registration (table) order."""
    return list(EXPERIMENTS.values())


def get_experiment(name: str) -> Experiment:
    if name not in EXPERIMENTS:
        raise ValueError(f"unknown experiment {name!r}; valid: {', '.join(EXPERIMENTS)}")
    return EXPERIMENTS[name]


def resolve(name: str, /, profile: str = "smoke", **overrides) -> ExperimentConfig:
    """The config of experiment `name` in `profile` with overrides applied (no work done)."""
    check_profile(profile)
    cfg = apply_overrides(get_experiment(name).build(profile), overrides)
    check_bounds(cfg)  # every numeric field in its range, before any work
    return cfg


def _config(profile: str, **recipe) -> ExperimentConfig:
    """The config of one registration (the fields of `profiles.Recipe`) in `profile`."""
    return build_config(profile, Recipe(**recipe))


# --------------------------------------------------------------------------- the entries


# The laptop Table 1 CGM-Nets, {model: ..., train: ...} beyond the shared laptop settings below:
# - "flow" (`table1/cgm`): both levels start from the matching flow (hr_prior="cue_flow") over the
#   17x17 taps of its HR maps (k_lr = 5, ±8 px), with shiftable windows and still pixels, no coarse
#   level; 400 steps. Its maps are motion: EPE near TV-L1's, ℓ1 below it.
# - "matching" (`table1/cgm_matching`): CGMUL's HR filters start from soft block matching with a
#   per-pixel learned temperature (hr_prior="cost_local"), 2,000 steps;
# - "box5" (`table1/cgm_box5`): "matching" fine-tuned 400 steps with a 5x5 matching box: ℓ1 at
#   TV-L1's by colour matching, EPE 2-3x TV-L1's (the contrast Table 1 and Fig. 4 show).
# Measured side by side in docs/training.md ("Motion maps that are motion").
LAPTOP_TABLE1 = {
    "flow": {
        "model": {
            "hr_prior": "cue_flow",
            "k_lr": 5,
            "cue_coarse": False,
            "cue_shift": True,
            "cue_still": True,
        },
        "train": {"steps": 400},
    },
    "matching": {"model": {"hr_prior": "cost_local"}, "train": {}},
    "box5": {"model": {"hr_prior": "cost_local", "cost_patch": 5}, "train": {"steps": 400, "lr": 2e-4}},
}


def _table1_cgm(p: str, variant: str) -> ExperimentConfig:
    """`table1/cgm*` in profile p: a LAPTOP_TABLE1 variant on the laptop; smoke and paper: the
    paper's CGM-Net whatever the variant."""
    laptop = p == "laptop"
    # laptop: the last frame, which has no successor, reuses the previous pair's cue (last_cue=
    # "previous": constant velocity, so the predicted frame T is not a copy of T-1); bf16
    # autocast, 1.5-1.8x the float32 step on a CPU with AVX512-BF16, ℓ1 within noise
    # (docs/performance.md, "bf16 autocast"). Table 6's laptop rows keep the paper's CGMUL.
    model = {**LAPTOP_TABLE1[variant]["model"], "last_cue": "previous"} if laptop else {}
    train = {**LAPTOP_TABLE1[variant]["train"], "amp": "bf16"} if laptop else {}
    return _config(
        p,
        stage="selfsup",
        dataset="ucf101",
        motion=True,
        smoke_data="natural",
        smoke_motion=SMOKE_NATURAL_EVAL,
        model=model,
        train=train,
        pretrain_from="table1/cgm_matching" if laptop and variant == "box5" else None,
    )


def _define():
    _register(
        "table1/cgm",
        "table1_motion",
        "Ours (CGM-Net)",
        "self-supervised CGM-Net (λ2 = 0) on UCF101; ℓ1 on UCF-Flow, PSNR/SSIM on UCF-Pred",
        lambda p: _table1_cgm(p, "flow"),
    )
    _register(
        "table1/cgm_matching",
        "table1_motion",
        None,
        "laptop: the matching-cue CGM-Net that table1/cgm_box5 fine-tunes (smoke/paper: table1/cgm)",
        lambda p: _table1_cgm(p, "matching"),
    )
    _register(
        "table1/cgm_box5",
        "table1_motion",
        None,
        "laptop: CGM-Net from soft block matching over 5x5 boxes, ℓ1 by colour matching (smoke/paper: table1/cgm)",
        lambda p: _table1_cgm(p, "box5"),
    )
    for up in ("nearest", "bilinear", "cgmul"):
        _register(
            f"table6/{up}",
            "table6_upsampling",
            {"cgmul": "Ours (CGMUL)"}.get(up, up.title()),
            f"self-supervised 3D-ResNet18 CGM-Net with the {up} motion upsampler; ℓ1 error",
            lambda p, up=up: _config(
                p, stage="selfsup", dataset="ucf101", motion=True, model={"upsampler": up}
            ),
            column="l1",
        )
    # Smoke: each multi-task row starts from the self-supervised run of its upsampler (the paper's
    # pretrain-then-multitask order), the Backbone row from table6/cgmul's encoder: the rows then
    # differ only in the motion heads and losses. Fig. 6's scales start from table6/cgmul too.
    _register(
        "table7/backbone",
        "table7_upsampling_action",
        "Backbone",
        "plain 3D-ResNet18 classifier (cross-entropy on the backbone head only)",
        lambda p: _classifier(p, "ucf101", pretrain_from="table6/cgmul" if p == "smoke" else None),
        column="top1",
    )
    for up in ("nearest", "bilinear", "cgmul"):
        _register(
            f"table7/{up}",
            "table7_upsampling_action",
            "+LR+HR (Ours)" if up == "cgmul" else f"+LR+HR ({up})",
            f"multi-task CGM-Net (λ1 = 1, λ2 = 10) with the {up} upsampler, all pipelines",
            lambda p, up=up: _ucf101_multitask(p, {"upsampler": up}, f"table6/{up}"),
            column="top1",
        )
    _register(
        "table8/baseline_r3d34",
        "table8_cost",
        "Baseline 3D-ResNet34",
        "plain 3D-ResNet34 classifier",
        lambda p: _classifier(p, "ucf101", model={"backbone": "r3d34"}),
        column="top1",
    )
    for scale in (1, 2, 4, 8, 16):
        _register(
            f"fig6/scale{scale}",
            "fig6_scale",
            "scale 4" if scale == 4 else None,  # the text gives r = 4's top-1 only
            f"multi-task CGM-Net with HR/LR scale factor {scale}: ℓ1 and top-1",
            lambda p, s=scale: _ucf101_multitask(p, {"scale": s}, "table6/cgmul"),
            fresh=("upsampler",),  # CGMUL's weights depend on the scale
            column="top1",
        )
    # Table 2: self-supervised pretraining (YouTube-8M-style unlabeled folder) -> fine-tuning.
    # Left: top-1 on UCF101 / HMDB51 (the column is the dataset); right: Kinetics-400 with half or
    # the full labels (the column is the fraction).
    r101 = {"backbone": "r3d101"}
    _register(
        "table2/pretrain",
        "table2_selfsup",
        "Ours (3D-R101)*",
        "self-supervised pretraining of 3D-ResNet101 CGM-Net on unlabeled videos",
        lambda p: _config(
            p, stage="selfsup", dataset="videofolder", motion=True, model=r101 if p == "paper" else {}
        ),
    )
    for ds, frac, tag in (
        ("ucf101", 1.0, ""),
        ("hmdb51", 1.0, ""),
        ("kinetics400", 1.0, "_full"),
        ("kinetics400", 0.5, "_half"),
    ):
        table, column = ("table2_labels", tag[1:]) if tag else ("table2_selfsup", ds)
        _register(
            f"table2/{ds}{tag}_scratch",
            table,
            "3D-R101",
            f"plain 3D-ResNet101 trained from scratch on {ds} ({tag[1:] or 'full'} labels)",
            lambda p, ds=ds, frac=frac: _classifier(
                p, ds, model=r101 if p == "paper" else {}, labeled_fraction=frac
            ),
            column=column,
        )
        _register(
            f"table2/{ds}{tag}_pretrained",
            table,
            "Ours (3D-R101)" + ("" if tag else "*"),
            f"CGM-Net fine-tuned (multi-task) on {ds} ({tag[1:] or 'full'} labels) from table2/pretrain",
            lambda p, ds=ds, frac=frac: _multitask(
                p, ds, r101 if p == "paper" else {}, "table2/pretrain", labeled_fraction=frac
            ),
            column=column,
        )
    # Tables 3-5: backbones on Kinetics-400/600 and UCF101/HMDB51, each pretrained self-supervised
    # (paper: on Y500K; smoke: on SynthMotion). Table 5 starts from the Kinetics-400 model in the
    # paper profile and, to stay within minutes, from the self-supervised model in smoke.
    backbones = {"r3d50": "3D-ResNet50", "rx3d101": "3D-ResNeXt101", "slowfast": "SlowFast 16×8"}
    for short, label in backbones.items():
        bb = "slowfast_r101" if short == "slowfast" else short
        _register(
            f"pretrain/{short}",
            "table3_kinetics400",
            f"Ours ({label})",
            f"self-supervised pretraining of the {label} CGM-Net on unlabeled videos (Y500K)",
            lambda p, bb=bb: _config(
                p, stage="selfsup", dataset="videofolder", motion=True, model={"backbone": bb}
            ),
        )
        for table, ds in (("table3", "kinetics400"), ("table4", "kinetics600")):
            _register(
                f"{table}/{short}",
                f"{table}_{ds}",
                f"Ours ({label})",
                f"multi-task {label} CGM-Net on {ds}, pretrained on unlabeled videos",
                lambda p, bb=bb, ds=ds, short=short: _multitask(p, ds, {"backbone": bb}, f"pretrain/{short}"),
                column="top1",
            )
    for ds in ("ucf101", "hmdb51"):
        _register(
            f"table5/{ds}",
            "table5_ucf_hmdb",
            "Ours (32), 3D-ResNeXt101",
            f"3D-ResNeXt101 CGM-Net (32 frames) fine-tuned on {ds} from the Kinetics-400 model",
            lambda p, ds=ds: _multitask(
                p,
                ds,
                {"backbone": "rx3d101", **({"clip_len": 32} if p == "paper" else {})},
                "table3/rx3d101" if p == "paper" else "pretrain/rx3d101",
            ),
            column=ds,
        )


def _classifier(profile: str, dataset: str, *, model: dict | None = None, **recipe) -> ExperimentConfig:
    """A plain classifier: cross-entropy on the backbone head only (Tables 2, 7, 8)."""
    return _config(
        profile,
        stage="supervised",
        dataset=dataset,
        action=True,
        model={**(model or {}), "heads": ("backbone",)},
        pipelines=("backbone",),
        **recipe,
    )


def _multitask(
    profile: str, dataset: str, model: dict, pretrain_from: str | None, **recipe
) -> ExperimentConfig:
    """Multi-task CGM-Net (motion and action losses) starting from `pretrain_from`'s weights."""
    return _config(
        profile,
        stage="multitask",
        dataset=dataset,
        action=True,
        model=model,
        pretrain_from=pretrain_from,
        **recipe,
    )


def _ucf101_multitask(profile: str, model: dict, smoke_pretrain: str) -> ExperimentConfig:
    """Table 7 / Fig. 6: multi-task on UCF101, motion evaluated too; smoke starts from
    `smoke_pretrain` (a self-supervised run), the paper profile from scratch."""
    return _multitask(profile, "ucf101", model, smoke_pretrain if profile == "smoke" else None, motion=True)


_define()
