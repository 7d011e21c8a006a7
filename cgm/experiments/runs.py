"""Running an experiment: data and model of a config, training, evaluation, and the cache.

`run(name, profile, **overrides)` trains and evaluates, or loads the cached result from
`results/runs/<name>/<config-hash>/` (config.json, metrics.json, result.json, checkpoint.pt).
Any run with the same config hash, under any name, is reused: Table 4's smoke runs are Table 3's.
Fine-tuning runs with `pretrain_from` run (or load) their pretraining experiment first and start
from its weights.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from cgm import checkpoints, settings
from cgm import distributed as cgm_dist
from cgm.data import build_dataset
from cgm.data.registry import LAYOUTS
from cgm.errors import CacheError, check_path
from cgm.network import HEADS, CGMConfig, CGMNet
from cgm.protocols import evaluate_action, evaluate_motion
from cgm.train import Trainer

from .config import EMBEDDED, DataSpec, ExperimentConfig, config_hash
from .environment import environment, pinned_threads
from .integrity import SHA_KEY, check_checkpoint, checkpoint_sha256, read_run
from .lock import run_lock
from .registry import get_experiment, resolve

ROOT = Path(__file__).resolve().parents[2]
PACKAGE_RUNS = ROOT / "results" / "runs"
# The run cache: the package's results/runs/, or the folder CGM_RUNS_DIR names (read at import,
# so that a notebook executed by papermill and every rank under torchrun use it too).
RUNS = settings.read().runs_dir
# Runs recomputed where a committed run sits (e.g. for weights it did not keep): git-ignored,
# searched after RUNS, never written over a committed result (docs/decisions/001-committed-runs.md).
LOCAL_RUNS = ROOT / "results" / "local-runs"


def local_runs(runs_dir: str | os.PathLike) -> Path:
    """The folder of local recomputations beside the cache `runs_dir`: results/local-runs/ for
    the package's cache, `<runs_dir>/local-runs/` for another one."""
    runs_dir = Path(runs_dir)
    return LOCAL_RUNS if runs_dir.resolve() == PACKAGE_RUNS.resolve() else runs_dir / "local-runs"


def is_committed(folder: str | os.PathLike) -> bool:
    """Whether the run folder holds a committed result: its result.json is tracked by git. Where
    git cannot say (no git, not a work tree), runs under the package's results/runs/ count as
    committed (a release's results) and others do not."""
    folder = Path(folder)
    if not (folder / "result.json").exists():
        return False
    try:
        done = subprocess.run(
            ["git", "-C", str(folder), "ls-files", "--error-unmatch", "--", "result.json"],
            capture_output=True,
            timeout=30,
        )
    except (OSError, subprocess.SubprocessError):
        done = None
    if done is not None and done.returncode in (0, 1):  # 1: in a work tree, not tracked
        return done.returncode == 0
    return folder.resolve().is_relative_to(PACKAGE_RUNS.resolve())


# --------------------------------------------------------------------------- data and models


def root_dataset(name: str) -> str:
    """The dataset whose root `name` reads: UCF-Flow and UCF-Pred are UCF101 videos."""
    return {"ucf_flow": "ucf101", "ucf_pred": "ucf101"}.get(name, name)


def _root(spec: DataSpec, cfg: ExperimentConfig) -> str | None:
    """The spec's own root; else the training set's root when the spec reads the same dataset
    (its test split, or UCF-Flow/-Pred of a UCF101 run), never another dataset's (a pretraining
    run on a video folder does not read UCF-Flow from that folder)."""
    if spec.name in EMBEDDED:
        return None
    if spec.data_root:
        return spec.data_root
    return cfg.data.data_root if root_dataset(spec.name) == root_dataset(cfg.data.name) else None


def check_device(device: str) -> None:
    """A ValueError before any work when `device` names a GPU this machine does not have."""
    if str(device).startswith("cuda"):
        if not torch.cuda.is_available():
            raise ValueError(
                f"device {device!r} requested but CUDA is not available here; use device='cpu' "
                "(CLI: --device cpu) or run on a machine with a GPU"
            )
        index = torch.device(device).index
        if index is not None and index >= torch.cuda.device_count():
            raise ValueError(f"device {device!r}: this machine has {torch.cuda.device_count()} GPU(s)")


