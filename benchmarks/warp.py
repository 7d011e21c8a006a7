"""Benchmark of the Eq. 1 warp: compiled kernels and tap loop vs the unfold reference vs the
memory-traffic floor, against docs/design.md's targets (forward+backward >= 10x faster than the
reference, <= 3x the floor). Measured tables: docs/performance_warp.md.

    python benchmarks/warp.py [--device cpu|cuda] [--threads 1] [--repeats 9]

Implementations: `native` (cgm.warp.adaptive_warp_native, the compiled CPU kernels, opt-in for
adaptive_warp with CGM_WARP=native; skipped when they cannot be built, with the reason printed),
`taps` (cgm.warp.adaptive_warp_taps, the PyTorch tap loop: what adaptive_warp runs by default, on
every device), `reference` (the unfold formula).

For each case (N, C, H, W, K) it prints, in milliseconds (median over --repeats; every
implementation and the floor's copy interleaved within each repeat, so that load from other
processes hits all alike):
  fwd        forward only, under torch.no_grad()
  f+b        forward and backward with respect to both x and m
  floor      the time of copying the bytes that must move, measured in the same loop: a tensor
             copy that reads and writes as many bytes as the op must. Forward: read x and m,
             write out. Forward+backward adds: read grad_out, x and m, write grad_x and grad_m.
  peak MiB   extra memory of one forward+backward call over its inputs. CPU (Linux): growth of
             the peak resident set (VmHWM, reset just before the call) of a fresh subprocess that
             has allocated and touched the inputs; CUDA: torch.cuda.max_memory_allocated above
             the inputs.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch
from _proc import proc_status_kib  # benchmarks/ is on sys.path when a script runs

from cgm import allocator
from cgm.warp import adaptive_warp_native, adaptive_warp_reference, adaptive_warp_taps, native_status

CASES = [(16, 3, 112, 112, 9), (16, 128, 28, 28, 3), (8, 3, 224, 224, 9)]
IMPLS = {"native": adaptive_warp_native, "taps": adaptive_warp_taps, "reference": adaptive_warp_reference}
TARGET_SPEEDUP, TARGET_FLOOR = 10.0, 3.0  # docs/design.md: f+b >= 10x the reference, <= 3x the floor


def _sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def make_inputs(case, device, *, requires_grad: bool, seed: int = 0):
    n, c, h, w, k = case
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, c, h, w, generator=g).to(device)
    m = torch.randn(n, k * k, h, w, generator=g).softmax(1).to(device)
    grad = torch.randn(n, c, h, w, generator=g).to(device)
    return x.requires_grad_(requires_grad), m.requires_grad_(requires_grad), grad


def run_once(fn, x, m, grad, *, backward: bool) -> None:
    if backward:
        x.grad = m.grad = None
        fn(x, m).backward(grad)
    else:
        with torch.no_grad():
            fn(x, m)


def time_impls(case, device, repeats, impls):
    """{impl: {"fwd": ms, "fwd+bwd": ms}}, medians, impls and the floor's copies interleaved
    within each repeat ("floor": a copy moving the bytes of floor_bytes)."""
    times = {name: {"fwd": [], "fwd+bwd": []} for name in [*impls, "floor"]}
    x, m, grad = make_inputs(case, device, requires_grad=True)
    floor_src = {mode: torch.rand(b // 8, device=device) for mode, b in floor_bytes(case).items()}
    floor_dst = {mode: torch.empty_like(t) for mode, t in floor_src.items()}
    for rep in range(repeats + 1):  # the first round warms up and is dropped
        for name in [*impls, "floor"]:
            for mode, backward in (("fwd", False), ("fwd+bwd", True)):
                _sync(device)
                t0 = time.perf_counter()
                if name == "floor":  # reads and writes b // 2 bytes each
                    floor_dst[mode].copy_(floor_src[mode])
                else:
                    run_once(IMPLS[name], x, m, grad, backward=backward)
                _sync(device)
                if rep > 0:
                    times[name][mode].append(1e3 * (time.perf_counter() - t0))
    return {name: {mode: statistics.median(v) for mode, v in d.items()} for name, d in times.items()}


def copy_bandwidth(device: str, mib: int = 256, repeats: int = 9) -> float:
    """Bytes read + written per second by a large tensor copy."""
    a = torch.randn(mib * 2**20 // 4, device=device)
    b = torch.empty_like(a)
    ts = []
    for _ in range(repeats + 1):
        _sync(device)
        t0 = time.perf_counter()
        b.copy_(a)
        _sync(device)
        ts.append(time.perf_counter() - t0)
    return 2 * a.numel() * a.element_size() / statistics.median(ts[1:])


def floor_bytes(case, itemsize: int = 4) -> dict[str, int]:
    n, c, h, w, k = case
    frame, maps = n * c * h * w, n * k * k * h * w
    fwd = 2 * frame + maps  # read x, m; write out
    bwd = 3 * frame + 2 * maps  # read grad_out, x, m; write grad_x, grad_m
    return {"fwd": fwd * itemsize, "fwd+bwd": (fwd + bwd) * itemsize}


def peak_memory_child(case, impl, device, threads) -> float:
    """Run inside a fresh process: extra MiB of one forward+backward over the touched inputs."""
    torch.set_num_threads(threads)
    x, m, grad = make_inputs(case, device, requires_grad=True)
    fn = IMPLS[impl]
    small = make_inputs((1, case[1], 8, 8, case[4]), device, requires_grad=True)
    run_once(fn, *small, backward=True)  # first-call set-up (thread pools, kernels) is not the op's
    if device == "cuda":
        torch.cuda.synchronize()
        base = torch.cuda.memory_allocated()
        torch.cuda.reset_peak_memory_stats()
        run_once(fn, x, m, grad, backward=True)
        torch.cuda.synchronize()
        return (torch.cuda.max_memory_allocated() - base) / 2**20
    # VmHWM (peak resident set of this address space) after resetting it to the current size;
    # not ru_maxrss, which Linux carries over from the parent process across fork and exec.
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")
    base = proc_status_kib("VmRSS")
    run_once(fn, x, m, grad, backward=True)
    return (proc_status_kib("VmHWM") - base) / 2**10


def peak_memory(case, impl, device, threads) -> float:
    code = (
        f"import json, sys; sys.path.insert(0, {str(Path(__file__).resolve().parent)!r}); import warp as b; "
        f"print(json.dumps(b.peak_memory_child({list(case)!r}, {impl!r}, {device!r}, {threads})))"
    )
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def format_table(rows: list[dict]) -> str:
    cols = list(rows[0])
    cells = [[str(r[c]) for c in cols] for r in rows]
    widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(cols)]
    line = lambda vals: "| " + " | ".join(v.rjust(wd) for v, wd in zip(vals, widths)) + " |"
    sep = "|" + "|".join("-" * (wd + 1) + ":" for wd in widths) + "|"
    return "\n".join([line(cols), sep] + [line(r) for r in cells])


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--repeats", type=int, default=9)
    parser.add_argument("--no-memory", action="store_true", help="skip the peak-memory subprocesses")
    parser.add_argument(
        "--keep-freed",
        action="store_true",
        help="glibc: serve large tensors from the heap and keep freed memory (cgm.allocator, as "
        "the Trainer does on CPU), so that a fresh grad_m reuses pages already faulted in",
    )
    args = parser.parse_args(argv)
    if args.device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda: no CUDA device is available")
    if args.threads < 1 or args.repeats < 1:
        raise SystemExit("--threads and --repeats must be >= 1")
    torch.set_num_threads(args.threads)
    if args.keep_freed:
        allocator.retain_freed_memory()  # what the Trainer does on CPU

    impls = ["native", "taps", "reference"]
    status = native_status() if args.device == "cpu" else "CPU only"
    if status != "available":
        impls.remove("native")
    bandwidth = copy_bandwidth(args.device)
    # Both matter for CPU numbers: other processes steal cores, and fresh multi-MB tensors
    # (grad_m, the unfold copy) cost page faults unless PyTorch's allocator uses huge pages.
    load = ", ".join(f"{v:.1f}" for v in os.getloadavg())
    print(
        f"torch {torch.__version__} device={args.device} threads={args.threads} repeats={args.repeats} "
        f"float32; THP_MEM_ALLOC_ENABLE={os.environ.get('THP_MEM_ALLOC_ENABLE', 'unset')}; "
        f"load average {load}; copy bandwidth (read+write) {bandwidth / 1e9:.1f} GB/s; "
        f"compiled kernels: {status}; keep freed memory (mallopt): {args.keep_freed}"
    )
    rows = []
    for case in CASES:
        t = time_impls(case, args.device, args.repeats, impls)
        best = impls[0]
        row = {"N,C,H,W,K": ",".join(map(str, case))}
        for name in impls:
            row[f"{name} fwd"] = f"{t[name]['fwd']:.1f}"
        row["floor fwd"] = f"{t['floor']['fwd']:.1f}"
        for name in impls:
            row[f"{name} f+b"] = f"{t[name]['fwd+bwd']:.1f}"
        row["floor f+b"] = f"{t['floor']['fwd+bwd']:.1f}"
        for name in impls[:-1]:
            speedup = t["reference"]["fwd+bwd"] / t[name]["fwd+bwd"]
            row[f"{name} vs ref f+b"] = f"{speedup:.1f}x"
        for name in impls[:-1]:
            row[f"{name}/floor f+b"] = f"{t[name]['fwd+bwd'] / t['floor']['fwd+bwd']:.1f}x"
        speedup = t["reference"]["fwd+bwd"] / t[best]["fwd+bwd"]
        over = t[best]["fwd+bwd"] / t["floor"]["fwd+bwd"]
        row[f"{best}: >=10x ref, <=3x floor"] = (
            f"{'met' if speedup >= TARGET_SPEEDUP else 'MISSED'}, {'met' if over <= TARGET_FLOOR else 'MISSED'}"
        )
        if not args.no_memory:
            for name in (best, "reference"):
                row[f"{name} peak MiB"] = f"{peak_memory(case, name, args.device, args.threads):.0f}"
        rows.append(row)
        print(f"  done {case}", file=sys.stderr, flush=True)
    print(
        f"times in ms (medians); f+b = forward+backward w.r.t. x and m; floor = a copy of the bytes "
        f"the op must move, timed in the same loop; load average now {os.getloadavg()[0]:.1f}"
    )
    print(format_table(rows))


if __name__ == "__main__":
    main()
