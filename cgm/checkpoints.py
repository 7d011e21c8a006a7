"""Checkpoints in one place: atomic save, safe load, slim weights, DDP/compile unwrapping, and the
one policy for starting a model from another run's (or a user's) weights.

- `save` writes to a temporary file of its own process (`.<name>.<pid>.<random>.tmp`) and renames
  it over the target: a crash never leaves half a file, and two processes never share a temp file.
- `load` reads with `torch.load(..., weights_only=True)` (a pickle can run code) and turns an
  empty, truncated or foreign file into a `CheckpointError` that names the file.
- `slim` replaces a training checkpoint by its model weights in float16 (small enough to commit).
- `load_weights` reports every missing, unexpected and shape-mismatched tensor and fails unless
  each is under a module the caller names in `skip` (e.g. the action heads a fine-tuning run
  starts fresh); `partial=True` accepts missing and unexpected tensors (a user's ImageNet weights
  for one sub-module), never a shape mismatch outside `skip`.
- `config_differences` names the config fields in which a checkpoint differs from a run.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from cgm.errors import UserError

log = logging.getLogger(__name__)

PREFIXES = ("module.", "_orig_mod.")  # DDP and torch.compile wrappers
SLIM_FORMAT = "cgm-weights-fp16"


class CheckpointError(ValueError):
    """A checkpoint that cannot be used: unreadable, of another model, or of another run."""


class CheckpointWriteError(UserError, OSError):
    """A checkpoint that could not be written (a full disk); the previous one is untouched."""


# --------------------------------------------------------------------------- files


def save(state: dict, path: str | os.PathLike) -> Path:
    """Write `state` atomically: a per-process temporary file in the same folder, then a rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.{os.getpid()}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(state, f)
        os.replace(tmp, path)
    except BaseException as err:
        Path(tmp).unlink(missing_ok=True)
        if isinstance(err, (OSError, RuntimeError)):  # a full disk: OSError, or torch's "unexpected pos"
            first = (str(err).strip().splitlines() or [type(err).__name__])[0]
            free = shutil.disk_usage(path.parent).free
            kept = f"the previous {path} is untouched" if path.exists() else f"no {path.name} was written"
            raise CheckpointWriteError(
                f"could not write {path} ({first}; {free / 2**20:.0f} MiB free on its disk); {kept}"
            ) from err
        raise
    return path


