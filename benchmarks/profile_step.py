"""Where a CGM-Net training step spends its time on CPU (torch.profiler).

    python benchmarks/profile_step.py                                   # table1/cgm, laptop profile
    python benchmarks/profile_step.py --profile smoke --set size=64 --set clip_len=8 --steps 3
    python benchmarks/profile_step.py --set hr_prior=cost --path old     # the float32 baseline step

One step = forward, the stage's loss (Eq. 7), backward, Adam, on random clips of the config's
shape (the time does not depend on the pixels, except through subnormal floats: see
docs/performance.md). Printed: the step's median wall time; CPU time per forward part (encoder,
LR decoder, context extractor, CGMUL, ...), the loss, the whole backward and the optimiser; and
the top operators by self CPU time with their input shapes, which is where the backward's time is
attributed (a convolution's shapes tell the 3D encoder from CGMUL's 2D conv; the warp's backward
shows as the tap loop's mul/addcmul/sum ops).
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from torch.profiler import ProfilerActivity, profile, record_function
from train import PATH_AMP, PATHS, parse_sets  # benchmarks/ is on sys.path when a script runs

from cgm import experiments as ex
from cgm.train import effective_amp, stage_loss

PARTS = (
    "encoder",
    "decoder",
    "lr_motion",
    "context",
    "motion_features",
    "upsampler",
    "backbone_head",
    "lr_head",
    "hr_head",
)


def scoped(model: torch.nn.Module) -> None:
    """Wrap each part's forward in a record_function scope named fwd/<part>."""
    for name in PARTS:
        part = getattr(model, name, None)
        if part is None:
            continue

        def pre(mod, inp, name=name):
            mod._scope = record_function(f"fwd/{name}")
            mod._scope.__enter__()

        def post(mod, inp, out):
            mod._scope.__exit__(None, None, None)

        part.register_forward_pre_hook(pre)
        part.register_forward_hook(post)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--experiment", default="table1/cgm")
    p.add_argument("--profile", default="laptop")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--steps", type=int, default=3, help="profiled steps (after --warmup steps)")
    p.add_argument(
        "--warmup",
        type=int,
        default=5,
        help="unprofiled steps first: the retained heap is still growing (and faulting) in steps 1-2",
    )
    p.add_argument("--threads", type=int, default=torch.get_num_threads())
    p.add_argument("--rows", type=int, default=25)
    p.add_argument("--path", choices=PATHS, default="fast", help="code path (benchmarks/train.py --paths)")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    with PATHS[args.path]():
        run(args)


def run(args) -> None:
    cfg = ex.resolve(args.experiment, args.profile, **parse_sets(args.set))
    m, t = cfg.model, cfg.train
    model = ex.build_model(cfg).train()
    scoped(model)
    loss_fn = stage_loss(t, padding=m.padding)
    opt = torch.optim.Adam(model.parameters(), lr=t.lr)
    g = torch.Generator().manual_seed(0)
    clip = torch.rand(t.batch_size, 3, m.clip_len + 1, m.size, m.size, generator=g) * 2 - 1
    labels = torch.randint(0, m.num_classes, (t.batch_size,), generator=g)

    # the Trainer's rule: bf16 only on a CPU with native bf16 (cgm.train.effective_amp)
    amp_mode = effective_amp(PATH_AMP[args.path])
    amp = torch.autocast("cpu", dtype=torch.bfloat16, enabled=amp_mode == "bf16")

    def step():
        opt.zero_grad(set_to_none=True)
        with amp, record_function("forward"):
            out = model(clip[:, :, :-1])
        with amp, record_function("loss"):
            loss, _ = loss_fn(out, clip, labels)
        with record_function("backward"):
            loss.backward()
        with record_function("optimizer"):
            opt.step()

    for _ in range(args.warmup):
        step()
    walls = []
    with profile(activities=[ProfilerActivity.CPU], record_shapes=True) as prof:
        for _ in range(args.steps):
            t0 = time.perf_counter()
            step()
            walls.append(time.perf_counter() - t0)
    print(
        f"{args.experiment} ({args.profile}): batch {t.batch_size}, clip {m.clip_len}x{m.size}x{m.size}, "
        f"{m.backbone} width {m.width} depth {m.depth}, encoder stride {m.encoder_spatial_stride}, "
        f"upsampler {m.upsampler}, k_hr {m.k_hr}, hr_prior {m.hr_prior}; {torch.get_num_threads()} threads, "
        f"path {args.path}, autocast {amp_mode}"
    )
    step_s = statistics.median(walls)
    print(f"step {step_s:.3f} s (median of {args.steps}, profiler on), {t.batch_size / step_s:.2f} clips/s")
    events = {e.key: e for e in prof.key_averages()}
    print(f"\n{'part':<24}{'ms/step':>9}{'share':>8}")
    for key in [f"fwd/{n}" for n in PARTS] + ["forward", "loss", "backward", "optimizer"]:
        if key in events:
            ms = events[key].cpu_time_total / 1e3 / args.steps
            print(f"{key:<24}{ms:>9.1f}{ms / 1e3 / step_s:>8.1%}")
    print()
    print(
        prof.key_averages(group_by_input_shape=True).table(
            sort_by="self_cpu_time_total",
            row_limit=args.rows,
            max_name_column_width=40,
            max_shapes_column_width=60,
        )
    )


if __name__ == "__main__":
    main()