@dataclass(frozen=True)
class DataRoot:
    """One real dataset a run reads: where its root is (None: not given), the variable that gives
    it, the layout expected there, and whether it is the training set's root (`data_root`)."""

    dataset: str
    split: str
    role: str  # "training set" or "evaluation set <tag>"
    root: str | None
    env: str
    layout: str
    training_root: bool

    @property
    def present(self) -> bool:
        return self.root is not None and Path(self.root).expanduser().is_dir()

    @property
    def problem(self) -> str:
        return "" if self.present else "is not given" if self.root is None else f"{self.root} is not a folder"


def data_roots(cfg: ExperimentConfig) -> list[DataRoot]:
    """Every real (not embedded) dataset of the run, its training set first, and its root."""
    out = []
    sets = [("training set", cfg.data)] + [(f"evaluation set {t}", s) for _, t, s in cfg.eval.sets()]
    for role, spec in sets:
        if spec.name not in EMBEDDED:
            out.append(
                DataRoot(
                    dataset=spec.name,
                    split=spec.split,
                    role=role,
                    root=_root(spec, cfg),
                    env=f"CGM_{root_dataset(spec.name).upper()}_ROOT",
                    layout=LAYOUTS["kinetics" if spec.name.startswith("kinetics") else spec.name],
                    training_root=root_dataset(spec.name) == root_dataset(cfg.data.name),
                )
            )
    return out


def check_data(cfg: ExperimentConfig) -> None:
    """Every real dataset the run needs has a data root that is a folder, or a ValueError saying
    which dataset, how to give its root, and the layout expected (before any work starts)."""
    for r in data_roots(cfg):
        if r.root is not None:  # a NUL byte or an over-long path: named as such, not "not a folder"
            check_path(r.root, f"dataset {r.dataset!r}: data root")
        if not r.present:
            how = (
                f"pass data_root=... (CLI: --data-root) or set {r.env}"
                if r.training_root
                else f"set {r.env} (it is not the training set {cfg.data.name!r}, whose data_root it does not read)"
            )
            raise ValueError(
                f"dataset {r.dataset!r}: data root {r.problem}; {how}. Expected layout:\n  "
                + r.layout.replace("\n", "\n  ")
            )


def build_data(spec: DataSpec, cfg: ExperimentConfig, *, future: bool):
    spec = DataSpec.from_dict(spec)
    return build_dataset(
        spec.name,
        spec.split,
        data_root=_root(spec, cfg),
        clip_len=cfg.model.clip_len,
        size=cfg.model.size,
        future=future,
        **spec.kw,
    )


def build_model(cfg: ExperimentConfig) -> CGMNet:
    """CGM-Net of the config, initialised under the run's seed."""
    torch.manual_seed(cfg.train.seed)
    return CGMNet(cfg.model)


def fresh_heads(model_cfg: CGMConfig, stored: dict | None) -> tuple[str, ...]:
    """The action-head modules a model starts fresh when initialised from weights of the config
    `stored`: heads one of the two models lacks (a self-supervised run has none), or all of them
    when the class counts differ. Nothing else may differ (checkpoints.load_weights)."""
    if stored is None:
        return ()
    ours, theirs = set(model_cfg.heads), set(stored.get("heads", HEADS))
    changed = ours ^ theirs if stored.get("num_classes") == model_cfg.num_classes else ours | theirs
    return tuple(f"{h}_head" for h in HEADS if h in changed)


def init_from_checkpoint(
    model: CGMNet,
    path: str | os.PathLike,
    *,
    skip: tuple[str, ...] | None = None,
    fresh: tuple[str, ...] = (),
) -> tuple[list[str], list[str]]:
    """Start `model` from another run's weights (weights_only). `skip`: the modules expected to
    start fresh; by default the action heads that `fresh_heads` names from the checkpoint's model
    config, plus `fresh` (the experiment's, `Experiment.fresh`). Anything else that does not fit
    raises a CheckpointError listing it. Returns (loaded, left as initialised) tensor names."""
    if skip is None:
        skip = fresh_heads(model.cfg, checkpoints.load(path).get("model_config")) + tuple(fresh)
    report = checkpoints.load_weights(model, path, skip=skip)
    return report.loaded, report.left_random


