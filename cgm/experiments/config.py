"""What one run computes: `ExperimentConfig` (model, train, typed data and eval specs), the
override language of `run(name, profile, **overrides)` and the config hash that names a cached run.

The hash is SHA-256 over the JSON of `ExperimentConfig.to_dict()` less what only changes how the
numbers are computed (UNHASHED_TRAIN, UNHASHED_EVAL; docs/decisions/010-run-identity.md); the
specs' `to_dict` keeps the JSON the untyped dicts of earlier versions had, so every cached run
keeps its hash. `overrides_between` gives the overrides that turn one config into another (what
`python -m cgm list` shows beside a cached run).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from cgm.data.registry import DATASETS, SPLITS
from cgm.network import ADDED_FIELDS as NETWORK_ADDED_FIELDS
from cgm.network import CGMConfig
from cgm.protocols import PIPELINES
from cgm.train import ADDED_FIELDS as TRAIN_ADDED_FIELDS
from cgm.train import UNHASHED_FIELDS, TrainConfig, config_dict

# TrainConfig fields that do not change what a run computes: left out of the hash.
UNHASHED_TRAIN = UNHASHED_FIELDS
# EvalSpec fields that do not change what a run measures (the evaluation batch: clips per forward
# pass), hashed at a fixed value, the one every run cached before they left the hash was written
# with: any value gives the same hash, and those runs keep theirs.
UNHASHED_EVAL = {"batch_size": 8}
SECTIONS = ("model", "train", "data", "eval")
DATA_FIELDS = ("name", "split", "data_root", "kw")
# Plain override names that go to the training set: the fields above, and two keyword arguments.
DATA_KEYS = (*DATA_FIELDS, "fold", "n")
EVAL_OVERRIDES = ("batch_size", "max_clips")
EMBEDDED = ("synthmotion", "natural", "footage")  # datasets that come with the package: no data_root


def _plain(value):
    """JSON-shaped copy (tuples become lists), as the specs' JSON always had."""
    return json.loads(json.dumps(value, default=str))


class _ReadAsDict(Mapping):
    """Read access as the dict of `to_dict()` (`cfg.data["name"]`, `{**cfg.data}`): the form these
    specs had before they were typed. Code in the package uses the attributes."""

    def __getitem__(self, key):
        return self.to_dict()[key]

    def __iter__(self):
        return iter(self.to_dict())

    def __len__(self) -> int:
        return len(self.to_dict())


