"""The allowed range of every numeric config field, checked when a config is resolved.

A value outside its range (a clip of 100,000 frames, a size of 2**40, a seed numpy cannot take)
would otherwise fail deep inside an allocation or a C call, after work has started; here it is a
ValueError naming the field, the value and the range, before anything runs. The ranges hold every
profile's values with room to spare (the paper trains 16 frames of 112 px, batch 64); they are
limits of what the code and a machine can do, not of what is sensible.

Dataset keyword arguments (`data__kw`, `data__n`, ...) are checked by name against the dataset's
constructor and, where numeric, against `KW_BOUNDS`.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Mapping, Sequence

from cgm.data import datasets, footage, natural, synthmotion

# field: (low, high), both allowed; a float range whose low end is excluded is marked by LOW_OPEN.
MODEL_BOUNDS = {
    "num_classes": (1, 100_000),
    "clip_len": (1, 512),
    "size": (4, 2048),
    "k_lr": (1, 15),
    "width": (0.0, 16.0),
    "context_width": (0.0, 16.0),
    "cost_patch": (1, 31),
    "dropout": (0.0, 0.99),
    "depth": (1, 64),  # each entry
    "decoder_channels": (1, 8192),
    "lr_cnn_channels": (1, 8192),
    "hr_cnn_channels": (1, 8192),
    "lr_cnn_strides": (1, 8),
    "hr_cnn_strides": (1, 8),
}
TRAIN_BOUNDS = {
    "lr": (0.0, 10.0),
    "decay_every": (1, 10**6),
    "decay_factor": (0.0, 1.0),
    "batch_size": (1, 8192),
    "accumulate": (1, 8192),
    "steps": (1, 10**9),
    "epochs": (1, 10**6),
    "num_workers": (0, 512),
    "checkpoint_every": (1, 10**9),
    "seed": (0, 2**32 - 1),  # numpy's seed range; the batch order seeds torch with seed * 100_003
    "log_every": (1, 10**9),
    "eval_every": (0, 10**9),
    "labeled_fraction": (0.0, 1.0),
    "grad_clip": (0.0, 1e6),
    "smoothness": (0.0, 1e6),
    "compactness": (0.0, 1e6),
    "census": (0.0, 1e6),
}
LOW_OPEN = {"width", "context_width", "lr", "decay_factor", "labeled_fraction"}
KW_BOUNDS = {
    "n": (1, 10**7),
    "fold": (1, 3),
    "num_classes": (1, 100_000),
    "stride": (1, 64),
    "step": (1, 10**6),
    "resize": (4, 4096),
    "test_clips": (1, 100),
    "test_crops": (1, 10),
    "seed": (0, 2**32 - 1),
    "max_failures": (0, 10**7),
    "max_pixels": (1, 2**31),
    "speed": (0.0, 1000.0),
    "camera": (0.0, 1000.0),
    "camera_speed": (0.0, 1000.0),  # each entry
}
EVAL_BOUNDS = {"batch_size": (1, 8192), "max_clips": (1, 10**8)}
# Keyword arguments that build_dataset sets itself: never in a data spec's kw.
RESERVED_KW = ("clip_len", "size", "future", "split", "data_root", "train")


def _range(lo, hi, open_low: bool) -> str:
    return f"{'(' if open_low else '['}{lo:g}, {hi:g}]" if isinstance(lo, float) else f"{lo}..{hi}"


def check_value(where: str, value, bounds: tuple, *, open_low: bool = False) -> None:
    """`value` (a number, or a list/tuple of numbers checked one by one) within `bounds`, or a
    ValueError naming `where`, the value and the allowed range. None passes (an optional field)."""
    if value is None:
        return
    lo, hi = bounds
    values = list(value) if isinstance(value, (list, tuple)) else [value]
    for v in values:
        number = isinstance(v, (int, float)) and not isinstance(v, bool)
        ok = number and math.isfinite(v) and (lo < v if open_low else lo <= v) and v <= hi
        if not ok:
            each = " (each entry)" if isinstance(value, (list, tuple)) else ""
            raise ValueError(f"{where}={value!r} is out of range: allowed {_range(lo, hi, open_low)}{each}")


def dataset_keywords(name: str) -> set[str] | None:
    """The keyword arguments the dataset `name` takes in a spec's kw (None: not known here)."""

    clip = datasets.VideoClipDataset.__init__
    own = {
        "synthmotion": [synthmotion.SynthMotion.__init__],
        "natural": [natural.NaturalClips.__init__],
        "footage": [footage.FootageClips.__init__],
        "ucf101": [datasets.UCF101.__init__, clip],
        "hmdb51": [datasets.HMDB51.__init__, clip],
        "kinetics400": [datasets.Kinetics.__init__, clip],
        "kinetics600": [datasets.Kinetics.__init__, clip],
        "videolist": [datasets.VideoList.__init__, clip],
        "videofolder": [datasets.VideoFolder.__init__, clip],
        "ucf_flow": [datasets._UCFSubset.__init__, clip],
        "ucf_pred": [datasets._UCFSubset.__init__, clip],
    }.get(name)
    if own is None:
        return None
    names = {
        p.name
        for f in own
        for p in inspect.signature(f).parameters.values()
        if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
    }
    names |= {"ucf101": {"fold"}, "hmdb51": {"fold"}, "videolist": {"list_file"}}.get(name, set())
    names -= {"self", "samples", "annotation_dir", "annotation_csv", *RESERVED_KW}
    if name != "videolist":  # a list's paths may be relative to another root (kw root=...)
        names.discard("root")
    if not (name.startswith("kinetics") or name == "videolist"):  # the others know their classes
        names.discard("classes")
    return names


def check_kw(where: str, name: str, kw: Mapping) -> None:
    """A dataset spec's kw: known keyword names of the dataset, numbers within KW_BOUNDS."""
    if not isinstance(kw, Mapping):
        raise ValueError(f"{where}.kw must be a dict of keyword arguments of {name!r}, got {kw!r}")
    valid = dataset_keywords(name)
    unknown = sorted(set(kw) - valid) if valid is not None else []
    if unknown:
        raise ValueError(
            f"{where}.kw: {name!r} takes no {', '.join(unknown)}; valid: {', '.join(sorted(valid))}"
        )
    for key, value in kw.items():
        if key in KW_BOUNDS:
            check_value(f"{where}.kw.{key}", value, KW_BOUNDS[key])


def check_bounds(cfg) -> None:
    """Every numeric field of an ExperimentConfig within its range (module docstring)."""
    for section, bounds in (("model", MODEL_BOUNDS), ("train", TRAIN_BOUNDS)):
        obj = getattr(cfg, section)
        for key, rng in bounds.items():
            if hasattr(obj, key):
                value = getattr(obj, key)
                if isinstance(value, Sequence) and not isinstance(value, (list, tuple)):
                    continue
                check_value(f"{section}.{key}", value, rng, open_low=key in LOW_OPEN)
    check_kw("data", cfg.data.name, cfg.data.kw)
    check_value("eval.batch_size", cfg.eval.batch_size, EVAL_BOUNDS["batch_size"])
    for kind, tag, spec in cfg.eval.sets():
        check_kw(f"eval.{kind}.{tag}", spec.name, spec.kw)
        check_value(f"eval.{kind}.{tag}.max_clips", spec.max_clips, EVAL_BOUNDS["max_clips"])
