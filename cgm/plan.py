"""What an experiment needs before it runs on GPUs: `python -m cgm plan --experiment X --profile P
[--gpus N] [--gpu-memory GiB]`.

- the chain (`cgm.cache.chain`): which runs are cached and which will train, pretraining first;
- every data root of the runs that will train, present or missing, with the layout expected;
- per-GPU memory of a training step and of evaluation, traced at the run's own shape (`trace_bytes`);
- the per-GPU batch, and the gradient accumulation, that fit `--gpu-memory`;
- GPU-hours from the counted multiply-adds (`cgm.flops`) at an assumed sustained rate;
- the commands that run the chain and read it in its notebook.

Memory is traced, not guessed: one training step (forward, loss, backward) and one evaluation
forward pass run on tensors that have shapes and no data (the meta device; for bf16/fp16 autocast,
PyTorch's FakeTensor mode on the CPU, where autocast applies), and `cgm.memory.LiveTensorBytes` adds up the bytes
of every storage an operator allocates and subtracts it when it is freed: the peak is what the
activations, the tensors saved for backward and the backward's gradients of activations hold at
once. The convolutions and the warp trace their GPU paths (PyTorch's own convolutions, the warp's
tap loop). Weights, gradients and Adam's two moments (4 x 4 bytes per parameter, plus one more
gradient copy for DDP's buckets with several GPUs) are added to that. Activation bytes grow with
the clips of a pass, so one clip is traced and multiplied (checked against real CPU steps in
tests/test_plan.py). What the trace does not see: cuDNN's workspaces, the CUDA allocator's
rounding and fragmentation, the CUDA context: HEADROOM keeps 10% of the GPU for them.
"""

from __future__ import annotations

import contextlib
import json
import math
import shlex
from dataclasses import dataclass, field

import torch
from torch._subclasses.fake_tensor import FakeTensorMode

from cgm import cache
from cgm import experiments as ex
from cgm.cache import _forward_gmac
from cgm.experiments.runs import data_roots
from cgm.fastconv import use_conv_backend
from cgm.memory import CUDA_FREE_FRACTION, LiveTensorBytes
from cgm.network import CGMNet
from cgm.overrides import format_overrides
from cgm.train import stage_loss
from cgm.warp import use_warp_backend

GIB = 2**30
HEADROOM = 0.9  # of a GPU's memory a step may plan for (cuDNN workspaces, fragmentation, the context)
# Sustained FLOP/s per GPU assumed for the time estimate (2 FLOPs per multiply-add), by `amp`:
# about 16% of an H100's dense peak (989 TFLOP/s bf16; 495 TFLOP/s TF32, which cuDNN's float32
# convolutions use by default). An assumption, not a measurement: `make gpu-check` measures the
# real rate of a training step; `--tflops` replaces it.
ASSUMED_TFLOPS = {"none": 80.0, "bf16": 160.0, "fp16": 160.0}
# Videos per epoch of each training set and per test set: the official split sizes (UCF101 and
# HMDB51 split 1; Kinetics as listed in the annotation files when the paper was written, less
# the videos no longer online, so approximate; Y500K, the paper's 500K unlabeled clips).
TRAIN_VIDEOS = {
    "ucf101": 9_537,
    "hmdb51": 3_570,
    "kinetics400": 240_000,
    "kinetics600": 392_000,
    "videofolder": 500_000,
}
TEST_VIDEOS = {
    "ucf101": 3_783,
    "hmdb51": 1_530,
    "kinetics400": 19_900,
    "kinetics600": 29_800,
    "ucf_flow": 20,
    "ucf_pred": 101,
}
# The notebook that reads each paper table's runs, and the parameters that pick one experiment.
NOTEBOOKS = {
    "table1_motion": "table1_motion",
    "table2_selfsup": "table2_selfsupervised",
    "table2_labels": "table2_selfsupervised",
    "table3_kinetics400": "table3_kinetics",
    "table4_kinetics600": "table3_kinetics",
    "table5_ucf_hmdb": "table5_ucf_hmdb",
    "table6_upsampling": "table6_upsampling",
    "table7_upsampling_action": "table7_upsampling_action",
    "table8_cost": "table8_cost",
    "fig6_scale": "fig6_scale",
}


