"""What a computed run records besides its config, and the thread count it trains with.

torch's CPU thread count changes the reduction order of CPU convolutions, hence the last digits of
every step and, after a few hundred steps, the trained model (measured: table6/cgmul, 40 steps, ℓ1
0.08220 with 1 thread, 0.08264 with 2; two runs with the same count agree to every digit). So every
computation (`runs._compute`) trains and evaluates under `pinned_threads`, and its result.json
records `environment()`: a rerun on the same machine gives the same numbers, and a rerun elsewhere
can be matched to what differs. Neither enters the config hash.
"""

from __future__ import annotations

import contextlib
import platform
import subprocess
from pathlib import Path

import numpy
import torch

from cgm import allocator, settings
from cgm.train import cpu_bf16_native

ROOT = Path(__file__).resolve().parents[2]

# CPU runs train with this many torch threads whatever the machine's core count or OMP_NUM_THREADS;
# 2 is the count the committed smoke runs were computed with (the 2-core development machine).
# CGM_THREADS overrides.
TRAIN_THREADS = settings.Settings.threads


def train_threads() -> int:
    """The torch thread count CPU training uses: $CGM_THREADS, else TRAIN_THREADS."""
    return settings.read().threads


@contextlib.contextmanager
def pinned_threads(device: str = "cpu"):
    """Run the block with `train_threads()` torch threads on a CPU device (restored after), so a
    rerun on the same machine gives the same numbers."""
    if not str(device).startswith("cpu"):
        yield
        return
    saved = torch.get_num_threads()
    torch.set_num_threads(train_threads())
    try:
        yield
    finally:
        torch.set_num_threads(saved)


def git_commit() -> str | None:
    """The code's commit (`+modified` when cgm/ has uncommitted changes), None outside git."""
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short=12", "HEAD"], cwd=ROOT, capture_output=True, text=True, timeout=10
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--", "cgm"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=10,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return (head + ("+modified" if dirty else "")) or None


def environment() -> dict:
    """What a result records besides its config: torch threads, library versions, CPU and the
    code's commit. The config hash does not cover these; a rerun matches only under the same."""
    return {
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "torch_interop_threads": torch.get_num_interop_threads(),
        "numpy": numpy.__version__,
        "python": platform.python_version(),
        "machine": platform.machine(),
        "processor": platform.processor() or None,
        "code": git_commit(),
        "allocator": allocator.state(),
        "cpu_bf16_native": cpu_bf16_native(),
    }
