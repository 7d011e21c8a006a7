"""GPU check: the Eq. 1 warp on CUDA, a paper-shaped training step of CGM-Net and its backbone, and
a rehearsal of every paper backbone beside `cgm plan`'s estimates.

    python benchmarks/gpu.py [--steps 10] [--batch 8] [--peak-tflops 989]      (make gpu-check)
    python benchmarks/gpu.py --device cpu --tiny [--models r3d18]             (the rehearsal's code, on CPU)

On a machine without CUDA it prints "no CUDA device: GPU check not run" and exits 0. On a CUDA
device it prints:
  1. gradcheck of `adaptive_warp` and `softmax_filters` on the GPU (float64, tiny shapes);
  2. CPU-vs-CUDA agreement of the warp's output and both gradients (float32, 4x3x32x32, K = 9);
  3. the per-tap loop's cost on the GPU: CUDA kernels launched by one forward+backward of the
     warp at 16x3x112x112, K = 9 (torch.profiler), their summed device time, and the wall time:
     wall >> kernel time means the op is launch-bound (a fused kernel would pay);
  4. one training step (forward, loss, backward, Adam) at the paper's shape, 16x112x112, batch 8,
     bf16 autocast: CGM-Net with every head (Eq. 7, lambda_lr = 1, lambda_cls = 10) and its bare
     backbone (`cgm.network.VideoClassifier`, cross-entropy): median step time, clips/s, peak
     memory (torch.cuda.max_memory_allocated), and the share of the GPU's peak bf16 rate that the
     step's FLOPs reach. FLOPs: `cgm.flops.module_gflops` counts forward multiply-adds (convs and
     matmuls only); a training step is taken as 3x the forward, 2 FLOPs per multiply-add.
  5. the paper-shape rehearsal (`rehearsal`): for each paper backbone, the model of its paper
     experiment at its own input (16x112x112; SlowFast 64x224x224): one float32 and one bf16
     training step (the experiment's loss, Adam) at `--rehearsal-batch` clips (default 2), and the
     chunked evaluation (`cgm.protocols.evaluate_action`) of one video with all its test views
     (10 clips x 3 crops), each with its median time, clips/s and peak memory
     (torch.cuda.max_memory_allocated) beside `cgm plan`'s traced estimate of the same pass.
     `--device cpu --tiny` runs the same code on the CPU at 8x32x32, width 1/8 (peak memory: the
     bytes the step's tensors hold, `cgm.memory.LiveTensorBytes`, plus weights and Adam's moments).
The peak rate comes from a small table of dense bf16 tensor-core rates by device name, or from
--peak-tflops.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

import torch
import torch.nn.functional as F

# Dense bf16 tensor-core peak, TFLOP/s (vendor data sheets, no sparsity).
PEAK_BF16_TFLOPS = {
    "H200": 989.0,
    "H100 PCIe": 756.0,
    "H100": 989.0,
    "A100": 312.0,
    "L40S": 362.0,
    "A10G": 70.0,
    "L4": 121.0,
    "RTX 4090": 165.0,
    "V100": 125.0,
}


def peak_tflops(name: str) -> float | None:
    for key, value in PEAK_BF16_TFLOPS.items():  # most specific names first
        if key in name:
            return value
    return None


def check_warp(device: str) -> None:
    from cgm.warp import adaptive_warp, softmax_filters

    g = torch.Generator().manual_seed(0)
    for padding in ("border", "zeros"):
        x = torch.randn(2, 3, 5, 6, generator=g, dtype=torch.float64).to(device).requires_grad_()
        m = torch.randn(2, 9, 5, 6, generator=g, dtype=torch.float64).to(device).requires_grad_()
        ok = torch.autograd.gradcheck(lambda x, m, padding=padding: adaptive_warp(x, m, padding), (x, m))
        print(f"gradcheck adaptive_warp ({padding}, float64, {device}): {'ok' if ok else 'FAILED'}")
    logits = torch.randn(2, 9, 3, 4, generator=g, dtype=torch.float64).to(device).requires_grad_()
    print(
        f"gradcheck softmax_filters: {'ok' if torch.autograd.gradcheck(softmax_filters, (logits,)) else 'FAILED'}"
    )

    x = torch.randn(4, 3, 32, 32, generator=g)
    m = torch.randn(4, 81, 32, 32, generator=g).softmax(1)
    grad = torch.randn(4, 3, 32, 32, generator=g)
    results = {}
    for dev in ("cpu", device):
        xd, md = x.to(dev).requires_grad_(), m.to(dev).requires_grad_()
        out = adaptive_warp(xd, md)
        gx, gm = torch.autograd.grad(out, (xd, md), grad.to(dev))
        results[dev] = [t.detach().cpu() for t in (out, gx, gm)]
    worst = max((a - b).abs().max().item() for a, b in zip(results["cpu"], results[device]))
    print(
        f"CPU vs {device} (out, grad_x, grad_m), float32 4x3x32x32 K=9: max |diff| {worst:.2e} "
        f"-> {'ok' if worst < 1e-4 else 'MISMATCH'}"
    )


def warp_kernels(device: str) -> None:
    from torch.profiler import ProfilerActivity, profile

    from cgm.warp import adaptive_warp

    x = torch.randn(16, 3, 112, 112, device=device, requires_grad=True)
    m = torch.randn(16, 81, 112, 112, device=device).softmax(1).requires_grad_()
    grad = torch.randn(16, 3, 112, 112, device=device)
    for _ in range(3):  # warm-up
        adaptive_warp(x, m).backward(grad)
    torch.cuda.synchronize()
    walls = []
    for _ in range(10):
        t0 = time.perf_counter()
        adaptive_warp(x, m).backward(grad)
        torch.cuda.synchronize()
        walls.append(time.perf_counter() - t0)
    with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
        adaptive_warp(x, m).backward(grad)
        torch.cuda.synchronize()
    kernels = [e for e in prof.events() if e.device_type == torch.autograd.DeviceType.CUDA]
    busy_ms = sum(e.device_time for e in kernels) / 1e3
    wall_ms = 1e3 * statistics.median(walls)
    print(
        f"warp 16x3x112x112 K=9, forward+backward: {len(kernels)} CUDA kernels, {busy_ms:.2f} ms of "
        f"kernel time, {wall_ms:.2f} ms wall (median of 10): "
        f"{'launch-bound' if wall_ms > 2 * busy_ms else 'device-bound'}"
    )


def train_step_rates(device: str, batch: int, steps: int, peak: float | None) -> None:
    from cgm.flops import module_gflops
    from cgm.losses import cgm_loss
    from cgm.network import CGMConfig, CGMNet, VideoClassifier

    cfg = CGMConfig()  # the paper's 3D-ResNet18 model at 16x112x112, 101 classes
    print(f"training step: batch {batch}, {cfg.clip_len}x{cfg.size}x{cfg.size}, bf16 autocast, Adam")
    print(
        f"{'model':<22}{'GMAC/clip':>10}{'step ms':>9}{'clips/s':>9}{'TFLOP/s':>9}{'% peak':>8}{'peak GiB':>10}"
    )
    meta_clip = torch.empty(1, 3, cfg.clip_len, cfg.size, cfg.size, device="meta")
    for kind in ("backbone", "cgm"):
        with torch.device("meta"):
            meta = CGMNet(cfg) if kind == "cgm" else VideoClassifier(cfg.backbone, cfg.num_classes)
        gmac = module_gflops(meta, meta_clip)["total"]
        torch.manual_seed(0)
        model = (CGMNet(cfg) if kind == "cgm" else VideoClassifier(cfg.backbone, cfg.num_classes)).to(device)
        opt = torch.optim.Adam(model.parameters(), lr=1e-4)
        clip = torch.rand(batch, 3, cfg.clip_len + 1, cfg.size, cfg.size, device=device) * 2 - 1
        labels = torch.randint(0, cfg.num_classes, (batch,), device=device)

        def step(model=model, opt=opt, clip=clip, labels=labels, kind=kind):
            opt.zero_grad(set_to_none=True)
            with torch.autocast(device, dtype=torch.bfloat16):
                out = model(clip[:, :, :-1])
                if kind == "cgm":
                    loss, _ = cgm_loss(out, clip, labels, lambda_lr=1.0, lambda_cls=10.0)
                else:
                    loss = F.cross_entropy(out, labels)
            loss.backward()
            opt.step()

        for _ in range(2):
            step()
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        times = []
        for _ in range(steps):
            t0 = time.perf_counter()
            step()
            torch.cuda.synchronize()
            times.append(time.perf_counter() - t0)
        t = statistics.median(times)
        tflops = 3 * 2 * gmac * batch / t / 1e3
        share = f"{100 * tflops / peak:7.1f}%" if peak else "      ?"
        name = "backbone + FC" if kind == "backbone" else "CGM-Net (all heads)"
        print(
            f"{name:<22}{gmac:>10.1f}{1e3 * t:>9.1f}{batch / t:>9.1f}{tflops:>9.1f}{share:>8}"
            f"{torch.cuda.max_memory_allocated() / 2**30:>10.2f}"
        )
        del model, opt
        torch.cuda.empty_cache()


# The paper experiment whose model each backbone is rehearsed with (its paper-profile input).
REHEARSAL = {
    "r3d18": "table7/cgmul",
    "r3d50": "table3/r3d50",
    "r3d101": "table2/ucf101_pretrained",
    "rx3d101": "table3/rx3d101",
    "slowfast": "table3/slowfast",
}
TINY = dict(width=0.125, clip_len=8, size=32)  # --tiny: the same code at a CPU's scale


def _peak_bytes(device: str, fn, known) -> int:
    """Peak memory of `fn()`: the CUDA allocator's peak, or on the CPU the bytes held by the
    tensors it allocates (`cgm.memory.LiveTensorBytes`) plus those of `known` (weights, optimizer state)."""
    from cgm.memory import LiveTensorBytes

    if device.startswith("cuda"):
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        fn()
        torch.cuda.synchronize()
        return torch.cuda.max_memory_allocated()
    with LiveTensorBytes(known=known) as traced:
        fn()
    return traced.peak + sum(t.untyped_storage().nbytes() for t in {id(t): t for t in known}.values())


def _timed(device: str, fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        fn()
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def rehearse_training(cfg, device: str, batch: int, steps: int) -> dict:
    """One training step of `cfg` (its loss, Adam, its `amp`) at `batch` clips: median time,
    clips/s, peak memory, and `cgm plan`'s estimate of the same step on one GPU."""
    from cgm import plan
    from cgm.network import CGMNet
    from cgm.train import stage_loss

    m = cfg.model
    torch.manual_seed(0)
    model = CGMNet(m).to(device).train()
    opt = torch.optim.Adam(model.parameters(), lr=1e-4)
    loss_fn = stage_loss(cfg.train, padding=m.padding)
    clip = torch.rand(batch, 3, m.clip_len + 1, m.size, m.size, device=device) * 2 - 1
    labels = torch.randint(0, m.num_classes, (batch,), device=device)
    dtype = {"bf16": torch.bfloat16}.get(cfg.train.amp)

    def step():
        opt.zero_grad(set_to_none=True)
        with torch.autocast(device.split(":")[0], dtype=dtype or torch.bfloat16, enabled=dtype is not None):
            loss, _ = loss_fn(model(clip[:, :, :-1]), clip, labels)
        loss.backward()
        opt.step()

    with plan._gpu_paths():  # on the CPU too: the code a GPU runs
        step()  # warm-up: cuDNN's choices, Adam's moments
        known = [*model.parameters(), *model.buffers(), clip, labels]
        known += [v for s in opt.state.values() for v in s.values() if isinstance(v, torch.Tensor)]
        peak = _peak_bytes(device, step, known)
        seconds = _timed(device, step, steps)
    params = sum(p.numel() for p in model.parameters())
    estimate = plan.state_bytes(params, 1) + batch * plan.trace_bytes(cfg, train=True)
    return {"seconds": seconds, "clips_per_s": batch / seconds, "peak": peak, "plan": estimate}


