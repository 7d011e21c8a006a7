"""Training throughput on CPU, per interval of steps, so that a rate that decays shows.

    python benchmarks/train.py                                  # table1/cgm, smoke, 300 steps
    python benchmarks/train.py --experiment table6/cgmul --steps 200 --interval 20 --workers 0 2
    python benchmarks/train.py --profile laptop --set size=64 --set batch_size=4
    python benchmarks/train.py --profile laptop --compare --steps 20 --interval 2 --threads 1  # old fast
    python benchmarks/train.py --profile laptop --set hr_prior=cost --compare old new --steps 20
    python benchmarks/train.py --compare prefix new --steps 10 --interval 2 --sharpen 100
    python benchmarks/train.py --paths                          # what each code path is

Plain mode trains the experiment with the Trainer (its own data loader, `--workers` processes)
and prints, per interval of `--interval` steps, clips/s, the share of the step spent waiting for
data, and the loss. A flat clips/s column is the target: subnormal floats in the filter softmax
can make a run decay 7-10x within 50 steps on Intel CPUs
(docs/decisions/002-subnormal-flush.md).

`--compare A B` trains two models from the same initial weights on the same batches, alternating
intervals between them so that load from other processes hits both alike, each under its code
path (`--paths` lists them): `fast` is the laptop's step as it is (bf16 autocast where the CPU
has native bf16, else float32 with cgm.fastconv's convolutions; freed memory kept by the
allocator); `old` the baseline float32 step (the PyTorch tap-loop warp, glibc's default
allocator, PyTorch's direct convolutions); `new` is `old` with the compiled warp kernels;
`prefix` is `old` without the subnormal flush (a plain softmax); `fast32` is `fast` kept in float32
(the path of a CPU without native bf16, measurable on any CPU). The default is `old fast`. The
rate columns then exclude data loading (each batch is loaded once, used by both); the loss
columns show that the paths train alike. `--path` picks the path of plain mode (default `fast`).

`--set key=value` overrides any config field (`cgm.experiments.resolve`: `size`, `batch_size`,
`width`, `train__lr`, ...); values are parsed as Python literals when they can be. The machine's
load is printed: on a shared CPU every number moves with it.
"""

from __future__ import annotations

import argparse
import ast
import contextlib
import dataclasses
import os
import statistics
import tempfile
import time

import torch

from cgm import allocator, fastconv, network, warp
from cgm import experiments as ex

# --------------------------------------------------------------------------- code variants


@contextlib.contextmanager
def prefix_code():
    """The `old` step without the subnormal flush: a plain softmax over the taps, so subnormal
    probabilities (and gradients) reach the warp and CGMUL's conv; the PyTorch tap-loop warp;
    float32; glibc's default allocator thresholds."""
    saved = network.softmax_filters
    network.softmax_filters = lambda logits: logits.softmax(dim=1)
    allocator.glibc_defaults()
    try:
        with warp.use_warp_backend("taps"), fastconv.use_conv_backend("direct"):
            yield
    finally:
        network.softmax_filters = saved


@contextlib.contextmanager
def old_code():
    """The baseline step: subnormal flush, the PyTorch tap-loop warp, float32,
    glibc's default allocator thresholds, PyTorch's direct convolution for CGMUL."""
    allocator.glibc_defaults()
    with warp.use_warp_backend("taps"), fastconv.use_conv_backend("direct"):
        yield


@contextlib.contextmanager
def new_code():
    """`old` with the compiled warp kernels on CPU (opt-in: CGM_WARP=native), float32."""
    allocator.glibc_defaults()
    with warp.use_warp_backend("native"), fastconv.use_conv_backend("direct"):
        yield


@contextlib.contextmanager
def fast_code():
    """The laptop's training step as it is: bf16 autocast (train amp='bf16') where the CPU has
    native bf16, else float32 with CGMUL's conv by Winograd F(4x4, 3x3) and the 3D convs on
    channels-last copies (cgm.fastconv); the Trainer's allocator setting (cgm.allocator: freed
    memory kept for the next step); the tap-loop warp."""
    allocator.retain_freed_memory()
    with warp.use_warp_backend("taps"), fastconv.use_conv_backend("fast"):
        yield