# --------------------------------------------------------------------------- tracing


@contextlib.contextmanager
def _gpu_paths():
    """The convolution and warp code paths a CUDA device runs (the CPU has faster ones of its own)."""

    with use_conv_backend("direct"), use_warp_backend("taps"):
        yield


def trace_bytes(cfg: ex.ExperimentConfig, *, train: bool, clips: int = 1, device: str | None = None) -> int:
    """Peak bytes of one training step (`train`: forward, loss, backward; gradients of the
    parameters left out) or one evaluation forward pass (no autograd, eval mode) of `clips` clips
    at the config's shape, beyond weights and input. `device` None: traced without data (meta, or
    FakeTensor on the CPU for autocast); "cpu": computed for real (a check of the trace)."""

    m, amp = cfg.model, cfg.train.amp if train else "none"
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(amp)
    place = (
        contextlib.nullcontext()
        if device == "cpu"
        else FakeTensorMode()
        if dtype is not None
        else torch.device("meta")
    )
    with place:
        torch.manual_seed(cfg.train.seed)
        model = CGMNet(m).train(train)
        clip = torch.rand(clips, 3, m.clip_len + 1, m.size, m.size) * 2 - 1
        labels = torch.zeros(clips, dtype=torch.long)
    params = list(model.parameters())
    traced = LiveTensorBytes(known=[*params, *model.buffers(), clip, labels])
    hooks = [p.register_post_accumulate_grad_hook(lambda p: traced.exclude(p.grad)) for p in params]
    try:
        with _gpu_paths(), place:
            if train:
                loss_fn = stage_loss(cfg.train, padding=m.padding)
                with traced:
                    with torch.autocast("cpu", dtype=dtype or torch.bfloat16, enabled=dtype is not None):
                        loss, _ = loss_fn(model(clip[:, :, :-1]), clip, labels)
                    loss.backward()
                    del loss
            else:
                with traced, torch.no_grad():
                    out = model(clip[:, :, :-1])
                    del out
    finally:
        for h in hooks:
            h.remove()
    return traced.peak


# --------------------------------------------------------------------------- one link's needs


def state_bytes(params: int, gpus: int) -> int:
    """Bytes of a training step that do not depend on the batch: weights, gradients and Adam's two
    moments in float32, and DDP's gradient buckets with several GPUs."""
    return 4 * params * (4 + (gpus > 1))