def rehearse_evaluation(cfg, device: str, memory_gib: float | None) -> dict:
    """The chunked evaluation of one video with all the test views of `cfg`'s action set: time,
    clips/s, peak memory, clips per pass, and `cgm plan`'s estimate (weights + a pass)."""
    from cgm import memory, plan
    from cgm.network import CGMNet
    from cgm.protocols import evaluate_action

    m = cfg.model
    (spec,) = cfg.eval.action.values()
    views = spec.kw.get("test_clips", 1) * spec.kw.get("test_crops", 1)
    torch.manual_seed(0)
    model = CGMNet(m).to(device).eval()
    video = [{"clip": torch.rand(views, 3, m.clip_len, m.size, m.size) * 2 - 1, "label": 0}]

    def evaluate():
        evaluate_action(model, video, spec.pipelines, batch_size=1, device=device, memory_gib=memory_gib)

    with plan._gpu_paths():
        evaluate()  # warm-up
        peak = _peak_bytes(device, evaluate, [*model.parameters(), *model.buffers(), video[0]["clip"]])
        seconds = _timed(device, evaluate, 2)
    per_clip = plan.trace_bytes(cfg, train=False) + 4 * 3 * m.clip_len * m.size * m.size
    budget = memory.memory_budget(device, memory_gib)
    chunk = max(1, min(views, int(budget // per_clip)))
    params = sum(p.numel() for p in model.parameters())
    return {
        "views": views,
        "chunk": chunk,
        "seconds": seconds,
        "clips_per_s": views / seconds,
        "peak": peak,
        "plan": 4 * params + chunk * per_clip,
    }


def rehearsal(device: str, *, tiny: bool, batch: int, steps: int, models: list[str], memory_gib=None) -> None:
    """Step 5 of the module docstring: each backbone's training steps and evaluation, measured
    beside `cgm plan`'s estimate of the same pass."""
    from cgm import experiments as ex

    gib = 2**30
    shape = "tiny (8x32x32, width 1/8)" if tiny else "the paper's input per backbone"
    print(f"\nrehearsal on {device}, {shape}: training steps of {batch} clips, one video's evaluation")
    print(
        f"{'backbone':<10}{'pass':<16}{'input':>12}{'ms':>10}{'clips/s':>9}{'peak GiB':>10}"
        f"{'plan GiB':>10}{'plan/peak':>10}"
    )
    for backbone in models:
        name = REHEARSAL[backbone]
        for amp in ("none", "bf16"):
            cfg = ex.resolve(name, "paper", device=device, amp=amp, **(TINY if tiny else {}))
            r = rehearse_training(cfg, device, batch, steps)
            if device.startswith("cuda"):
                torch.cuda.empty_cache()
            m = cfg.model
            print(
                f"{backbone:<10}{'train ' + ('float32' if amp == 'none' else 'bf16'):<16}"
                f"{f'{batch}x{m.clip_len}x{m.size}':>12}{1e3 * r['seconds']:>10.1f}{r['clips_per_s']:>9.1f}"
                f"{r['peak'] / gib:>10.2f}{r['plan'] / gib:>10.2f}{r['plan'] / r['peak']:>10.2f}"
            )
        r = rehearse_evaluation(cfg, device, memory_gib)
        shape = f"{r['views']}x{m.clip_len}x{m.size}"
        print(
            f"{backbone:<10}{'eval, ' + str(r['chunk']) + '/pass':<16}{shape:>12}"
            f"{1e3 * r['seconds']:>10.1f}{r['clips_per_s']:>9.1f}{r['peak'] / gib:>10.2f}"
            f"{r['plan'] / gib:>10.2f}{r['plan'] / r['peak']:>10.2f}"
        )
        if device.startswith("cuda"):
            torch.cuda.empty_cache()


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--peak-tflops", type=float, default=None, help="the GPU's dense bf16 peak")
    p.add_argument("--device", default="cuda", help="cuda (default) or cpu: the rehearsal only")
    p.add_argument("--tiny", action="store_true", help="the rehearsal at 8x32x32, width 1/8")
    p.add_argument("--rehearsal-batch", type=int, default=2, help="clips per rehearsal training step")
    p.add_argument(
        "--models", default=",".join(REHEARSAL), help=f"backbones to rehearse ({', '.join(REHEARSAL)})"
    )
    p.add_argument("--eval-memory-gib", type=float, default=None, help="evaluation budget (cgm.memory)")
    args = p.parse_args()
    models = [m.strip() for m in args.models.split(",") if m.strip()]
    unknown = [m for m in models if m not in REHEARSAL]
    if unknown or not models:
        p.error(f"--models: unknown {unknown or models}; valid: {', '.join(REHEARSAL)}")
    rehearse = dict(
        tiny=args.tiny, batch=args.rehearsal_batch, steps=min(args.steps, 3), models=models,
        memory_gib=args.eval_memory_gib,
    )  # fmt: skip
    if args.device == "cpu":
        print(f"torch {torch.__version__}, CPU: the rehearsal's code (no GPU check)")
        rehearsal("cpu", **rehearse)
        return 0
    if not torch.cuda.is_available():
        print("no CUDA device: GPU check not run")
        return 0
    name = torch.cuda.get_device_name()
    peak = args.peak_tflops or peak_tflops(name)
    print(
        f"torch {torch.__version__}, {name}, peak bf16 "
        f"{f'{peak:.0f} TFLOP/s' if peak else 'unknown (give --peak-tflops)'}"
    )
    check_warp("cuda")
    warp_kernels("cuda")
    train_step_rates("cuda", args.batch, args.steps, peak)
    rehearsal("cuda", **rehearse)
    return 0


if __name__ == "__main__":
    sys.exit(main())