@contextlib.contextmanager
def fast32_code():
    """`fast` in float32 on every CPU: what a CPU without native bf16 trains (CGMUL's conv by
    Winograd, the 3D convs on channels-last copies, freed memory kept, the tap-loop warp), to
    measure that path on a CPU that would otherwise take bf16."""
    with fast_code():
        yield


PATHS = {"prefix": prefix_code, "old": old_code, "new": new_code, "fast": fast_code, "fast32": fast32_code}
# the autocast each path trains under, whatever the experiment's config says
PATH_AMP = {"prefix": "none", "old": "none", "new": "none", "fast": "bf16", "fast32": "none"}
PATH_DOC = {name: " ".join(fn.__doc__.split()) for name, fn in PATHS.items()}


# --------------------------------------------------------------------------- helpers


def parse_sets(items: list[str]) -> dict:
    out = {}
    for item in items:
        if "=" not in item:
            raise SystemExit(f"--set expects key=value, got {item!r}")
        key, value = item.split("=", 1)
        try:
            out[key] = ast.literal_eval(value)
        except (ValueError, SyntaxError):
            out[key] = value
    return out


def subnormal_share(t: torch.Tensor) -> float:
    t = t.detach().abs()
    return ((t > 0) & (t < torch.finfo(t.dtype).tiny)).float().mean().item()


def header(cfg) -> str:
    m, t = cfg.model, cfg.train
    return (
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, {os.cpu_count()} CPUs, "
        f"load average {os.getloadavg()[0]:.1f}; batch {t.batch_size}, clip {m.clip_len}x{m.size}x{m.size}, "
        f"{m.backbone} width {m.width} depth {m.depth}, upsampler {m.upsampler} "
        f"(k_hr={m.k_hr}), stage {t.stage}, data {cfg.data.name if hasattr(cfg.data, 'name') else cfg.data['name']}"
    )


# --------------------------------------------------------------------------- plain mode


def plain(cfg, interval: int) -> None:
    with tempfile.TemporaryDirectory() as out:
        trainer = ex.train_experiment(cfg, out, progress=False)
    print(f"{'steps':>11s} {'clips/s':>8s} {'data wait':>9s} {'loss':>8s} {'load':>5s}")
    step0 = 0
    for row in trainer.history:
        print(
            f"{step0 + 1:5d}-{int(row['step']):<5d} {row['clips_per_s']:8.2f} {row['data_wait_frac']:9.1%} "
            f"{row['loss']:8.4f}"
        )
        step0 = int(row["step"])
    rates = [r["clips_per_s"] for r in trainer.history]
    if len(rates) >= 2:
        print(
            f"first interval {rates[0]:.2f} clips/s, median {statistics.median(rates):.2f}, "
            f"last {rates[-1]:.2f} (last / median {rates[-1] / statistics.median(rates):.2f}); "
            f"load average now {os.getloadavg()[0]:.1f}"
        )


# --------------------------------------------------------------------------- compare mode