def check_fits(cfg: ex.ExperimentConfig, *, world_size: int, available_bytes: int, name: str) -> None:
    """A ValueError before any work when a training step of `cfg` (its global batch split over
    `world_size` GPUs, in `accumulate` micro-batches) needs more than HEADROOM of
    `available_bytes`, by the traced estimate."""
    with torch.device("meta"):
        params = sum(p.numel() for p in CGMNet(cfg.model).parameters())
    per_gpu = cfg.train.batch_size // world_size // cfg.train.accumulate  # clips per forward pass
    per_clip = trace_bytes(cfg, train=True)
    need = state_bytes(params, world_size) + per_gpu * per_clip
    if need > HEADROOM * available_bytes:
        fits = int((HEADROOM * available_bytes - state_bytes(params, world_size)) // per_clip)
        raise ValueError(
            f"{name}: a training step of {per_gpu} clips per GPU needs about {need / GIB:.1f} GiB "
            f"({per_clip / GIB:.2f} GiB per clip, traced), more than {HEADROOM:.0%} of the "
            f"{available_bytes / GIB:.1f} GiB this GPU has free; "
            + (f"{fits} clips per GPU would fit: " if fits > 0 else "not even one clip fits: ")
            + "--set accumulate=N, more GPUs, --set amp=bf16, or a smaller input; "
            "`python -m cgm plan` says what fits"
        )


@dataclass(frozen=True)
class LinkPlan:
    """What one run of the chain needs per GPU, at its own shape."""

    name: str
    hash: str
    cached: bool
    stage: str
    amp: str
    params: int
    train_per_clip: int  # traced peak bytes of a training step per clip (0 when cached)
    eval_per_clip: int  # traced peak bytes of an evaluation pass per clip, its input included
    views: int  # test views per video (clips x crops) of its action evaluation, 1 otherwise
    eval_batch: int  # videos per evaluation batch (eval.batch_size)
    global_batch: int
    gmac: float  # forward multiply-adds per clip, in billions
    train_clips: int  # clips the schedule trains on
    eval_clips: int  # clips its evaluation scores
    sizes: str  # where train_clips/eval_clips come from
    roots: list = field(default_factory=list)  # cgm.experiments.runs.DataRoot of its datasets

    def state_bytes(self, gpus: int) -> int:
        return state_bytes(self.params, gpus)

    def train_bytes(self, per_gpu: int, gpus: int) -> int:
        return self.state_bytes(gpus) + per_gpu * self.train_per_clip

    def fit(self, gpus: int, gpu_bytes: float) -> tuple[int | None, int | None]:
        """(micro-batch per GPU, accumulation steps) for the global batch on `gpus` GPUs within
        HEADROOM of `gpu_bytes`: the largest micro-batch dividing the per-GPU batch that fits;
        (None, None) when one clip does not fit."""
        per_gpu = self.global_batch // gpus
        for micro in sorted((d for d in range(1, per_gpu + 1) if per_gpu % d == 0), reverse=True):
            if self.train_bytes(micro, gpus) <= HEADROOM * gpu_bytes:
                return micro, per_gpu // micro
        return None, None

    def eval_chunk(self, gpu_bytes: float) -> int:
        """Clips per evaluation pass, as the chunked evaluation picks them (`cgm.memory`): the
        evaluation batch's views, at most what its budget (a share of the memory left beside the
        weights) holds; at least 1."""

        budget = CUDA_FREE_FRACTION * (gpu_bytes - 4 * self.params)
        return max(1, min(self.eval_batch * self.views, int(budget // max(1, self.eval_per_clip))))

    def gpu_hours(self, tflops: float) -> float:
        """Training (3x the forward: the backward is about twice it) and evaluation multiply-adds,
        2 FLOPs each, at `tflops` sustained TFLOP/s per GPU."""
        flops = 2e9 * self.gmac * (3 * self.train_clips + self.eval_clips)
        return flops / (tflops * 1e12) / 3600


def _views(cfg: ex.ExperimentConfig) -> int:
    kw = [s.kw for _, _, s in cfg.eval.sets()]
    return max([k.get("test_clips", 1) * k.get("test_crops", 1) for k in kw] or [1])


def _schedule_clips(cfg: ex.ExperimentConfig) -> tuple[int, int, str]:
    """(training clips, evaluation clips, their source) of a config's schedule and evaluation."""
    t = cfg.train
    n_train = cfg.data.kw.get("n") or TRAIN_VIDEOS.get(cfg.data.name)
    if t.steps is not None:
        train, how = t.steps * t.batch_size, f"{t.steps} steps of {t.batch_size}"
    elif n_train is None:
        train, how = 0, f"{cfg.data.name}: size unknown"
    else:
        train = int(t.epochs * n_train * t.labeled_fraction)
        how = f"{t.epochs} epochs of {int(n_train * t.labeled_fraction):,} videos"
    evaluated = 0
    for _, _, s in cfg.eval.sets():
        n = s.max_clips or s.kw.get("n") or TEST_VIDEOS.get(s.name, 0)
        evaluated += n * s.kw.get("test_clips", 1) * s.kw.get("test_crops", 1)
    return train, evaluated, how + f", {evaluated:,} evaluation clips (test videos x views)"


def plan_link(link, profile: str, *, trains: bool) -> LinkPlan:
    """The LinkPlan of one link of `cgm.cache.chain`, traced when it `trains`."""

    cfg = ex.resolve(link.name, profile, **link.overrides)
    train_clips, eval_clips, how = _schedule_clips(cfg)
    m = cfg.model
    with torch.device("meta"):
        params = sum(p.numel() for p in CGMNet(m).parameters())
    input_bytes = 4 * 3 * m.clip_len * m.size * m.size
    return LinkPlan(
        name=link.name,
        hash=link.hash,
        cached=not trains,
        stage=cfg.train.stage,
        amp=cfg.train.amp,
        params=params,
        train_per_clip=trace_bytes(cfg, train=True) if trains else 0,
        eval_per_clip=trace_bytes(cfg, train=False) + input_bytes if trains else 0,
        views=_views(cfg),
        eval_batch=cfg.eval.batch_size,
        global_batch=cfg.train.batch_size,
        gmac=_forward_gmac(json.dumps(m.to_dict(), sort_keys=True)),
        train_clips=train_clips,
        eval_clips=eval_clips,
        sizes=how,
        roots=data_roots(cfg),
    )


# --------------------------------------------------------------------------- the plan


@dataclass
class Plan:
    experiment: str
    profile: str
    gpus: int
    gpu_memory_gib: float
    tflops: float | None
    overrides: dict
    roots: dict  # CLI root flags given: {"data_root": ..., "pretrain_root": ...}
    links: list[LinkPlan]

    def to_dict(self) -> dict:
        gpu = self.gpu_memory_gib * GIB
        out = []
        for lp in self.links:
            micro, accum = lp.fit(self.gpus, gpu)
            rate = self.tflops or ASSUMED_TFLOPS[lp.amp]
            out.append(
                {
                    "experiment": lp.name,
                    "hash": lp.hash,
                    "cached": lp.cached,
                    "stage": lp.stage,
                    "amp": lp.amp,
                    "params_m": lp.params / 1e6,
                    "train_gib_per_clip": lp.train_per_clip / GIB,
                    "train_gib_per_gpu": lp.train_bytes(lp.global_batch // self.gpus, self.gpus) / GIB,
                    "micro_batch": micro,
                    "accumulation": accum,
                    "eval_gib_per_clip": lp.eval_per_clip / GIB,
                    "eval_clips_per_pass": lp.eval_chunk(gpu),
                    "gpu_hours": lp.gpu_hours(rate),
                    "assumed_tflops": rate,
                    "roots": [
                        {"dataset": r.dataset, "role": r.role, "root": r.root, "present": r.present}
                        for r in lp.roots
                    ],
                }
            )
        return {
            "experiment": self.experiment,
            "profile": self.profile,
            "gpus": self.gpus,
            "gpu_memory_gib": self.gpu_memory_gib,
            "links": out,
            "commands": self.commands(),
        }

    # ----------------------------------------------------------------------- commands

    def _flags(self) -> list[str]:
        flags = [f"--{k.replace('_', '-')} {shlex.quote(str(v))}" for k, v in self.roots.items() if v]
        return flags + [f"--set {shlex.quote(f'{k}={v}')}" for k, v in self.overrides.items()]

    def commands(self) -> list[str]:
        g = self.gpus
        launch = (
            f"torchrun --nproc_per_node {g}"
            if g <= 8
            else f"torchrun --nnodes {math.ceil(g / 8)} --nproc_per_node 8 --node_rank $NODE_RANK "
            "--rdzv_backend c10d --rdzv_endpoint $MASTER_HOST:29500"
        )
        base = f"-m cgm run --profile {self.profile}"
        lines = []
        for lp in self.links:
            if lp.cached:
                continue
            flags = self._flags()
            micro, accum = lp.fit(g, self.gpu_memory_gib * GIB)
            if micro is not None and accum > 1 and "accumulate" not in self.overrides:
                flags.append(f"--set accumulate={accum}")  # unhashed: the same run, in micro-batches
            lines.append(f"{launch} {base} --experiment {lp.name} {' '.join(flags)}".rstrip())
        lines.append(f"python -m cgm list --profile {self.profile}   # each run shows 'yes' when cached")
        notebook = notebook_command(
            self.experiment, self.profile, format_overrides(self.overrides), self.roots
        )
        if notebook:
            lines.append(notebook)
        return lines


def notebook_command(name: str, profile: str, overrides: str, roots: dict) -> str | None:
    """The papermill command that reads experiment `name`'s runs in its table's notebook."""
    e = ex.get_experiment(name)
    notebook = NOTEBOOKS.get(e.paper_table)
    if notebook is None or name.startswith("pretrain/") or name == "table2/pretrain":
        return None
    family, _, row = name.partition("/")
    params = {"profile": profile}
    if family in ("table3", "table4"):
        params.update({"variant": 600} if family == "table4" else {}, rows=row)
    elif family in ("table2", "table5"):
        params["dataset"] = row.split("_")[0]
    elif family == "fig6":
        params["scales"] = f"[{row.removeprefix('scale')}]"
    params.update({k: v for k, v in roots.items() if v})
    if overrides:
        params["overrides"] = overrides
    args = " ".join(f"-p {k} {shlex.quote(str(v))}" for k, v in params.items())
    return f"papermill notebooks/{notebook}.ipynb out.ipynb {args}"


def make_plan(
    name: str,
    profile: str = "paper",
    *,
    gpus: int = 1,
    gpu_memory_gib: float = 80.0,
    tflops: float | None = None,
    runs_dir=None,
    roots: dict | None = None,
    **overrides,
) -> Plan:
    """The plan of experiment `name` in `profile` with `overrides` on `gpus` GPUs of
    `gpu_memory_gib` GiB each (nothing is trained; memory is traced, see the module docstring).
    `roots`: the CLI's root flags ({"data_root": ..., "pretrain_root": ...}), passed on to the
    commands; their variables must already be set (`cgm.cache.use_roots`)."""

    if isinstance(gpus, bool) or not isinstance(gpus, int) or gpus < 1:
        raise ValueError(f"--gpus must be a positive integer, got {gpus!r}")
    if not (
        isinstance(gpu_memory_gib, (int, float)) and math.isfinite(gpu_memory_gib) and gpu_memory_gib > 0
    ):
        raise ValueError(f"--gpu-memory must be a positive number of GiB, got {gpu_memory_gib!r}")
    if tflops is not None and not (math.isfinite(tflops) and tflops > 0):
        raise ValueError(f"--tflops must be a positive number, got {tflops!r}")
    roots = dict(roots or {})
    chained = {**overrides, **({"data_root": roots["data_root"]} if roots.get("data_root") else {})}
    links = cache.chain(name, profile, runs_dir=runs_dir, **chained)
    todo = {link.name for link in cache.to_train(links)}
    plans = [plan_link(link, profile, trains=link.name in todo) for link in links]
    for lp in plans:
        if not lp.cached and lp.global_batch % gpus:
            raise ValueError(
                f"{lp.name}: the global batch {lp.global_batch} does not split over {gpus} GPUs; "
                f"choose --gpus among {[g for g in range(1, lp.global_batch + 1) if lp.global_batch % g == 0]}"
            )
    return Plan(name, profile, gpus, float(gpu_memory_gib), tflops, dict(overrides), roots, plans)


# --------------------------------------------------------------------------- text


def _gib(b: float) -> str:
    return f"{b / GIB:.1f} GiB"


def render(plan: Plan) -> str:
    """The plan for people: chain, data roots, memory per GPU, batch, time, commands."""
    gpu = plan.gpu_memory_gib * GIB
    lines = [
        f"plan: {plan.experiment}, profile {plan.profile}, {plan.gpus} GPU(s) of {plan.gpu_memory_gib:g} GiB"
        + (f", overrides {plan.overrides}" if plan.overrides else ""),
        "",
        "chain (pretraining first):",
    ]
    for lp in plan.links:
        lines.append(
            f"  {lp.name:34s} {lp.stage:10s} {lp.hash}  " + ("cached" if lp.cached else "will train")
        )
    todo = [lp for lp in plan.links if not lp.cached]
    if not todo:
        lines += [
            "",
            "everything is cached: nothing to train; read it in the notebook:",
            *plan.commands()[-1:],
        ]
        return "\n".join(lines)
    lines += ["", "data roots of the runs that will train:"]
    seen = set()
    for lp in todo:
        for r in lp.roots:
            if (r.env, r.root) in seen:
                continue
            seen.add((r.env, r.root))
            state = "present" if r.present else f"MISSING ({r.problem})"
            lines.append(
                f"  {lp.name:26s} {r.role:26s} {r.dataset:12s} {str(r.root):30s} {state}   [{r.env}]"
            )
            if not r.present:
                lines += ["      expected layout: " + r.layout.replace("\n", "\n                       ")]
    lines += [
        "",
        "memory per GPU (traced at each run's shape; +10% kept free for cuDNN workspaces and the allocator):",
    ]
    for lp in todo:
        per_gpu = lp.global_batch // plan.gpus
        micro, accum = lp.fit(plan.gpus, gpu)
        chunk = lp.eval_chunk(gpu)
        precision = {"none": "float32", "bf16": "bf16 autocast", "fp16": "fp16 autocast"}[lp.amp]
        lines += [
            f"  {lp.name} ({lp.params / 1e6:.1f} M parameters, training in {precision}):",
            f"    training step: weights, gradients and Adam {_gib(lp.state_bytes(plan.gpus))} + "
            f"{_gib(lp.train_per_clip)} per clip; the global batch {lp.global_batch} is "
            f"{per_gpu} per GPU: {_gib(lp.train_bytes(per_gpu, plan.gpus))}",
        ]
        if micro == per_gpu:
            lines.append(f"      fits: batch {per_gpu} per GPU, no gradient accumulation")
        elif micro is not None:
            need = lp.global_batch // micro
            lines.append(
                f"      does not fit; micro-batch {micro} per GPU ({_gib(lp.train_bytes(micro, plan.gpus))}) "
                f"with {accum} accumulation steps does: add --set accumulate={accum} (or run it on "
                f"{need} GPUs, {micro} per GPU" + (", or with --set amp=bf16)" if lp.amp == "none" else ")")
            )
        else:
            lines.append(
                f"      no batch fits: one clip needs {_gib(lp.train_bytes(1, plan.gpus))}, more than "
                f"{HEADROOM:.0%} of {plan.gpu_memory_gib:g} GiB; lower clip_len or size (--set), or use "
                "larger GPUs" + (" or --set amp=bf16" if lp.amp == "none" else "")
            )
        lines.append(
            f"    evaluation (float32, no autograd): {_gib(lp.eval_per_clip)} per clip; one video's "
            f"{lp.views} view{'s' if lp.views > 1 else ''} at once {_gib(lp.views * lp.eval_per_clip)}; passes of {chunk} clips: "
            f"{_gib(4 * lp.params + chunk * lp.eval_per_clip)}"
        )
    lines += [
        "",
        "compute (estimate: counted multiply-adds at an assumed sustained rate, not a measurement):",
    ]
    total = 0.0
    for lp in todo:
        rate = plan.tflops or ASSUMED_TFLOPS[lp.amp]
        hours = lp.gpu_hours(rate)
        total += hours
        lines.append(
            f"  {lp.name:26s} {lp.gmac:8.1f} GMAC/clip forward; {lp.sizes}: "
            f"{hours:,.0f} GPU-hours at {rate:g} TFLOP/s = {hours / plan.gpus:,.1f} h on {plan.gpus} GPU(s)"
        )
    lines.append(
        f"  total {total:,.0f} GPU-hours, {total / plan.gpus:,.1f} h on {plan.gpus} GPU(s) (linear scaling "
        "assumed); measure the rate with `make gpu-check`, give it as --tflops"
    )
    lines += ["", "commands (each resumes from its last checkpoint when started again):", *plan.commands()]
    return "\n".join(lines)