@dataclass(frozen=True)
class DataSpec(_ReadAsDict):
    """One dataset: `build_dataset(name, split, data_root=..., **kw)`. Evaluation sets also say
    how many clips to score (`max_clips`, None = all) and, for action, the `pipelines` scored."""

    name: str
    split: str
    kw: dict = field(default_factory=dict)
    data_root: str | None = None
    max_clips: int | None = None
    pipelines: tuple[str, ...] | None = None
    # Hash compatibility: the smoke profile's evaluation sets were written without a "data_root"
    # key; False keeps their JSON, and so the hash of every cached run.
    root_key: bool = field(default=True, repr=False)

    def __post_init__(self):
        if self.name not in DATASETS:
            raise ValueError(f"unknown dataset {self.name!r}; valid: {', '.join(DATASETS)}")
        if self.split not in SPLITS:
            raise ValueError(
                f"dataset {self.name!r}: unknown split {self.split!r}; valid: {', '.join(SPLITS)}"
            )
        if not isinstance(self.kw, Mapping):
            raise ValueError(
                f"dataset {self.name!r}: kw must be a dict of keyword arguments, got {self.kw!r}"
            )
        object.__setattr__(self, "kw", dict(self.kw))
        n, fold = self.kw.get("n"), self.kw.get("fold")
        if n is not None and (isinstance(n, bool) or not isinstance(n, int) or n < 1):
            raise ValueError(f"dataset {self.name!r}: n (number of clips) must be an integer >= 1, got {n!r}")
        if fold is not None and fold not in (1, 2, 3):
            raise ValueError(f"dataset {self.name!r}: fold must be 1, 2 or 3, got {fold!r}")
        if self.data_root is not None and self.name in EMBEDDED:
            raise ValueError(
                f"dataset {self.name!r} is embedded and reads no data_root (got "
                f"{self.data_root!r}); the smoke profile trains on embedded data: use "
                "--profile paper for a real dataset"
            )
        if self.max_clips is not None and (
            isinstance(self.max_clips, bool) or not isinstance(self.max_clips, int) or self.max_clips < 1
        ):
            raise ValueError(f"max_clips must be an integer >= 1 (or None for all), got {self.max_clips!r}")
        if self.pipelines is not None:
            pipelines = (self.pipelines,) if isinstance(self.pipelines, str) else tuple(self.pipelines)
            unknown = [p for p in pipelines if p not in PIPELINES]
            if unknown or not pipelines:
                raise ValueError(f"unknown pipelines {unknown or pipelines}; valid: {', '.join(PIPELINES)}")
            object.__setattr__(self, "pipelines", pipelines)

    def to_dict(self) -> dict:
        d: dict[str, Any] = {"name": self.name, "split": self.split}
        if self.root_key:
            d["data_root"] = self.data_root
        d["kw"] = _plain(self.kw)
        if self.max_clips is not None:
            d["max_clips"] = self.max_clips
        if self.pipelines is not None:
            d["pipelines"] = list(self.pipelines)
        return d

    @classmethod
    def from_dict(cls, d: Mapping) -> DataSpec:
        if isinstance(d, DataSpec):
            return d
        unknown = set(d) - {*DATA_FIELDS, "max_clips", "pipelines"}
        if unknown:
            raise ValueError(
                f"dataset spec: unknown fields {sorted(unknown)}; valid: "
                f"{', '.join(DATA_FIELDS)}, max_clips, pipelines"
            )
        return cls(
            name=d["name"],
            split=d["split"],
            kw=d.get("kw", {}),
            data_root=d.get("data_root"),
            max_clips=d.get("max_clips"),
            pipelines=d.get("pipelines"),
            root_key="data_root" in d,
        )


@dataclass(frozen=True)
class EvalSpec(_ReadAsDict):
    """The evaluation of a run: motion sets (ℓ1, PSNR/SSIM, EPE) and action sets (top-k per
    pipeline), each keyed by the tag that prefixes its metrics, at `batch_size` clips."""

    batch_size: int = 8
    motion: dict[str, DataSpec] = field(default_factory=dict)
    action: dict[str, DataSpec] = field(default_factory=dict)

    def __post_init__(self):
        if isinstance(self.batch_size, bool) or not isinstance(self.batch_size, int) or self.batch_size < 1:
            raise ValueError(f"eval batch_size must be an integer >= 1, got {self.batch_size!r}")
        object.__setattr__(self, "motion", {t: DataSpec.from_dict(s) for t, s in self.motion.items()})
        object.__setattr__(self, "action", {t: DataSpec.from_dict(s) for t, s in self.action.items()})
        missing = [t for t, s in self.action.items() if s.pipelines is None]
        if missing:
            raise ValueError(
                f"action evaluation sets {missing} name no pipelines; valid: {', '.join(PIPELINES)}"
            )

    def to_dict(self) -> dict:
        return {
            "batch_size": self.batch_size,
            "motion": {t: s.to_dict() for t, s in self.motion.items()},
            "action": {t: s.to_dict() for t, s in self.action.items()},
        }

    @classmethod
    def from_dict(cls, d: Mapping) -> EvalSpec:
        if isinstance(d, EvalSpec):
            return d
        unknown = set(d) - {"batch_size", "motion", "action"}
        if unknown:
            raise ValueError(
                f"eval spec: unknown fields {sorted(unknown)}; valid: batch_size, motion, action"
            )
        return cls(batch_size=d.get("batch_size", 8), motion=d.get("motion", {}), action=d.get("action", {}))

    def sets(self):
        """(kind, tag, spec) of every evaluation set, motion first."""
        return [("motion", t, s) for t, s in self.motion.items()] + [
            ("action", t, s) for t, s in self.action.items()
        ]