def clean_temporary(folder: str | os.PathLike, name: str = "checkpoint.pt") -> list[Path]:
    """Remove the temporary files `save` left in `folder` for `name` when its process was killed:
    `.<name>.<pid>.<random>.tmp` whose pid is no longer running, or is this process's (a restarted
    container reuses pids; call this before this process saves). Returns what was removed."""
    removed = []
    for tmp in Path(folder).glob(f".{name}.*.tmp"):
        pid = tmp.name[len(name) + 2 :].split(".")[0]
        if pid.isdigit() and (int(pid) == os.getpid() or not _running(int(pid))):
            tmp.unlink(missing_ok=True)
            removed.append(tmp)
    return removed


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def load(path: str | os.PathLike, map_location="cpu") -> dict:
    """A checkpoint dict read with weights_only=True, or a CheckpointError/FileNotFoundError
    naming the file and what is wrong with it."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint at {path}")
    if path.stat().st_size == 0:
        raise CheckpointError(f"checkpoint {path} is empty (0 bytes)")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as err:  # torch raises RuntimeError, EOFError, UnpicklingError, ... by cause
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise CheckpointError(
            f"checkpoint {path} cannot be read (truncated, corrupt, or not a "
            f"weights-only torch file): {first}"
        ) from None
    if not isinstance(state, dict):
        raise CheckpointError(f"checkpoint {path} holds a {type(state).__name__}, not a dict of tensors")
    return state


def is_training_state(state: Mapping) -> bool:
    """Whether `state` is a full training checkpoint (resumable), not weights only."""
    return all(k in state for k in ("model", "optimizer", "step", "train_config"))


def slim(path: str | os.PathLike) -> Path:
    """Replace a training checkpoint by its model weights in float16, with its step and configs."""
    state = load(path)
    weights = {k: v.half() if v.is_floating_point() else v for k, v in model_weights(state, path).items()}
    return save(
        {
            "model": weights,
            "step": state["step"],
            "model_config": state["model_config"],
            "train_config": state["train_config"],
            "format": SLIM_FORMAT,
        },
        path,
    )


# --------------------------------------------------------------------------- names


def unwrap(model: nn.Module) -> nn.Module:
    """The bare model inside DDP and torch.compile wrappers (its state_dict has no prefixes)."""
    while True:
        if isinstance(model, nn.parallel.DistributedDataParallel):
            model = model.module
        elif hasattr(model, "_orig_mod"):
            model = model._orig_mod
        else:
            return model


def strip_prefixes(key: str) -> str:
    """A tensor name without DDP/compile wrapper prefixes (`module.`, `_orig_mod.`, nested)."""
    while key.startswith(PREFIXES):
        key = key.split(".", 1)[1]
    return key


def model_weights(state: Mapping, where: str | os.PathLike = "state dict") -> dict[str, torch.Tensor]:
    """The name -> tensor weights of a checkpoint (ours: under "model"; others: under
    "state_dict", or the dict itself), wrapper prefixes stripped."""
    for key in ("model", "state_dict"):
        if isinstance(state.get(key), Mapping):
            state = state[key]
    weights = {strip_prefixes(k): v for k, v in state.items() if isinstance(v, torch.Tensor)}
    if not weights:
        raise CheckpointError(
            f"{where}: holds no tensors (expected model weights under 'model', "
            f"'state_dict' or at the top level; keys: {sorted(state)[:8]})"
        )
    return weights


# --------------------------------------------------------------------------- the load policy


def _under(key: str, prefixes: Iterable[str]) -> bool:
    return any(key == p or key.startswith(p + ".") for p in prefixes)


@dataclass
class LoadReport:
    """What `load_weights` did: tensors loaded, and those left as initialised (missing), ignored
    (unexpected) or not loaded for their shape (mismatched: name, checkpoint shape, model shape)."""

    source: str
    loaded: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)
    mismatched: list[tuple[str, tuple, tuple]] = field(default_factory=list)

    @property
    def left_random(self) -> list[str]:
        """Model tensors that keep their initialisation (missing or mismatched)."""
        return sorted(self.missing + [k for k, _, _ in self.mismatched])

    def __str__(self) -> str:
        parts = [f"{len(self.loaded)} tensors loaded from {self.source}"]
        for what, keys in (
            ("missing from the checkpoint (left as initialised)", self.missing),
            ("in the checkpoint only (ignored)", self.unexpected),
            ("of another shape (left as initialised)", [k for k, _, _ in self.mismatched]),
        ):
            if keys:
                parts.append(f"{len(keys)} {what}: {_modules(keys)}")
        return "; ".join(parts)


def _modules(keys: list[str]) -> str:
    """Tensor names grouped by their top-level module: 'lr_head (12), hr_head (12)'."""
    counts: dict[str, int] = {}
    for k in keys:
        counts[k.split(".")[0]] = counts.get(k.split(".")[0], 0) + 1
    return ", ".join(f"{m} ({n})" for m, n in counts.items())


def load_weights(
    model: nn.Module, source: str | os.PathLike | Mapping, *, skip: Iterable[str] = (), partial: bool = False
) -> LoadReport:
    """Load a checkpoint's weights (a path or a state dict) into `model` under one policy.

    Every model tensor must be loaded, and every checkpoint tensor used, with the same shape,
    except tensors under the module prefixes in `skip` (e.g. ("lr_head", "hr_head")), which the
    caller expects to start fresh. `partial=True` also accepts missing and unexpected tensors
    anywhere (not shape mismatches). Otherwise a CheckpointError lists what does not fit.
    """
    where = str(source) if not isinstance(source, Mapping) else "the given state dict"
    state = model_weights(load(source) if not isinstance(source, Mapping) else source, where)
    model = unwrap(model)
    own = model.state_dict()
    skip = tuple(skip)
    report = LoadReport(where)
    report.missing = [k for k in own if k not in state]
    report.unexpected = [k for k in state if k not in own]
    report.mismatched = [
        (k, tuple(v.shape), tuple(own[k].shape))
        for k, v in state.items()
        if k in own and tuple(v.shape) != tuple(own[k].shape)
    ]
    report.loaded = [k for k, v in state.items() if k in own and tuple(v.shape) == tuple(own[k].shape)]
    bad = [
        f"shape mismatch: {k} is {c} in the checkpoint, {m} in the model"
        for k, c, m in report.mismatched
        if not _under(k, skip)
    ]
    if not partial:
        bad += [f"missing from the checkpoint: {k}" for k in report.missing if not _under(k, skip)]
        bad += [f"not in the model: {k}" for k in report.unexpected if not _under(k, skip)]
    if bad:
        hint = f" (skipping only {list(skip)})" if skip else ""
        raise CheckpointError(
            f"{where} does not fit the model{hint}: {len(bad)} tensors, e.g. "
            + "; ".join(bad[:4])
            + ". Build the model with the checkpoint's config, "
            "or name the modules expected to start fresh (skip=...)"
        )
    model.load_state_dict({k: state[k] for k in report.loaded}, strict=False)
    log.info("load_weights: %s", report)
    return report


def config_differences(stored: Mapping, current: Mapping, *, ignore: Iterable[str] = ()) -> list[str]:
    """'field: stored -> current' for every config field both record and that differs (lists and
    tuples compare equal; a field one side lacks was added later, at its default, and is skipped)."""

    def norm(v):
        return list(v) if isinstance(v, tuple) else v

    ignore = set(ignore)
    return [
        f"{k}: {stored[k]!r} -> {current[k]!r}"
        for k in stored
        if k in current and k not in ignore and norm(stored[k]) != norm(current[k])
    ]