def compare(cfg, interval: int, sharpen: float = 1.0, paths: tuple[str, str] = ("old", "fast")) -> None:
    from cgm.train import Trainer

    ex.check_data(cfg)
    data = ex.build_data(cfg.data, cfg, future=True)
    tcfg = cfg.train
    runs = {}
    for name in paths:
        torch.manual_seed(tcfg.seed)  # the same initial weights for both
        model = ex.build_model(cfg)
        if sharpen != 1 and getattr(model, "context", None) is not None:
            with torch.no_grad():  # CGMUL's conv: sharper HR filters from step 1, as after training
                model.upsampler.conv.weight.mul_(sharpen)
        with tempfile.TemporaryDirectory() as out:
            path_cfg = dataclasses.replace(tcfg, amp=PATH_AMP[name])
            runs[name] = Trainer(model, data, path_cfg, out_dir=out, model_config=cfg.model)
    first = next(iter(runs.values())).model.state_dict()
    same = all(torch.equal(first[k], t.model.state_dict()[k]) for t in runs.values() for k in first)
    g = torch.Generator().manual_seed(tcfg.seed)
    loader = torch.utils.data.DataLoader(
        data, batch_size=tcfg.batch_size, shuffle=True, drop_last=True, generator=g, num_workers=0
    )
    batches = iter(())
    seen = {}

    def keep_maps(model, inp, out):
        seen["hr"] = out.hr_maps

    for trainer in runs.values():
        trainer.model.register_forward_hook(keep_maps)
    a, b = paths
    print(f"paths: {a} = {PATH_DOC[a]}; {b} = {PATH_DOC[b]}; same initial weights: {same}")
    print("autocast on this machine: " + ", ".join(f"{n} {t.amp}" for n, t in runs.items()))
    print(
        f"{'steps':>11s} "
        + " ".join(f"{n + ' clips/s':>14s} {n + ' subnormal':>14s} {n + ' loss':>10s}" for n in paths)
        + f" {b + '/' + a:>9s} {'load':>5s}"
    )
    totals = {n: 0.0 for n in paths}
    done = 0
    while done < tcfg.steps:
        n_steps = min(interval, tcfg.steps - done)
        block = []
        for _ in range(n_steps):
            batch = next(batches, None)
            if batch is None:
                batches = iter(loader)
                batch = next(batches)
            block.append(batch)
        rate, sub, loss = {}, {}, {}
        for name, trainer in runs.items():
            with PATHS[name]():
                t0 = time.perf_counter()
                for batch in block:
                    loss[name], _ = trainer.train_step(batch)
                dt = time.perf_counter() - t0
            totals[name] += dt
            rate[name] = n_steps * tcfg.batch_size / dt
            sub[name] = subnormal_share(seen["hr"])
        print(
            f"{done + 1:5d}-{done + n_steps:<5d} "
            + " ".join(f"{rate[n]:14.2f} {sub[n]:14.2%} {loss[n]:10.5f}" for n in paths)
            + f" {rate[b] / rate[a]:8.2f}x {os.getloadavg()[0]:5.1f}",
            flush=True,
        )
        done += n_steps
    print(
        f"whole run: {a} {tcfg.steps * tcfg.batch_size / totals[a]:.2f} clips/s, {b} "
        f"{tcfg.steps * tcfg.batch_size / totals[b]:.2f} clips/s: {b}/{a} = {totals[a] / totals[b]:.2f}x"
    )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--experiment", default="table1/cgm")
    p.add_argument("--profile", default="smoke", help="smoke, laptop (when defined), paper")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="config override")
    p.add_argument("--steps", type=int, default=300)
    p.add_argument("--interval", type=int, default=25)
    p.add_argument("--workers", type=int, default=0, help="data-loader processes (plain mode)")
    p.add_argument("--threads", type=int, default=torch.get_num_threads())
    p.add_argument("--path", choices=PATHS, default="fast", help="plain mode: which code path trains")
    p.add_argument(
        "--compare",
        nargs="*",
        choices=PATHS,
        default=None,
        metavar="PATH",
        help="two code paths side by side (default: old fast; --paths lists them)",
    )
    p.add_argument("--paths", action="store_true", help="list the code paths, and exit")
    p.add_argument(
        "--sharpen",
        type=float,
        default=1.0,
        help="--compare: scale CGMUL's conv weights at the start (e.g. 100), so that the "
        "HR filters are as sharp as after training from the first step",
    )
    args = p.parse_args()
    if args.paths:
        for name, doc in PATH_DOC.items():
            print(f"{name}: {doc}")
        return
    if args.steps < 1 or args.interval < 1:
        raise SystemExit("--steps and --interval must be >= 1")
    if args.compare is not None and len(args.compare) not in (0, 2):
        raise SystemExit("--compare takes two paths (or none: old fast)")
    torch.set_num_threads(args.threads)
    overrides = {
        "steps": args.steps,
        "log_every": args.interval,
        "num_workers": args.workers,
        "progress": False,
        **parse_sets(args.set),
    }
    cfg = ex.resolve(args.experiment, args.profile, **overrides)
    print(f"{args.experiment} ({args.profile}): " + header(cfg), flush=True)
    if args.compare is not None:
        compare(cfg, args.interval, args.sharpen, tuple(args.compare) or ("old", "fast"))
    else:
        cfg = dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, amp=PATH_AMP[args.path]))
        with PATHS[args.path]():
            plain(cfg, args.interval)


if __name__ == "__main__":
    main()