@dataclass(frozen=True)
class ExperimentConfig:
    """Everything one run needs. `data`: the training set; `eval`: what is measured after
    training; `pretrain_from`: an experiment whose final weights initialise the model (same
    profile). Dicts given for `data`/`eval` are read into the typed specs."""

    model: CGMConfig
    train: TrainConfig
    data: DataSpec
    eval: EvalSpec
    pretrain_from: str | None = None

    def __post_init__(self):
        object.__setattr__(self, "data", DataSpec.from_dict(self.data))
        object.__setattr__(self, "eval", EvalSpec.from_dict(self.eval))

    @classmethod
    def from_dict(cls, d: Mapping) -> ExperimentConfig:
        """The config of `to_dict()`'s JSON (a cached run's config.json; its other keys ignored)."""
        return cls(
            CGMConfig.from_dict(d["model"]),
            TrainConfig(**d["train"]),
            d["data"],
            d["eval"],
            d.get("pretrain_from"),
        )

    def to_dict(self) -> dict:
        return {
            "model": self.model.to_dict(),
            "train": config_dict(self.train),
            "data": self.data.to_dict(),
            "eval": self.eval.to_dict(),
            "pretrain_from": self.pretrain_from,
        }


def config_hash(cfg: ExperimentConfig, pretrain_hash: str | None = None) -> str:
    """12 hex digits of SHA-256 over the config (and the pretraining run's hash)."""
    d = cfg.to_dict()
    d["train"] = {k: v for k, v in d["train"].items() if k not in UNHASHED_TRAIN}
    d["eval"] = {**d["eval"], **UNHASHED_EVAL}
    d["pretrain_hash"] = pretrain_hash
    return hashlib.sha256(json.dumps(d, sort_keys=True, default=str).encode()).hexdigest()[:12]


# --------------------------------------------------------------------------- overrides


def _owner(key: str, model: dict, train: dict) -> tuple[str, str]:
    """(section, field) of an override key: `section__field`, or a plain field one section owns."""
    if "__" in key:
        section, name = key.split("__", 1)
        if section not in SECTIONS:
            raise ValueError(f"override {key!r}: unknown section {section!r}; valid: {SECTIONS}")
        return section, name
    owners = [s for s, fields in (("model", model), ("train", train), ("data", DATA_KEYS)) if key in fields]
    if len(owners) != 1:
        valid = sorted(set(model) | set(train) | set(DATA_KEYS))
        raise ValueError(
            f"override {key!r} is "
            + (
                "ambiguous (in " + ", ".join(owners) + "); prefix it with model__/train__/data__"
                if owners
                else f"not a config field; valid: {', '.join(valid)}"
            )
        )
    return owners[0], key


def _check_finite(key: str, value) -> None:
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"override {key}={value!r}: not a finite number")


