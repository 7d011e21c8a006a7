"""The CPU memory allocator of a training process: keep freed memory instead of handing it back.

A CGM-Net step on CPU allocates and frees tensors of several MB each (the 81-tap HR maps of a
laptop-profile step are 21 MB; the float32 Winograd product 48 MB). glibc's malloc serves blocks
above its mmap threshold with fresh `mmap`s and returns them on `free`, and trims the heap top
above its trim threshold: a block served that way has its pages faulted in again at every step.
By default the threshold rises with use (below) but never above 32 MiB, and the heap is trimmed.
`retain_freed_memory()` raises both thresholds (`mallopt`: mmap above 1 GiB only, never trim), so
freed blocks of any size are reused by the next step; the process then holds its peak heap until
it exits, as PyTorch's CUDA caching allocator does on a GPU.

It changes no number a step computes. The Trainer calls it on CPU; `glibc_defaults()` goes back to
what glibc does by default in a long-running process (benchmarks/train.py uses it for the old
path). Outside glibc (macOS, musl) nothing is changed and `state()` says so.

A trap for baselines: glibc's default mmap threshold is *dynamic*. It starts at 128 KiB and rises
to the size of each mmapped block freed, up to 32 MiB on 64-bit, with the trim threshold at twice
that; so after a step or two a process that never calls `mallopt` serves blocks up to 32 MiB from
its heap and faults only on the larger ones. Any `mallopt` of a threshold turns the dynamic rule
off for good. Pinning the initial 128 KiB is therefore not glibc's default at all: it makes the
laptop float32 step fault ~267,000 pages a step and take 1.03 s instead of 0.70 s (Intel Xeon with
AMX, 1 thread), overstating a baseline's cost. `glibc_defaults()` sets the dynamic rule's steady
state (32 MiB / 64 MiB): 0.69-0.72 s, as a process that never called `mallopt` (0.69-0.71 s).
docs/decisions/003-allocator-keeps-freed-memory.md has the measurements.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import platform

# mallopt parameters (glibc's malloc.h)
M_TRIM_THRESHOLD, M_TOP_PAD, M_MMAP_THRESHOLD = -1, -2, -3
# Blocks up to 1 GiB from the heap (threads other than the main one have 64 MiB arenas and still
# mmap above that); the trim threshold is a C int: the largest, i.e. never trim.
RETAIN = {M_MMAP_THRESHOLD: 1 << 30, M_TRIM_THRESHOLD: 2**31 - 1, M_TOP_PAD: 64 << 20}
# glibc's dynamic thresholds in a process that has freed a block of 32 MiB or more (64-bit:
# DEFAULT_MMAP_THRESHOLD_MAX, and trim at twice the mmap threshold); the top pad is its default.
GLIBC_DEFAULTS = {M_MMAP_THRESHOLD: 32 << 20, M_TRIM_THRESHOLD: 64 << 20, M_TOP_PAD: 128 << 10}

_state = "default (not set by cgm)"


def _libc():
    """glibc's handle, or None on another C library."""
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return None
    return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")


def _set(params: dict[int, int], name: str) -> str:
    global _state
    libc = _libc()
    if libc is None:
        _state = f"unchanged (not glibc: {platform.system()} {platform.libc_ver()[0] or 'unknown libc'})"
        return _state
    failed = [p for p, v in params.items() if libc.mallopt(ctypes.c_int(p), ctypes.c_int(v)) != 1]
    if failed:
        raise RuntimeError(f"mallopt refused parameters {failed} (glibc {platform.libc_ver()[1]})")
    _state = name
    return _state


def retain_freed_memory() -> str:
    """Keep freed heap memory for reuse (mmap threshold 1 GiB, no trimming); -> `state()`."""
    return _set(RETAIN, "retain freed memory (mmap threshold 1 GiB, trim off)")


def glibc_defaults() -> str:
    """glibc's default thresholds as a running process has them (the dynamic mmap threshold at its
    32 MiB maximum, trim 64 MiB; see the module docstring); -> `state()`."""
    return _set(GLIBC_DEFAULTS, "glibc defaults (dynamic thresholds, steady state: mmap 32 MiB, trim 64 MiB)")


def state() -> str:
    """What this process's allocator was last set to (recorded in every result's environment)."""
    return _state
