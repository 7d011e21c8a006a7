"""The `CGM_*` environment variables: every one, its default and its meaning, in one place.

| variable | default | meaning |
|---|---|---|
| `CGM_THREADS` | 2 | torch threads of CPU training (the count the committed smoke runs used) |
| `CGM_RUNS_DIR` | results/runs | the run cache (read at import: papermill kernels and torchrun ranks inherit it) |
| `CGM_RESULTS_DIR` | results | where notebooks write their CSV and PNG files (tests redirect it) |
| `CGM_WEIGHTS_DIR` | data/weights | the folder holding RAFT's weights files (never downloaded) |
| `CGM_CONV` | fast | CPU convolutions: `fast` (cgm.fastconv) or `direct` (torch's) |
| `CGM_WARP` | taps | the CPU fast path of adaptive_warp: `taps` or `native` (compiled C) |
| `CGM_NATIVE_CACHE` | ~/.cache/cgm/native | where the compiled warp kernels are kept |
| `CGM_EVAL_MEMORY_GIB` | unset (the device's default) | memory budget of one evaluation forward pass |
| `CGM_EVAL_WORKERS` | unset (the config's num_workers) | decoding workers of evaluation |
| `CGM_<DATASET>_ROOT` | unset | a dataset's folder, e.g. `CGM_UCF101_ROOT`, `CGM_VIDEOFOLDER_ROOT` |

`read()` parses them into a frozen `Settings`, with a one-line error naming a variable whose value
is not of its kind. Modules that fix a choice for the whole process (the run cache, the conv and
warp backends) read it once at import; the others call `read()` where they use a value, because
the CLI sets `CGM_EVAL_*` and `CGM_<DATASET>_ROOT` for the runs it starts and tests set variables
per test.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType

ROOT = Path(__file__).resolve().parent.parent
CONV_BACKENDS = ("fast", "direct")
WARP_BACKENDS = ("native", "taps")


@dataclass(frozen=True)
class Settings:
    """The values of the `CGM_*` variables (module docstring), parsed and checked."""

    threads: int = 2
    runs_dir: Path = ROOT / "results" / "runs"
    results_dir: Path = ROOT / "results"
    weights_dir: Path = ROOT / "data" / "weights"
    conv: str = "fast"
    warp: str = "taps"
    native_cache: Path = Path.home() / ".cache" / "cgm" / "native"
    eval_memory_gib: float | None = None
    eval_workers: int | None = None
    data_roots: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))

    def data_root(self, dataset: str) -> str | None:
        """CGM_<DATASET>_ROOT of `dataset` (lower-case name, e.g. "ucf101"), or None."""
        return self.data_roots.get(dataset.lower())


def _number(env: Mapping[str, str], name: str, kind: type):
    text = env.get(name)
    if not text:
        return None
    try:
        value = kind(text)
    except ValueError:
        what = "an integer" if kind is int else "a number"
        raise ValueError(f"{name}={text!r} is not {what}") from None
    return value


def _choice(env: Mapping[str, str], name: str, choices: tuple[str, ...], default: str) -> str:
    value = env.get(name) or default
    if value not in choices:
        raise ValueError(f"${name} must be one of {choices}, got {value!r}")
    return value


def read(env: Mapping[str, str] | None = None) -> Settings:
    """The settings of `env` (default: `os.environ` now), defaults where a variable is unset or empty."""
    env = os.environ if env is None else env
    d = Settings()
    threads = env.get("CGM_THREADS")
    if threads is not None and (not threads.isdigit() or int(threads) < 1):
        raise ValueError(f"CGM_THREADS must be a positive integer, got {threads!r}")
    roots = {
        k[len("CGM_") : -len("_ROOT")].lower(): v
        for k, v in env.items()
        if k.startswith("CGM_") and k.endswith("_ROOT") and len(k) > len("CGM__ROOT") and v
    }
    return Settings(
        threads=int(threads) if threads is not None else d.threads,
        runs_dir=Path(env.get("CGM_RUNS_DIR") or d.runs_dir).expanduser(),
        results_dir=Path(env.get("CGM_RESULTS_DIR") or d.results_dir),
        weights_dir=Path(env.get("CGM_WEIGHTS_DIR") or d.weights_dir),
        conv=_choice(env, "CGM_CONV", CONV_BACKENDS, d.conv),
        warp=env.get("CGM_WARP") or d.warp,  # checked by cgm.warp, which names its backends
        native_cache=Path(env.get("CGM_NATIVE_CACHE") or d.native_cache),
        eval_memory_gib=_number(env, "CGM_EVAL_MEMORY_GIB", float),
        eval_workers=_number(env, "CGM_EVAL_WORKERS", int),
        data_roots=MappingProxyType(roots),
    )