def model_from_checkpoint(model_cfg: CGMConfig, path: str | os.PathLike) -> CGMNet:
    """CGM-Net of `model_cfg` with every tensor from the checkpoint at `path` (evaluation), or a
    CheckpointError naming the model-config fields in which the checkpoint differs."""
    stored = checkpoints.load(path).get("model_config")
    if stored:
        differ = checkpoints.config_differences(stored, model_cfg.to_dict())
        if differ:
            raise checkpoints.CheckpointError(
                f"checkpoint {path} was trained with another model config: "
                + "; ".join(differ)
                + " (checkpoint -> this run)"
            )
    model = CGMNet(model_cfg)
    checkpoints.load_weights(model, path)
    return model


def eval_runtime(cfg: ExperimentConfig, memory_gib: float | None = None, workers: int | None = None) -> dict:
    """How evaluation is computed, which never changes what it measures (so it is no part of a
    run's identity): the memory budget of a forward pass in GiB (None: the device's default,
    `cgm.memory`) and the decoding workers. Unset, they come from CGM_EVAL_MEMORY_GIB and
    CGM_EVAL_WORKERS (the CLI's --eval-memory-gib / --eval-workers set them for the whole chain),
    else the device default and the config's training `num_workers`."""
    env = settings.read()
    if memory_gib is None:
        memory_gib = env.eval_memory_gib
    if workers is None:
        workers = env.eval_workers
    return {"memory_gib": memory_gib, "workers": cfg.train.num_workers if workers is None else workers}


def evaluate_config(
    model,
    cfg: ExperimentConfig,
    *,
    device: str = "cpu",
    memory_gib: float | None = None,
    workers: int | None = None,
) -> dict[str, float]:
    """The config's evaluation protocols on `model`: metrics named "<dataset tag>/<metric>".
    `memory_gib`, `workers`: see eval_runtime. Under torch.distributed every rank calls this,
    scores its share of each set, and gets the metrics of the whole set."""
    check_device(device)
    how = {"batch_size": cfg.eval.batch_size, "device": device, **eval_runtime(cfg, memory_gib, workers)}
    results: dict[str, float] = {}
    for kind, tag, spec in cfg.eval.sets():
        ds = build_data(spec, cfg, future=kind == "motion")
        if kind == "motion":
            r = evaluate_motion(model, ds, max_clips=spec.max_clips, **how)
        else:
            if len(ds.classes) > cfg.model.num_classes:  # labels the model's heads cannot score
                raise ValueError(
                    f"action evaluation set {tag!r} ({spec.name}) has {len(ds.classes)} classes but the "
                    f"model scores num_classes={cfg.model.num_classes}; evaluate a model of "
                    f"num_classes={len(ds.classes)}"
                )
            r = evaluate_action(model, ds, spec.pipelines, max_clips=spec.max_clips, **how)
        results.update({f"{tag}/{k}": v for k, v in r.items()})
    return results


def train_experiment(
    cfg: ExperimentConfig,
    out_dir: str | os.PathLike,
    *,
    resume: bool = False,
    init_from: str | os.PathLike | None = None,
    fresh: tuple[str, ...] = (),
    progress: bool | None = None,
) -> Trainer:
    """Train the config's model into out_dir (checkpoint.pt, metrics.csv, tb/), starting from the
    weights at `init_from` (`fresh`: see init_from_checkpoint). Returns the Trainer."""
    check_device(cfg.train.device)
    check_data(cfg)
    train_set = build_data(cfg.data, cfg, future=True)
    if cfg.train.stage != "selfsup" and len(train_set.classes) != cfg.model.num_classes:
        raise ValueError(
            f"{cfg.data.name} has {len(train_set.classes)} classes but the model "
            f"num_classes={cfg.model.num_classes}; set num_classes={len(train_set.classes)}"
        )
    model = build_model(cfg)
    if init_from is not None:
        init_from_checkpoint(model, init_from, fresh=fresh)
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
    checkpoint_sha256: str | None = None  # recorded in result.json when the run was written

    @property
    def checkpoint(self) -> Path | None:
        p = self.path / "checkpoint.pt"
        return p if p.is_file() else None

    def verified_checkpoint(self) -> Path:
        """The run's checkpoint after its integrity check (`integrity.check_checkpoint`), or a
        CacheError / FileNotFoundError naming it."""
        if self.checkpoint is None:
            raise FileNotFoundError(
                f"run {self.name} ({self.hash}) kept no checkpoint; call run(..., need_checkpoint=True)"
            )
        return check_checkpoint(self.checkpoint, self.checkpoint_sha256)

    def load_model(self, device: str = "cpu") -> CGMNet:
        """The trained CGM-Net (eval mode) from the run's checkpoint."""
        return (
            model_from_checkpoint(CGMConfig.from_dict(self.config["model"]), self.verified_checkpoint())
            .to(device)
            .eval()
        )

    def __repr__(self) -> str:
        return (
            f"RunResult({self.name!r}, profile={self.profile!r}, dataset={self.dataset!r}, "
            f"hash={self.hash!r}, source={self.source!r}, metrics={len(self.metrics)} values)"
        )


