"""SynthMotion generation rate: clips/s and ms/clip on this CPU (a table, not a test).

    .venv/bin/python benchmarks/synthmotion.py [--clips 50]

Target: a clip of the paper's shape (16x112x112) in under 50 ms. The first item of each size also builds the
texture atlas; it is timed separately ("setup") and excluded from the rate. Rendering runs
single-threaded by design (see `cgm.data.synthmotion._one_thread`); DataLoader workers scale it.
"""

from __future__ import annotations

import argparse
import os
import time

import torch

from cgm.data.synthmotion import SynthMotion

# (clip_len, size, future): the paper's clip, with its target frame, the smoke profile's clip
CASES = ((16, 112, False), (16, 112, True), (8, 64, True))


def synthmotion_rate(
    clip_len: int = 16, size: int = 112, clips: int = 50, future: bool = True, seed: int = 0
) -> dict:
    """Generate `clips` items and return {'setup_s', 'ms_per_clip', 'clips_per_s', ...}."""
    ds = SynthMotion("train", n=clips + 1, clip_len=clip_len, size=size, seed=seed, future=future)
    start = time.perf_counter()
    ds[0]
    setup = time.perf_counter() - start
    start, cpu = time.perf_counter(), time.process_time()
    for i in range(1, clips + 1):
        ds[i]
    elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu
    return {
        "clip_len": clip_len,
        "size": size,
        "future": future,
        "clips": clips,
        "threads": torch.get_num_threads(),
        "setup_s": setup,
        "ms_per_clip": 1000 * elapsed / clips,
        "clips_per_s": clips / elapsed,
        "cpu_ms_per_clip": 1000 * cpu / clips,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=int, default=50)
    args = parser.parse_args()
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(
        f"SynthMotion generation, torch {torch.__version__}, {os.cpu_count()} CPUs, load average {load:.1f}"
    )
    print("(cpu ms/clip: CPU time of this process; on a busy machine it estimates the unloaded")
    print(" wall time better than wall time does)")
    print(f"{'frames x H x W':>20} {'setup s':>8} {'ms/clip':>8} {'clips/s':>8} {'cpu ms/clip':>12}")
    for clip_len, size, future in CASES:
        r = synthmotion_rate(clip_len, size, clips=args.clips, future=future)
        name = f"{clip_len}{'+1' if future else ''} x {size} x {size}"
        print(
            f"{name:>20} {r['setup_s']:8.2f} {r['ms_per_clip']:8.1f} {r['clips_per_s']:8.1f} "
            f"{r['cpu_ms_per_clip']:12.1f}"
        )


if __name__ == "__main__":
    main()
