"""Training-step time and peak memory of CGM-Net vs its bare backbone (+ FC), beside their FLOP ratio.

    python benchmarks/model.py            # CPU at 8x64x64 (batch 2, width 0.25); GPU at 16x112x112 if present
    python benchmarks/model.py --steps 5 --width 0.5 --no-gpu

A step = forward, loss, backward, Adam step. CGM-Net's loss is Eq. 7 with every head
(lambda_lr=1, lambda_cls=10, the paper's action-recognition setting); the backbone's is the
cross-entropy of its FC. Each CPU measurement runs in a fresh process so that its peak resident
memory (VmHWM, minus the resident size before the first step) is its own. The target (docs/design.md):
CGM-Net's time ratio no worse than its FLOP ratio (forward GFLOPs, multiply-adds, meta-device count).
"""

from __future__ import annotations

import argparse
import dataclasses
import multiprocessing as mp
import statistics
import time

import torch
import torch.nn.functional as F
from _proc import proc_status_kib  # benchmarks/ is on sys.path when a script runs

from cgm.flops import module_gflops
from cgm.losses import cgm_loss
from cgm.network import CGMConfig, CGMNet, VideoClassifier


def _build(kind: str, cfg: CGMConfig, device: str):
    torch.manual_seed(0)
    if kind == "cgm":
        model = CGMNet(cfg)
    else:
        model = VideoClassifier(cfg.backbone, cfg.num_classes, width=cfg.width, depth=cfg.depth)
    return model.to(device).train()


def _step_fn(kind: str, model, clip, labels):
    opt = torch.optim.Adam(model.parameters(), lr=1e-4)

    def step():
        opt.zero_grad(set_to_none=True)
        if kind == "cgm":
            out = model(clip[:, :, :-1])
            loss, _ = cgm_loss(out, clip, labels, lambda_lr=1.0, lambda_cls=10.0)
        else:
            loss = F.cross_entropy(model(clip[:, :, :-1]), labels)
        loss.backward()
        opt.step()

    return step


def measure(kind: str, cfg: CGMConfig, batch: int, steps: int, device: str) -> dict:
    """Median step time (s) and peak memory (MiB) of one model's training step."""
    model = _build(kind, cfg, device)
    g = torch.Generator().manual_seed(0)
    clip = (torch.rand(batch, 3, cfg.clip_len + 1, cfg.size, cfg.size, generator=g) * 2 - 1).to(device)
    labels = torch.randint(0, cfg.num_classes, (batch,), generator=g).to(device)
    step = _step_fn(kind, model, clip, labels)
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
    else:
        base = proc_status_kib("VmRSS")
    step()  # warm-up (allocator, Adam state)
    sync()
    times = []
    for _ in range(steps):
        t0 = time.perf_counter()
        step()
        sync()
        times.append(time.perf_counter() - t0)
    if device == "cuda":
        peak_mib = (torch.cuda.max_memory_allocated() - base) / 2**20
    else:
        peak_mib = (proc_status_kib("VmHWM") - base) / 1024
    return {"step_s": statistics.median(times), "peak_mib": peak_mib}


def _child(kind, cfg_dict, batch, steps, device, queue):
    torch.set_num_threads(torch.get_num_threads())
    queue.put(measure(kind, CGMConfig.from_dict(cfg_dict), batch, steps, device))


def measure_isolated(kind: str, cfg: CGMConfig, batch: int, steps: int, device: str) -> dict:
    """`measure` in a fresh process (CPU), so that peak RSS belongs to this model alone."""
    if device == "cuda":
        return measure(kind, cfg, batch, steps, device)
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    proc = ctx.Process(target=_child, args=(kind, cfg.to_dict(), batch, steps, device, queue))
    proc.start()
    result = queue.get()
    proc.join()
    return result


def flop_ratio(cfg: CGMConfig) -> tuple[float, float]:
    """Forward GFLOPs per clip of (CGM-Net, bare backbone + FC), counted on the meta device."""
    clip = torch.empty(1, 3, cfg.clip_len, cfg.size, cfg.size, device="meta")
    with torch.device("meta"):
        cgm = CGMNet(cfg)
        base = VideoClassifier(cfg.backbone, cfg.num_classes, width=cfg.width, depth=cfg.depth)
    return module_gflops(cgm, clip)["total"], module_gflops(base, clip)["total"]


def report(cfg: CGMConfig, batch: int, steps: int, device: str) -> None:
    print(
        f"\n== {device}: batch {batch}, {cfg.clip_len}x{cfg.size}x{cfg.size}, "
        f"{torch.get_num_threads() if device == 'cpu' else torch.cuda.get_device_name()} "
        f"{'threads' if device == 'cpu' else ''}"
    )
    print("config:", {k: v for k, v in cfg.to_dict().items()})
    g_cgm, g_base = flop_ratio(cfg)
    r_cgm = measure_isolated("cgm", cfg, batch, steps, device)
    r_base = measure_isolated("backbone", cfg, batch, steps, device)
    print(f"{'model':<22}{'GFLOPs/clip':>12}{'step (s)':>10}{'peak MiB':>10}")
    print(f"{'backbone + FC':<22}{g_base:>12.3f}{r_base['step_s']:>10.3f}{r_base['peak_mib']:>10.0f}")
    print(f"{'CGM-Net (all heads)':<22}{g_cgm:>12.3f}{r_cgm['step_s']:>10.3f}{r_cgm['peak_mib']:>10.0f}")
    t_ratio, f_ratio = r_cgm["step_s"] / r_base["step_s"], g_cgm / g_base
    print(
        f"ratio CGM/backbone: FLOPs {f_ratio:.2f}x, time {t_ratio:.2f}x, "
        f"memory {r_cgm['peak_mib'] / max(r_base['peak_mib'], 1e-9):.2f}x "
        f"-> target (time <= FLOPs) {'met' if t_ratio <= f_ratio else 'NOT met'}"
    )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--backbone", default="r3d18")
    p.add_argument("--width", type=float, default=0.25, help="CPU run's width multiplier")
    p.add_argument("--steps", type=int, default=3)
    p.add_argument("--batch", type=int, default=2)
    p.add_argument("--no-gpu", action="store_true")
    args = p.parse_args()
    cpu = CGMConfig(backbone=args.backbone, num_classes=101, clip_len=8, size=64, width=args.width)
    report(cpu, args.batch, args.steps, "cpu")
    if torch.cuda.is_available() and not args.no_gpu:
        gpu = dataclasses.replace(cpu, clip_len=16, size=112, width=1.0)
        report(gpu, args.batch, args.steps, "cuda")


if __name__ == "__main__":
    main()