def _read_result(path: Path, name: str, source: str) -> RunResult:
    r, config = read_run(path)  # the integrity check: schema, finite metrics, the hash recomputed
    return RunResult(
        name=name,
        profile=r["profile"],
        hash=r["hash"],
        dataset=r["dataset"],
        metrics=r["metrics"],
        train=r["train"],
        config=config,
        source=source,
        path=path,
        checkpoint_sha256=r.get(SHA_KEY),
    )


def find_cached(h: str, runs_dir: Path = RUNS, *, need_checkpoint: bool = False) -> Path | None:
    """A finished run with config hash `h` under any experiment name, in `runs_dir` first, then
    in its local recomputations (`local_runs`), or None."""
    for base in (Path(runs_dir), local_runs(runs_dir)):
        for result in sorted(base.glob(f"*/*/{h}/result.json")):
            if not need_checkpoint or (result.parent / "checkpoint.pt").is_file():
                return result.parent
    return None


# Overrides a fine-tuning run hands to its pretraining run: the architecture must match for the
# weights to load, and device/steps/batch/data size keep a scaled-down chain scaled down throughout.
PRETRAIN_PASS = ({f.name for f in dataclasses.fields(CGMConfig)} - {"num_classes", "heads"}) | {
    "device",
    "steps",
    "batch_size",
    "seed",
    "n",
    "max_clips",
    "amp",
    "compile",
    "num_workers",
}


def pretrain_overrides(overrides: dict) -> dict:
    """The overrides a fine-tuning run passes on to its pretraining run (PRETRAIN_PASS)."""
    return {k: v for k, v in overrides.items() if k.split("__")[-1] in PRETRAIN_PASS}


def run(
    name: str,
    /,
    profile: str = "smoke",
    *,
    need_checkpoint: bool = False,
    force: bool = False,
    runs_dir: str | os.PathLike = RUNS,
    progress: bool = False,
    **overrides,
) -> RunResult:
    """Train and evaluate experiment `name`, or load its cached result (same config hash).

    `need_checkpoint`: recompute when the cached run kept no checkpoint. `force`: recompute.
    `overrides`: config changes (see apply_overrides); they change the hash. A fine-tuning run
    passes those in PRETRAIN_PASS on to its pretraining run.
    """
    runs_dir = Path(runs_dir)
    cfg = resolve(name, profile, **overrides)
    pre = None
    if cfg.pretrain_from:
        passed = pretrain_overrides(overrides)
        # Its hash first (a cached result without weights is enough for that): a finished
        # fine-tuning run is then read without needing the pretraining's checkpoint.
        pre = run(cfg.pretrain_from, profile, runs_dir=runs_dir, progress=progress, **passed)
    h = config_hash(cfg, pre.hash if pre else None)
    out = runs_dir / name / h
    if not force:
        for where in ([out] if (out / "result.json").is_file() else []) + [
            find_cached(h, runs_dir, need_checkpoint=need_checkpoint)
        ]:
            if where is not None and (not need_checkpoint or (where / "checkpoint.pt").is_file()):
                local = where.is_relative_to(local_runs(runs_dir))
                try:
                    cached = _read_result(
                        where,
                        name,
                        "cache"
                        if where == out
                        else f"cache:{where.parent.parent.name}/{where.parent.name}"
                        + (" (local)" if local else ""),
                    )
                    if need_checkpoint:
                        cached.verified_checkpoint()
                except CacheError as err:
                    fix = f"git checkout -- {where}" if is_committed(where) else f"delete {where}"
                    raise CacheError(
                        f"{err}. Not used: restore it ({fix}), or recompute it with force=True (CLI --force)"
                    ) from None
                return cached
    if is_committed(out):  # never replaced: computed into the local folder instead
        out = local_runs(runs_dir) / name / h
    check_device(cfg.train.device)  # before any work, the pretraining's weights included
    check_data(cfg)
    if pre is not None and pre.checkpoint is None:  # training needs the pretrained weights
        pre = run(
            cfg.pretrain_from, profile, need_checkpoint=True, runs_dir=runs_dir, progress=progress, **passed
        )
    info = cgm_dist.env_world()
    if not info.is_main:
        return _compute(name, profile, cfg, h, pre, out, force=force, progress=progress)
    with run_lock(out.with_name(f".{h}.lock"), f"run {name} ({h}) in {out.parent}"):
        return _compute(name, profile, cfg, h, pre, out, force=force, progress=progress)