def apply_overrides(cfg: ExperimentConfig, overrides: dict[str, Any]) -> ExperimentConfig:
    """New config with `overrides`: `section__field` (model/train/data) or a plain field name that
    one section owns (`steps`, `width`, `data_root`, `fold`, ...); kw of the dataset via `data__kw`;
    `eval__max_clips` / `eval__batch_size` for every evaluation set."""
    # the fields added after runs were cached are left out of to_dict at their defaults: put them
    # back, so that `--set cue_shift=True` finds its field
    model = {**NETWORK_ADDED_FIELDS, **cfg.model.to_dict()}
    train = {**TRAIN_ADDED_FIELDS, **config_dict(cfg.train)}
    data = cfg.data.to_dict()
    eval_batch, max_clips = cfg.eval.batch_size, {}
    sections = {"model": model, "train": train}
    for key, value in overrides.items():
        _check_finite(key, value)
        section, name = _owner(key, model, train)
        if section == "eval":
            if name not in EVAL_OVERRIDES:
                raise ValueError(f"override {key!r}: valid eval overrides: eval__batch_size, eval__max_clips")
            if name == "batch_size":
                eval_batch = value
            else:
                max_clips = {"max_clips": value}
        elif section == "data":
            if name == "kw" and not isinstance(value, Mapping):
                raise ValueError(
                    f"override {key}={value!r}: kw must be a dict of the dataset's keyword arguments, "
                    "e.g. data__kw={'n': 64}"
                )
            if name in ("fold", "n"):
                data["kw"][name] = value
            elif name in DATA_FIELDS:
                data[name] = value
            else:
                raise ValueError(
                    f"override {key!r}: data has no field {name!r}; valid: {', '.join(DATA_KEYS)}"
                )
        elif name not in sections[section]:
            raise ValueError(
                f"override {key!r}: {section} has no field {name!r}; valid: {sorted(sections[section])}"
            )
        else:
            sections[section][name] = value
    if "steps" in overrides or "train__steps" in overrides:
        train["epochs"] = None if train["steps"] is not None else train["epochs"]
    fold = data["kw"].get("fold")

    def eval_set(spec: DataSpec) -> DataSpec:
        d = {**spec.to_dict(), **max_clips}
        # A UCF101/HMDB51 split is a train list and its test list: test the same fold.
        if fold is not None and spec.name == data["name"] and "fold" in d["kw"]:
            d["kw"]["fold"] = fold
        return DataSpec.from_dict(d)

    evaluation = EvalSpec(
        batch_size=eval_batch,
        motion={t: eval_set(s) for t, s in cfg.eval.motion.items()},
        action={t: eval_set(s) for t, s in cfg.eval.action.items()},
    )
    try:
        return ExperimentConfig(
            CGMConfig.from_dict(model),
            TrainConfig(**train),
            DataSpec.from_dict(data),
            evaluation,
            cfg.pretrain_from,
        )
    except TypeError as err:  # a value of the wrong type compared or converted inside a config
        raise ValueError(f"overrides {overrides}: a value has the wrong type ({err})") from None


def overrides_between(base: ExperimentConfig, cfg: ExperimentConfig) -> dict[str, Any]:
    """The overrides with which `apply_overrides(base, ...)` gives `cfg` (plain names where one
    section owns the field): what a run changed from its profile's config. `{}` for the same
    config; a ValueError when no overrides give `cfg` (another pretraining source, evaluation
    sets that differ in more than `max_clips`)."""
    model_b, train_b = base.model.to_dict(), config_dict(base.train)

    def key(section: str, name: str) -> str:
        try:
            return name if _owner(name, model_b, train_b) == (section, name) else f"{section}__{name}"
        except ValueError:
            return f"{section}__{name}"

    out: dict[str, Any] = {}
    for section, mine, theirs in (
        ("model", _plain(dataclasses.asdict(base.model)), _plain(dataclasses.asdict(cfg.model))),
        ("train", _plain(dataclasses.asdict(base.train)), _plain(dataclasses.asdict(cfg.train))),
    ):
        for name, value in theirs.items():
            if value != mine.get(name) and not (name == "epochs" and value is None and cfg.train.steps):
                out[key(section, name)] = value  # (epochs=None follows from steps=N)
    data_b, data_c = base.data.to_dict(), cfg.data.to_dict()
    for name in ("name", "split", "data_root"):
        if data_c.get(name) != data_b.get(name):
            out[key("data", name)] = data_c.get(name)
    kw_b, kw_c = data_b["kw"], data_c["kw"]
    changed = {k for k in set(kw_b) | set(kw_c) if kw_b.get(k) != kw_c.get(k)}
    if changed <= {"fold", "n"} and changed <= set(kw_c):
        out.update({key("data", k): kw_c[k] for k in sorted(changed)})
    elif changed:  # other keyword arguments of the dataset: all of them
        out["data__kw"] = kw_c
    if cfg.eval.batch_size != base.eval.batch_size:
        out["eval__batch_size"] = cfg.eval.batch_size
    clips = {s.max_clips for _, _, s in cfg.eval.sets()}
    if len(clips) == 1 and clips != {s.max_clips for _, _, s in base.eval.sets()}:
        out["eval__max_clips"] = clips.pop()
    got, want = apply_overrides(base, out).to_dict(), cfg.to_dict()
    if got != want:
        differ = ", ".join(k for k in want if got[k] != want[k])
        raise ValueError(f"no overrides of the profile's config give this config (it differs in {differ})")
    return out
