"""Training (§3.5, §4): one Trainer for both of the paper's stages.

- `selfsup`: self-supervised motion learning, Eq. 7 with λ1 = 1, λ2 = 0 (Table 1, pretraining).
- `multitask`: motion + action classification, λ1 = 1, λ2 = 10 (Tables 2-8 fine-tuning).
- `supervised`: the plain backbone baseline (cross-entropy on the backbone head only; the
  "Backbone"/"Baseline" rows of Tables 7-8). Not a stage of CGM-Net, the baseline it is compared to.

Adam at lr 1e-3 with a step decay every `decay_every` epochs (paper: 50). The data order is a
pure function of (seed, epoch), and each item's random draws of (seed, epoch, index) (the trainer
hands every item its epoch: `cgm.data.seeding`), so a run resumed from a checkpoint continues
bitwise-identically on the same machine. Checkpoints hold only tensors and plain types
(`torch.load(..., weights_only=True)` works) and are written atomically.
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import math
import os
import random
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from tqdm.auto import tqdm

from cgm import allocator, checkpoints
from cgm import distributed as cgm_dist
from cgm.data.seeding import SeededItems, item_seed  # noqa: F401  (item_seed: old import path)
from cgm.errors import NonFiniteLossError
from cgm.losses import WEIGHTINGS, cgm_loss

STAGES = ("selfsup", "multitask", "supervised")
AMP_MODES = ("none", "bf16", "fp16")
# λ1 (LR reconstruction) and λ2 (classification) of Eq. 7 per stage (§4.1, §4.2).
STAGE_LAMBDAS = {"selfsup": (1.0, 0.0), "multitask": (1.0, 10.0), "supervised": (0.0, 1.0)}
CHECKPOINT = "checkpoint.pt"
METRICS_CSV = "metrics.csv"
# Fields that change how a run is computed, not what it computes: left out of the run's hash
# (cgm.experiments.config) and free to change when a run resumes.
UNHASHED_FIELDS = (
    "accumulate",
    "num_workers",
    "log_every",
    "checkpoint_every",
    "checkpoint_minutes",
    "eval_every",
    "progress",
    "tensorboard",
)
# Fields that may differ between a run and its resumption (they do not change the trajectory).
RESUMABLE_CHANGES = {"steps", "epochs", "device", *UNHASHED_FIELDS}


# --------------------------------------------------------------------------- configuration


@dataclass(frozen=True)
class TrainConfig:
    """How to train. Defaults are the paper's optimiser settings; sizes come from the experiment.

    stage: selfsup | multitask | supervised (see module docstring); sets λ1, λ2 of Eq. 7.
    lr, decay_every, decay_factor: Adam's initial lr, decayed by `decay_factor` every
        `decay_every` epochs (paper: 1e-3 and 50; the factor is not stated, 0.1 is our default).
    batch_size: the global batch (split over processes under torchrun).
    accumulate: split each process's share of the batch into this many micro-batches, each
        through forward and backward on its own, with one optimizer step per batch (gradient
        accumulation). The global batch and the schedule stay the same; BatchNorm normalises
        over micro-batches, as it does over each process's share under DDP, so, like the world
        size, it is left out of the run's hash. `cgm plan` says which value fits a GPU.
    steps / epochs: length of the run; `steps` wins when both are given.
    amp: none | bf16 | fp16 autocast (fp16 needs CUDA; it adds a GradScaler). bf16 on a CPU
        without native bf16 trains in float32, with a warning (`effective_amp`).
    compile: wrap the model in torch.compile (explicit; off by default).
    checkpoint_every: write DIR/checkpoint.pt every N steps (and at the end); a killed run
        loses at most N steps.
    checkpoint_minutes: also write it when this many minutes have passed since the last one
        (0 = off): a killed run loses at most that much time however long its steps take.
    labeled_fraction: train on this fraction of the training set (Table 2's half vs full data),
        a subset fixed by `seed`.
    sync_bn: convert BatchNorm to SyncBatchNorm under DDP.
    grad_clip: clip the global gradient norm to this value (0 = off; the paper does not clip).
    weighting: per-pixel weights of the reconstruction losses, "uniform" (Eq. 6) or "motion"
        (cgm.losses.photometric_loss; the laptop profile's, see docs/training.md).
    smoothness, compactness, census: weights of the regularisers of `cgm.losses.cgm_loss` that
        are not the paper's (0 = off): edge-aware smoothness of the maps' flow, the HR filters'
        spread around their mean displacement, a census photometric term (docs/training.md,
        "Motion maps that are motion").
    """

    stage: str = "selfsup"
    lr: float = 1e-3
    decay_every: int = 50
    decay_factor: float = 0.1
    batch_size: int = 64
    accumulate: int = 1
    steps: int | None = None
    epochs: int | None = None
    num_workers: int = 0
    amp: str = "none"
    compile: bool = False
    checkpoint_every: int = 1000
    checkpoint_minutes: float = 20.0
    seed: int = 0
    device: str = "cpu"
    log_every: int = 10
    eval_every: int = 0
    labeled_fraction: float = 1.0
    sync_bn: bool = False
    grad_clip: float = 0.0
    weighting: str = "uniform"
    smoothness: float = 0.0
    compactness: float = 0.0
    census: float = 0.0
    progress: bool = True
    tensorboard: bool = True

    def __post_init__(self):
        _check_types(self)
        if self.stage not in STAGES:
            raise ValueError(f"unknown stage {self.stage!r}; valid: {', '.join(STAGES)}")
        if self.amp not in AMP_MODES:
            raise ValueError(f"unknown amp {self.amp!r}; valid: {', '.join(AMP_MODES)}")
        if self.weighting not in WEIGHTINGS:
            raise ValueError(f"unknown weighting {self.weighting!r}; valid: {', '.join(WEIGHTINGS)}")
        for name in ("smoothness", "compactness", "census"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0 (0 = off), got {getattr(self, name)}")
        try:
            device_type = torch.device(self.device).type
        except RuntimeError:
            device_type = None
        if device_type not in ("cpu", "cuda"):
            raise ValueError(f"device {self.device!r} is not supported; valid: cpu, cuda, cuda:N")
        if self.amp == "fp16" and device_type != "cuda":
            raise ValueError(
                "amp='fp16' needs a CUDA device (float16 autocast with a GradScaler); "
                "on CPU use amp='none' or amp='bf16'"
            )
        if self.steps is None and self.epochs is None:
            raise ValueError("give the run's length: steps=N or epochs=N")
        for name in ("steps", "epochs"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ValueError(f"{name} must be >= 1, got {value}")
        for name in ("batch_size", "accumulate", "decay_every", "checkpoint_every", "log_every"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if not 0.0 < self.labeled_fraction <= 1.0:
            raise ValueError(f"labeled_fraction must be in (0, 1], got {self.labeled_fraction}")
        if self.checkpoint_minutes < 0:
            raise ValueError(f"checkpoint_minutes must be >= 0 (0 = off), got {self.checkpoint_minutes}")
        if self.lr <= 0 or not 0 < self.decay_factor <= 1:
            raise ValueError(f"need lr > 0 and 0 < decay_factor <= 1, got {self.lr}, {self.decay_factor}")
        if self.num_workers < 0 or self.eval_every < 0 or self.grad_clip < 0 or self.seed < 0:
            raise ValueError(
                f"num_workers, eval_every, grad_clip and seed must be >= 0, got {self.num_workers}, "
                f"{self.eval_every}, {self.grad_clip}, {self.seed}"
            )

    @property
    def lambda_lr(self) -> float:
        """λ1 of Eq. 7."""
        return STAGE_LAMBDAS[self.stage][0]

    @property
    def lambda_cls(self) -> float:
        """λ2 of Eq. 7."""
        return STAGE_LAMBDAS[self.stage][1]


def _check_types(cfg) -> None:
    """Every field of a config dataclass has its annotated type (int, float, bool, str, or one of
    those | None), and every float is finite: a ValueError naming the field otherwise."""
    for f in dataclasses.fields(cfg):
        value, kinds = getattr(cfg, f.name), str(f.type).replace(" ", "").split("|")
        if value is None and "None" in kinds:
            continue
        if "bool" in kinds:
            ok = isinstance(value, bool)
        elif "int" in kinds:
            ok = isinstance(value, int) and not isinstance(value, bool)
        elif "float" in kinds:
            ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
        else:
            ok = isinstance(value, str) if "str" in kinds else True
        if not ok:
            finite = " and finite" if "float" in kinds else ""
            raise ValueError(f"{type(cfg).__name__}.{f.name} must be {f.type}{finite}, got {value!r}")


# Fields added after the committed runs were cached, with their defaults: config_dict leaves them
# out at the default, so that those runs' config hashes stay valid.
ADDED_FIELDS = {"accumulate": 1, "weighting": "uniform", "smoothness": 0.0, "compactness": 0.0, "census": 0.0}


def config_dict(cfg: Any) -> dict:
    """A config dataclass (or dict) as a plain dict of JSON- and weights_only-safe values."""
    if cfg is None:
        return {}
    data = dataclasses.asdict(cfg) if dataclasses.is_dataclass(cfg) else dict(cfg)
    return {
        k: list(v) if isinstance(v, tuple) else v
        for k, v in data.items()
        if not (k in ADDED_FIELDS and v == ADDED_FIELDS[k])
    }


# --------------------------------------------------------------------------- data order


def training_subset(n: int, *, fraction: float, seed: int) -> list[int]:
    """The indices trained on: all of them, or a seed-fixed random `fraction` (sorted)."""
    if fraction >= 1.0:
        return list(range(n))
    g = torch.Generator().manual_seed(seed + 7_919)
    keep = max(1, round(n * fraction))
    return sorted(torch.randperm(n, generator=g)[:keep].tolist())


def epoch_batches(subset: Sequence[int], *, batch_size: int, seed: int, epoch: int) -> list[list[int]]:
    """The global batches of one epoch: a permutation seeded by (seed, epoch); last partial dropped."""
    g = torch.Generator().manual_seed(seed * 100_003 + epoch)
    order = [subset[i] for i in torch.randperm(len(subset), generator=g).tolist()]
    return [order[i : i + batch_size] for i in range(0, len(order) - batch_size + 1, batch_size)]


# --------------------------------------------------------------------------- checkpoints


def rng_state() -> dict:
    """torch, CUDA, numpy and python RNG states as tensors and plain types (weights_only-safe)."""
    _, keys, pos, has_gauss, gauss = np.random.get_state()
    version, py_state, py_gauss = random.getstate()
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "numpy": {
            "keys": torch.from_numpy(keys.astype(np.int64)),
            "pos": int(pos),
            "has_gauss": int(has_gauss),
            "cached_gaussian": float(gauss),
        },
        "python": {"version": version, "state": list(py_state), "gauss": py_gauss},
    }


def set_rng_state(state: dict) -> None:
    """Restore what rng_state() captured."""
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    n = state["numpy"]
    np.random.set_state(
        ("MT19937", n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["cached_gaussian"])
    )
    p = state["python"]
    random.setstate((p["version"], tuple(p["state"]), p["gauss"]))


def save_checkpoint(state: dict, path: str | os.PathLike) -> Path:
    """Write atomically through a per-process temporary file (`cgm.checkpoints.save`)."""
    return checkpoints.save(state, path)


def load_checkpoint(path: str | os.PathLike, map_location="cpu") -> dict:
    """Load a checkpoint with weights_only=True (`cgm.checkpoints.load`)."""
    return checkpoints.load(path, map_location=map_location)


unwrap = checkpoints.unwrap


# --------------------------------------------------------------------------- losses per stage


def supervised_loss(out, clip, labels):
    """Cross-entropy of the backbone head alone: the plain-backbone baseline."""
    loss = F.cross_entropy(out.logits["backbone"], labels)
    return loss, {"loss_cls": float(loss.detach())}


def stage_loss(cfg: TrainConfig, *, padding: str = "border") -> Callable:
    """The loss of `cfg.stage` as loss_fn(out, clip, labels) -> (loss, metrics); `padding` is the
    warp's (the model config's)."""
    if cfg.stage == "supervised":
        return supervised_loss

    def loss_fn(out, clip, labels):
        return cgm_loss(
            out,
            clip,
            labels if cfg.lambda_cls > 0 else None,
            lambda_lr=cfg.lambda_lr,
            lambda_cls=cfg.lambda_cls,
            padding=padding,
            weighting=cfg.weighting,
            smoothness=cfg.smoothness,
            compactness=cfg.compactness,
            census=cfg.census,
        )

    return loss_fn


# --------------------------------------------------------------------------- the trainer


def cpu_bf16_native() -> bool:
    """Whether this CPU computes bf16 dot products in hardware (AVX512-BF16 or AMX): where bf16
    autocast speeds CPU convolutions up (1.9x for CGMUL's conv on an AMD EPYC with AVX512-BF16)."""
    return torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported()


def effective_amp(amp: str) -> str:
    """The autocast a CPU run trains under for config `amp`: bf16 only where the CPU has native
    bf16 dot products, float32 ("none") otherwise, with a RuntimeWarning that says so.

    Why not bf16 everywhere: without AVX512-BF16/AMX, oneDNN's bf16 convolutions are emulated,
    and on a CPU without AVX-512 at all PyTorch runs bf16 convolutions by its reference loops:
    the laptop `table1/cgm` step took 57 s in bf16 against 3.7 s in float32 on an AVX2-only AMD
    EPYC (one thread, profiler on; docs/performance.md). The numbers of the two precisions agree
    to bf16 rounding (the committed laptop model: l1 0.013260 in bf16, 0.013271 in float32)."""
    if amp != "bf16" or cpu_bf16_native():
        return amp
    warnings.warn(
        "amp='bf16' on a CPU without AVX512-BF16 or AMX: bf16 convolutions are emulated there "
        "(and tens of times slower than float32 without AVX-512; this CPU's best: "
        f"{torch.backends.cpu.get_cpu_capability()}), so "
        "this run trains in float32 (amp='none'); results record it as `autocast`",
        RuntimeWarning,
        stacklevel=3,
    )
    return "none"


class Trainer:
    """Trains `model` on `dataset` per `cfg`, writing DIR/checkpoint.pt, DIR/metrics.csv, DIR/tb.

    `dataset` items are dicts with `clip` (3, T+1, H, W) — frames 0..T-1 go into the model, 1..T
    are the targets — and `label` for the labelled stages. `loss_fn(out, clip, labels)` defaults
    to the stage's loss. `hooks` are evaluation callables `hook(model) -> dict[str, float]`, run
    on rank 0 every `eval_every` steps and at the end. `resume=True` continues from
    DIR/checkpoint.pt when it exists.
    """

    def __init__(
        self,
        model: nn.Module,
        dataset,
        cfg: TrainConfig,
        *,
        out_dir: str | os.PathLike,
        model_config: Any = None,
        loss_fn: Callable | None = None,
        hooks: Sequence[Callable[[nn.Module], dict]] = (),
        resume: bool = False,
    ):
        self.cfg, self.dataset, self.out_dir = cfg, dataset, Path(out_dir)
        self.model_config = config_dict(model_config)
        self.loss_fn = loss_fn or stage_loss(
            cfg, padding=getattr(getattr(model, "cfg", None), "padding", "border")
        )
        self.hooks = list(hooks)
        self._check(dataset, cfg)
        self.info = cgm_dist.init_distributed(cfg.device)
        self.local_batch = cgm_dist.check_global_batch(cfg.batch_size, self.info.world_size)
        if self.local_batch % cfg.accumulate:
            raise ValueError(
                f"accumulate={cfg.accumulate} must divide each process's batch of {self.local_batch} "
                f"(batch_size {cfg.batch_size} over {self.info.world_size} process(es))"
            )
        self.device = torch.device(cfg.device)
        if self.device.type == "cuda" and self.info.distributed:
            self.device = torch.device("cuda", self.info.local_rank)
        self.amp = cfg.amp  # the autocast this run trains under (see effective_amp)
        if self.device.type == "cpu":
            allocator.retain_freed_memory()  # each step reuses the last one's pages (cgm.allocator)
            self.amp = effective_amp(cfg.amp)

        self.subset = training_subset(len(dataset), fraction=cfg.labeled_fraction, seed=cfg.seed)
        self.steps_per_epoch = len(self.subset) // cfg.batch_size
        if self.steps_per_epoch < 1:
            raise ValueError(
                f"the training set has {len(self.subset)} clips, fewer than one batch "
                f"of {cfg.batch_size}; lower batch_size"
            )
        self.total_steps = cfg.steps if cfg.steps is not None else cfg.epochs * self.steps_per_epoch

        torch.manual_seed(cfg.seed + self.info.rank)
        np.random.seed((cfg.seed + self.info.rank) % 2**32)
        random.seed(cfg.seed + self.info.rank)
        model = model.to(self.device)
        if cfg.sync_bn and self.info.distributed:
            model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
        self.model = model  # the bare module: state_dicts without module./_orig_mod. prefixes
        runner = model
        if self.info.distributed:
            runner = nn.parallel.DistributedDataParallel(
                model, device_ids=[self.device.index] if self.device.type == "cuda" else None
            )
        self.runner = torch.compile(runner) if cfg.compile else runner
        self.optimizer = torch.optim.Adam(model.parameters(), lr=cfg.lr)
        self.scheduler = torch.optim.lr_scheduler.StepLR(
            self.optimizer, step_size=cfg.decay_every * self.steps_per_epoch, gamma=cfg.decay_factor
        )
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=self.amp == "fp16")
        self.step = self.epoch = self.position = 0
        self.history: list[dict] = []
        self.skipped: dict[int, set[str]] = {}  # epoch -> unreadable videos the data passed over
        self.last_checkpoint: Path | None = None
        self._saved_at = time.monotonic()  # checkpoint_minutes count from here
        if self.info.is_main and self.out_dir.is_dir():  # temporary files of a killed save
            checkpoints.clean_temporary(self.out_dir, CHECKPOINT)
        if resume and (self.out_dir / CHECKPOINT).is_file():
            self.load(self.out_dir / CHECKPOINT)
        self._writer = None
        self._csv_header: list[str] | None = None

    @staticmethod
    def _check(dataset, cfg: TrainConfig) -> None:
        if cfg.device.startswith("cuda") and not torch.cuda.is_available():
            raise ValueError(f"device {cfg.device!r} requested but CUDA is not available; use device='cpu'")
        if cfg.stage != "selfsup" and getattr(dataset, "classes", None) == []:
            raise ValueError(
                f"stage {cfg.stage!r} needs labels but the dataset is unlabeled "
                f"(no classes); use stage='selfsup' or a labelled dataset"
            )

    # ---- state

    def state_dict(self) -> dict:
        """Everything a resumed run needs, as tensors and plain types."""
        return {
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict(),
            "rng": rng_state(),
            "step": self.step,
            "epoch": self.epoch,
            "position": self.position,
            "world_size": self.info.world_size,
            "train_config": config_dict(self.cfg),
            "model_config": self.model_config,
        }

    def load(self, path: str | os.PathLike) -> None:
        """Continue from a checkpoint of the same run (same model config, same train config up to
        RESUMABLE_CHANGES), or a CheckpointError naming what differs."""
        state = load_checkpoint(path, map_location=self.device)
        if not checkpoints.is_training_state(state):
            raise checkpoints.CheckpointError(
                f"cannot resume {path}: it holds weights only (no optimizer state, step, configs); "
                "start a fresh run in another folder, or initialise from it instead of resuming"
            )
        changed = checkpoints.config_differences(
            state["train_config"], config_dict(self.cfg), ignore=RESUMABLE_CHANGES
        )
        if changed:
            raise checkpoints.CheckpointError(
                f"cannot resume {path}: its train config differs in {'; '.join(changed)} (checkpoint -> "
                f"this run); only {sorted(RESUMABLE_CHANGES)} may change between a run and its resumption"
            )
        changed = checkpoints.config_differences(state.get("model_config") or {}, self.model_config)
        if changed:
            raise checkpoints.CheckpointError(
                f"cannot resume {path}: it was trained with another model config: {'; '.join(changed)} "
                "(checkpoint -> this run)"
            )
        for key in ("step", "epoch", "position"):
            value = state.get(key)
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise checkpoints.CheckpointError(
                    f"cannot resume {path}: its {key} is {value!r}, expected an integer >= 0"
                )
        part = "model"
        try:  # a hand-made or damaged checkpoint: its parts of the wrong shape or type
            self.model.load_state_dict(state["model"])
            part = "optimizer"
            self.optimizer.load_state_dict(state["optimizer"])
            part = "scheduler"
            self.scheduler.load_state_dict(state["scheduler"])
            part = "scaler"
            if state.get("scaler"):
                self.scaler.load_state_dict(state["scaler"])
            part = "rng"
            set_rng_state({**state["rng"], "torch": state["rng"]["torch"].cpu()})
        except (KeyError, TypeError, ValueError, RuntimeError, IndexError, AttributeError) as err:
            first = (str(err).strip().splitlines() or [""])[0]
            raise checkpoints.CheckpointError(
                f"cannot resume {path}: its {part} state is malformed ({type(err).__name__}: {first}); "
                "start a fresh run in another folder"
            ) from None
        self.step, self.epoch, self.position = state["step"], state["epoch"], state["position"]
        self.last_checkpoint = Path(path)

    def save(self) -> Path | None:
        """Write DIR/checkpoint.pt on rank 0 (atomically), only when every weight is finite."""
        bad = [
            k
            for k, v in self.model.state_dict().items()
            if v.is_floating_point() and not torch.isfinite(v).all()
        ]
        if bad:
            where = (
                f"the last good checkpoint {self.last_checkpoint} is untouched"
                if self.last_checkpoint
                else "no checkpoint had been written yet"
            )
            raise NonFiniteLossError(
                f"{len(bad)} weight tensors are not finite at step {self.step} (e.g. "
                f"{bad[:3]}); the run stopped before writing a checkpoint; {where}"
            )
        if self.info.is_main:
            self.last_checkpoint = save_checkpoint(self.state_dict(), self.out_dir / CHECKPOINT)
        cgm_dist.barrier()
        self._saved_at = time.monotonic()
        return self.last_checkpoint

    # ---- one step

    def _loader(self, batches: list[list[int]]):
        keys = [[(self.epoch, i) for i in cgm_dist.shard(b, self.info)] for b in batches]
        g = torch.Generator().manual_seed(self.cfg.seed * 100_003 + self.epoch)  # worker seeds
        return torch.utils.data.DataLoader(
            SeededItems(self.dataset, self.cfg.seed),
            batch_sampler=keys,
            num_workers=self.cfg.num_workers,
            generator=g,
            pin_memory=self.device.type == "cuda",
        )

    def _autocast(self):
        dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(self.amp)
        return torch.autocast(self.device.type, dtype=dtype, enabled=dtype is not None)

    def _forward_loss(self, clip: torch.Tensor, labels: torch.Tensor | None):
        with self._autocast():
            out = self.runner(clip[:, :, :-1])
            loss, metrics = self.loss_fn(out, clip, labels)
            if self.info.distributed:
                loss = loss + _zero_touch(out)
        return loss, metrics

    def _micro_batches(self, clip: torch.Tensor, labels: torch.Tensor | None):
        """(clip, labels, all-reduce gradients?) of each of `accumulate` equal micro-batches."""
        n = self.cfg.accumulate
        size = clip.shape[0] // n
        ddp = self.runner if isinstance(self.runner, nn.parallel.DistributedDataParallel) else None
        if ddp is None and self.info.distributed:
            ddp = getattr(self.runner, "_orig_mod", None)  # torch.compile wraps the DDP module
        for i in range(n):
            part = slice(i * size, (i + 1) * size)
            last = i == n - 1
            # DDP all-reduces gradients in backward; the micro-batches before the last skip it
            sync = contextlib.nullcontext() if last or ddp is None else ddp.no_sync()
            yield clip[part], None if labels is None else labels[part], sync

    def train_step(self, batch: dict) -> tuple[float, dict[str, float]]:
        """Forward, loss and backward of each micro-batch (`accumulate`), finite check (all ranks
        agree), optimiser and lr step."""
        clip = batch["clip"].to(self.device, non_blocking=True)  # (B, 3, T+1, H, W)
        labels = batch["label"].to(self.device) if "label" in batch else None
        n = self.cfg.accumulate
        self.optimizer.zero_grad(set_to_none=True)
        total, sums = 0.0, {}
        for part, part_labels, sync in self._micro_batches(clip, labels):
            with sync:
                loss, metrics = self._forward_loss(part, part_labels)
                # the mean over micro-batches of their mean losses is the batch's mean loss
                self.scaler.scale(loss if n == 1 else loss / n).backward()
            total += float(loss.detach())
            for k, v in metrics.items():
                sums[k] = sums.get(k, 0.0) + float(v)
        names = sorted(sums)
        reduced = cgm_dist.all_reduce_mean(
            torch.tensor([total / n] + [sums[k] / n for k in names], dtype=torch.float64, device=self.device)
        ).cpu()
        if not torch.isfinite(reduced[0]):
            where = (
                f"the last good checkpoint {self.last_checkpoint} is untouched"
                if self.last_checkpoint
                else "no checkpoint had been written yet"
            )
            raise NonFiniteLossError(
                f"loss is {reduced[0].item()} at step {self.step + 1} (epoch "
                f"{self.epoch}); the run stopped before the update; {where}"
            )
        if self.cfg.grad_clip > 0:
            self.scaler.unscale_(self.optimizer)
            nn.utils.clip_grad_norm_(self.model.parameters(), self.cfg.grad_clip)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.scheduler.step()
        return reduced[0].item(), {k: reduced[i + 1].item() for i, k in enumerate(names)}

    # ---- the loop

    def fit(self) -> dict[str, float]:
        """Train until `total_steps`; returns the last logged row plus the final evaluation."""
        self.model.train()
        bar = tqdm(
            total=self.total_steps,
            initial=self.step,
            unit="step",
            dynamic_ncols=True,
            disable=not (self.info.is_main and self.cfg.progress),
        )
        window = _Window()
        try:
            while self.step < self.total_steps:
                batches = epoch_batches(
                    self.subset, batch_size=self.cfg.batch_size, seed=self.cfg.seed, epoch=self.epoch
                )[self.position :]
                loader_iter = iter(self._loader(batches))
                while self.step < self.total_steps:
                    t0 = time.perf_counter()
                    batch = next(loader_iter, None)
                    if batch is None:
                        break
                    t1 = time.perf_counter()
                    self._note_skips(batch)
                    lr = self.optimizer.param_groups[0]["lr"]  # the lr this step uses
                    loss, metrics = self.train_step(batch)
                    self.step += 1
                    self.position += 1
                    if self.position == self.steps_per_epoch:
                        self._report_skips(self.epoch)
                        self.epoch, self.position = self.epoch + 1, 0
                    window.add(
                        loss, metrics, wait=t1 - t0, total=time.perf_counter() - t0, clips=self.cfg.batch_size
                    )
                    bar.update(1)
                    bar.set_postfix(loss=f"{loss:.4f}", clips_s=f"{window.clips_per_s():.1f}")
                    self._after_step(window, lr)
                if self.position != 0 and self.step < self.total_steps:  # loader ran dry early
                    raise RuntimeError(f"data loader ended at batch {self.position} of epoch {self.epoch}")
        finally:
            bar.close()
            if self.position:
                self._report_skips(self.epoch)  # the partial last epoch
            if self._writer is not None:
                self._writer.flush()
        final = dict(self.history[-1]) if self.history else {}
        final.update(self.evaluate())
        if self.info.is_main and self._writer is not None:
            self._writer.close()
        return final

    def _note_skips(self, batch: dict) -> None:
        paths = batch.get("skipped_paths", [])  # one string per item, paths joined by newlines
        paths = paths if isinstance(paths, (list, tuple)) else [paths]
        found = {p for joined in paths for p in joined.split("\n") if p}
        self.skipped.setdefault(self.epoch, set()).update(found)

    def _report_skips(self, epoch: int) -> None:
        """One warning per epoch with the number of distinct unreadable videos passed over."""
        found = self.skipped.get(epoch, set())
        if found and self.info.is_main:
            warnings.warn(
                f"epoch {epoch}: {len(found)} unreadable videos were skipped (each once; "
                f"rank {self.info.rank}), e.g. {sorted(found)[:3]}",
                stacklevel=2,
            )

    def _after_step(self, window: _Window, lr: float) -> None:
        last = self.step == self.total_steps
        if self.step % self.cfg.log_every == 0 or last:
            row = {"step": self.step, "epoch": self.epoch, "lr": lr, **window.summary()}
            window.reset()
            self.history.append(row)
            if self.info.is_main:
                self._log(row)
        if self.cfg.eval_every and self.step % self.cfg.eval_every == 0 and not last:
            self.evaluate()
        if self.step % self.cfg.checkpoint_every == 0 or last or self._checkpoint_due():
            self.save()

    def _checkpoint_due(self) -> bool:
        """checkpoint_minutes have passed since the last checkpoint (or the start), on any rank:
        every rank decides alike (one all-reduce of a flag per step, microseconds against a step)."""
        minutes = self.cfg.checkpoint_minutes
        due = bool(minutes) and time.monotonic() - self._saved_at >= 60 * minutes
        return cgm_dist.any_rank(due, self.device) if self.info.distributed else due

    def evaluate(self) -> dict[str, float]:
        """Run the evaluation hooks on rank 0 (eval mode, no grad); log them under eval/. Under DDP a
        hook must not call `cgm.protocols` (every rank must call those: they gather), or it waits."""
        results: dict[str, float] = {}
        if not self.hooks or not self.info.is_main:
            return results
        self.model.eval()
        with torch.no_grad():
            for hook in self.hooks:
                results.update(hook(self.model))
        self.model.train()
        writer = self._tb()
        for k, v in results.items():
            if writer is not None and isinstance(v, (int, float)) and math.isfinite(v):
                writer.add_scalar(f"eval/{k}", v, self.step)
        return results

    # ---- logging (rank 0)

    def _tb(self):
        if not self.cfg.tensorboard:
            return None
        if self._writer is None:
            from torch.utils.tensorboard import SummaryWriter  # optional and slow to import: on use

            self._writer = SummaryWriter(str(self.out_dir / "tb"), purge_step=self.step or None)
        return self._writer

    def _log(self, row: dict) -> None:
        path = self.out_dir / METRICS_CSV
        self.out_dir.mkdir(parents=True, exist_ok=True)
        if not path.exists() or path.stat().st_size == 0:
            header = ["step", "epoch", "lr", "loss", "clips_per_s", "data_wait_frac"]
            header += sorted(k for k in row if k not in header)
            _write_csv(path, header, [])
        if self._csv_header is None:  # first row of this process: drop rows a resumed run redoes
            self._csv_header, rows = _read_csv(path)
            if rows and int(rows[-1]["step"]) >= row["step"]:
                _write_csv(path, self._csv_header, [r for r in rows if int(r["step"]) < row["step"]])
        header = self._csv_header
        with open(path, "a", newline="") as f:
            csv.DictWriter(f, header, extrasaction="ignore", restval="").writerow(row)
        writer = self._tb()
        if writer is not None:
            for k, v in row.items():
                if k not in ("step", "epoch"):
                    writer.add_scalar(f"train/{k}", v, self.step)


def _zero_touch(out) -> torch.Tensor:
    """0 x every output: heads the stage's loss ignores (the action heads in selfsup) still get
    (zero) gradients, so DDP's all-reduce sees every parameter every step. Cheaper and more robust
    than find_unused_parameters; static_graph desynchronised the ranks on the first step in our test."""
    tensors = []

    def collect(x):
        if isinstance(x, torch.Tensor):
            if x.requires_grad:
                tensors.append(x)
        elif dataclasses.is_dataclass(x):
            for f in dataclasses.fields(x):
                collect(getattr(x, f.name))
        elif isinstance(x, dict):
            for v in x.values():
                collect(v)
        elif isinstance(x, (list, tuple)):
            for v in x:
                collect(v)

    collect(out)
    return sum(t.float().sum() * 0.0 for t in tensors)


class _Window:
    """Running means of loss, metrics and timing between two log rows."""

    def __init__(self):
        self.reset()

    def reset(self):
        self.n, self.loss, self.metrics = 0, 0.0, {}
        self.wait = self.total = 0.0
        self.clips = 0

    def add(self, loss, metrics, *, wait, total, clips):
        self.n += 1
        self.loss += loss
        for k, v in metrics.items():
            self.metrics[k] = self.metrics.get(k, 0.0) + v
        self.wait, self.total, self.clips = self.wait + wait, self.total + total, self.clips + clips

    def clips_per_s(self) -> float:
        return self.clips / self.total if self.total > 0 else 0.0

    def summary(self) -> dict[str, float]:
        n = max(self.n, 1)
        return {
            "loss": self.loss / n,
            "clips_per_s": self.clips_per_s(),
            "data_wait_frac": self.wait / self.total if self.total > 0 else 0.0,
            **{k: v / n for k, v in self.metrics.items()},
        }


def _read_csv(path: Path) -> tuple[list[str], list[dict]]:
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        rows = list(reader)
        return list(reader.fieldnames or []), rows


def _write_csv(path: Path, header: list[str], rows: list[dict]) -> None:
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, header, extrasaction="ignore", restval="")
        w.writeheader()
        w.writerows(rows)


def read_metrics(out_dir: str | os.PathLike) -> list[dict]:
    """DIR/metrics.csv as a list of dicts of floats."""
    _, rows = _read_csv(Path(out_dir) / METRICS_CSV)
    return [{k: float(v) for k, v in r.items() if v != ""} for r in rows]