def _compute(
    name: str,
    profile: str,
    cfg: ExperimentConfig,
    h: str,
    pre: RunResult | None,
    out: Path,
    *,
    force: bool,
    progress: bool,
) -> RunResult:
    """Train and evaluate into `.<hash>.partial` beside `out` (resumed if an interrupted
    computation left a training checkpoint there), then put it in place of `out` whole: an
    interrupted recompute never loses the cached run. CPU work runs under `pinned_threads` and
    result.json records the `environment` (threads, versions, commit)."""
    info = cgm_dist.env_world()
    work = out.with_name(f".{h}.partial")
    if info.is_main:
        if force and work.exists():
            shutil.rmtree(work)
        work.mkdir(parents=True, exist_ok=True)
        (work / "config.json").write_text(
            json.dumps(
                {
                    **cfg.to_dict(),
                    "profile": profile,
                    "name": name,
                    "pretrain_hash": pre.hash if pre else None,
                },
                indent=1,
                default=str,
            )
        )
        (work / "result.json").unlink(missing_ok=True)
        ckpt = work / "checkpoint.pt"
        if ckpt.is_file() and not checkpoints.is_training_state(checkpoints.load(ckpt)):
            ckpt.unlink()  # weights of a finished computation that was not put in place: train again
    cgm_dist.barrier()
    with pinned_threads(cfg.train.device):  # a rerun on the same machine gives the same numbers
        start = time.time()
        trainer = train_experiment(
            cfg,
            work,
            resume=True,
            progress=progress,
            init_from=pre.verified_checkpoint() if pre else None,
            fresh=get_experiment(name).fresh,
        )
        seconds = time.time() - start
        device = str(trainer.device)
        metrics = evaluate_config(trainer.model, cfg, device=device)  # every rank its share
        env = environment()  # after training: the threads it ran with, the allocator the Trainer set
        env["autocast"] = trainer.amp  # what it trained under (cgm.train.effective_amp)
    train = {
        **(trainer.history[-1] if trainer.history else {}),
        "seconds": seconds,
        "steps": trainer.step,
        "device": device,
        "world_size": info.world_size,
    }
    if info.is_main:
        (work / "metrics.json").write_text(json.dumps(trainer.history, indent=1))
        checkpoints.slim(work / "checkpoint.pt")
        sha = checkpoint_sha256(work / "checkpoint.pt")
        (work / "result.json").write_text(
            json.dumps(
                {
                    "name": name,
                    "profile": profile,
                    "hash": h,
                    "dataset": cfg.data.name,
                    "metrics": metrics,
                    "train": train,
                    SHA_KEY: sha,
                    "torch": torch.__version__,
                    "environment": env,
                    "created": time.strftime("%Y-%m-%dT%H:%M:%S"),
                },
                indent=1,
            )
        )
        _replace_folder(work, out)
    cgm_dist.barrier()
    return RunResult(
        name=name,
        profile=profile,
        hash=h,
        dataset=cfg.data.name,
        metrics=metrics,
        train=train,
        config=json.loads((out / "config.json").read_text()) if info.is_main else {},
        source="computed",
        path=out,
        checkpoint_sha256=sha if info.is_main else None,
    )


def _replace_folder(new: Path, target: Path) -> None:
    """Put the folder `new` at `target`, the old `target` (if any) moved aside first and removed
    after: at no moment is a half-written folder at `target`."""
    old = target.with_name(f".{target.name}.old.{os.getpid()}")
    if target.exists():
        os.replace(target, old)
    os.replace(new, target)
    if old.exists():
        shutil.rmtree(old)
