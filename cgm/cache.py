"""What is cached, what a run costs, and running experiments from a notebook with visible progress.

`cgm.experiments.run` trains or reads a cached run; this module answers the questions a person
asks before calling it: is the run (and the pretraining it starts from) in `results/runs/`?
If not, what will train and for about how long? `run_all` is the notebooks' way to run a set of
experiments: it says what will train, with the expected CPU time, before any training starts, and
shows a text progress bar (in the cell's output and on papermill's `--log-output`).

`pinned_threads`, `train_threads` and `environment` (re-exported from
`cgm.experiments.environment`): every computed run trains under pinned torch threads and records
them with the library versions in its result.json, so a rerun on the same machine matches.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import torch
import tqdm.std

from cgm import experiments as ex
from cgm import train
from cgm.errors import CacheError, user_errors
from cgm.experiments.environment import (  # noqa: F401  (re-exported: cache.pinned_threads, ...)
    TRAIN_THREADS,
    environment,
    pinned_threads,
    train_threads,
)
from cgm.experiments.integrity import read_run
from cgm.experiments.runs import data_roots, local_runs
from cgm.flops import module_gflops
from cgm.network import CGMConfig, CGMNet
from cgm.overrides import format_overrides


@dataclass(frozen=True)
class Link:
    """One run of a chain (pretraining first): its config hash and where it is cached, if it is."""

    name: str
    hash: str
    path: Path | None  # the cached run's folder, None if not cached
    stage: str
    steps: int | None
    backbone: str
    overrides: dict = field(default_factory=dict, compare=False)  # what `run` passes to this link
    profile: str = "smoke"

    @property
    def cached(self) -> bool:
        return self.path is not None

    @property
    def has_checkpoint(self) -> bool:
        return self.path is not None and (self.path / "checkpoint.pt").is_file()


def chain(
    name: str, profile: str = "smoke", /, *, runs_dir: str | Path | None = None, **overrides
) -> list[Link]:
    """The runs `experiments.run(name, profile, **overrides)` involves, pretraining first,
    with the same hashes `run` computes (no work is done)."""
    runs_dir = Path(runs_dir or ex.RUNS)
    cfg = ex.resolve(name, profile, **overrides)
    links: list[Link] = []
    if cfg.pretrain_from:
        passed = ex.pretrain_overrides(overrides)
        links = chain(cfg.pretrain_from, profile, runs_dir=runs_dir, **passed)
    h = ex.config_hash(cfg, links[-1].hash if links else None)
    own = runs_dir / name / h
    path = own if (own / "result.json").is_file() else ex.find_cached(h, runs_dir)
    return links + [
        Link(name, h, path, cfg.train.stage, cfg.train.steps, cfg.model.backbone, dict(overrides), profile)
    ]


def to_train(links: list[Link]) -> list[Link]:
    """The links `run` will train: none if the last is cached; else the last, and each
    pretraining before it whose weights are not kept (only a checkpoint can start a fine-tuning)."""
    if not links or links[-1].cached:
        return []
    out = [links[-1]]
    for link in reversed(links[:-1]):
        if link.has_checkpoint:
            break
        out.insert(0, link)
    return out


# Notebook parameters / CLI flags for the roots a paper-profile chain needs besides the training
# set's (`data_root`): the dataset whose CGM_<DATASET>_ROOT each one sets.
ROOT_PARAMETERS = {
    "pretrain_root": "videofolder",
    "kinetics_root": "kinetics400",
    "ucf101_root": "ucf101",
    "hmdb51_root": "hmdb51",
}
# The parameter that gives each dataset's root (UCF-Flow and UCF-Pred read UCF101's).
ROOT_OF = {**{d: k for k, d in ROOT_PARAMETERS.items()}, "ucf_flow": "ucf101_root", "ucf_pred": "ucf101_root"}


def use_roots(**roots: str | None) -> dict:
    """Set the data roots a chain reads from the environment (`pretrain_root=` the unlabeled video
    folder of self-supervised pretraining, `kinetics_root=`, `ucf101_root=` (also UCF-Flow/-Pred,
    the motion evaluation sets), `hmdb51_root=`) for this process; None leaves one as it is.
    Call before resolving configs. Returns {dataset: root} of what was set."""
    unknown = sorted(set(roots) - set(ROOT_PARAMETERS))
    if unknown:
        raise ValueError(f"unknown data root(s) {unknown}; valid: {', '.join(ROOT_PARAMETERS)}")
    done = {}
    for key, root in roots.items():
        if root is not None:
            dataset = ROOT_PARAMETERS[key]
            os.environ[f"CGM_{dataset.upper()}_ROOT"] = str(root)
            done[dataset] = str(root)
    return done


def root_parameter(dataset: str, *, asked_for: bool) -> str | None:
    """The notebook parameter that gives `dataset`'s root: `data_root` (or its own) for the
    training root of the run asked for, else its own (`pretrain_root`, `ucf101_root`, ...)."""
    own = ROOT_OF.get(dataset)
    return "data_root" + (f" or {own}" if own else "") if asked_for else own


def missing_roots(links: list[Link], profile: str) -> list[str]:
    """One line per missing data root of the links that will train (and be evaluated), those of
    the run asked for first: the link, the notebook parameter and CLI flag that give the root,
    the dataset, what is wrong, the variable, and the layout expected (cached links need no data)."""
    lines, seen = [], set()
    for link in reversed(to_train(links)):
        cfg = ex.resolve(link.name, profile, **link.overrides)
        for r in data_roots(cfg):
            if r.present or (r.env, r.root) in seen:  # (UCF-Flow and UCF-Pred: one UCF101 root)
                continue
            seen.add((r.env, r.root))
            param = root_parameter(r.dataset, asked_for=r.training_root and link is links[-1])
            flag = param.split(" or ")[0].replace("_", "-") if param else ""
            hint = f" (notebook parameter {param}; CLI --{flag})" if param else ""
            lines.append(
                f"{link.name} ({profile}) must train and needs its data{hint}: dataset {r.dataset!r} "
                f"({r.role} of {link.name}): data root {r.problem}; give it"
                + (f" as {param} or" if param else "")
                + f" with {r.env}. Expected layout:\n  "
                + r.layout.replace("\n", "\n  ")
            )
    return lines


def check_chain(links: list[Link], profile: str) -> None:
    """Every dataset the links that will train (and be evaluated) read has a root that is a
    folder, or a ValueError naming every missing one (`missing_roots`), before any work starts."""
    lines = missing_roots(links, profile)
    if len(lines) == 1:
        raise ValueError(lines[0])
    if lines:
        head = f"{len(lines)} data roots are missing (checked before any work):"
        raise ValueError("\n".join([head, *lines]))


def _results(runs_dir: Path):
    """(folder, result) of every cached run that passes the integrity check (others are skipped:
    `run` reports them by path when they are asked for)."""

    for path in sorted(runs_dir.glob("*/*/*/result.json")):
        try:
            yield path.parent, read_run(path.parent)[0]
        except CacheError:
            continue


@functools.lru_cache(maxsize=64)
def _forward_gmac(model_json: str) -> float:
    """GMACs of one forward of the CGM-Net of a model config (JSON), counted on the meta device."""

    cfg = CGMConfig.from_dict(json.loads(model_json))
    with torch.device("meta"):
        model = CGMNet(cfg)
    return module_gflops(model, torch.empty(1, 3, cfg.clip_len, cfg.size, cfg.size, device="meta"))["total"]


def expected_seconds(link: Link, *, runs_dir: str | Path | None = None) -> float | None:
    """CPU seconds `link` took when last computed here: a cached CPU run of the same experiment
    and profile (any hash), else one of the same stage, backbone and profile with its time scaled
    by the two models' forward GMACs (Fig. 6's r = 16 costs 3x r = 8); scaled by the step count.
    None if no such run is cached."""
    runs_dir = Path(runs_dir or ex.RUNS)
    same_name, similar = [], []
    mine = json.dumps(ex.resolve(link.name, link.profile, **link.overrides).model.to_dict(), sort_keys=True)
    for path, r in _results(runs_dir):
        if r.get("train", {}).get("device", "cpu") != "cpu" or not r.get("train", {}).get("steps"):
            continue
        try:
            cfg = json.loads((path / "config.json").read_text())
        except (OSError, json.JSONDecodeError):
            continue
        if r.get("profile", link.profile) != link.profile:
            continue
        per_step = r["train"]["seconds"] / r["train"]["steps"]
        if r.get("name") == link.name:
            same_name.append(per_step)
        elif cfg["train"]["stage"] == link.stage and cfg["model"]["backbone"] == link.backbone:
            theirs = json.dumps(cfg["model"], sort_keys=True)
            similar.append(
                per_step * _forward_gmac(mine) / _forward_gmac(theirs) if theirs != mine else per_step
            )
    found = same_name or similar
    if not found or link.steps is None:
        return None
    return max(found) * link.steps


def announce(links: list[Link], *, runs_dir: str | Path | None = None) -> str | None:
    """One line saying what `run` will train and for about how long, or None if all is cached."""
    todo = to_train(links)
    if not todo:
        return None
    parts, total, unknown = [], 0.0, False
    for link in todo:
        s = expected_seconds(link, runs_dir=runs_dir)
        unknown |= s is None
        total += s or 0.0
        how = f"{link.steps} steps" if link.steps is not None else "the profile's schedule"
        parts.append(
            f"{link.name} ({link.stage}, {how}, ~{s / 60:.0f} CPU min)"
            if s is not None
            else f"{link.name} ({link.stage}, {how}, time unknown)"
        )
    when = (
        f"about {total / 60:.0f} minutes on an idle 2-core CPU"
        + (" plus the unknown ones" if unknown else "")
        if total
        else "time unknown: no similar run is cached"
    )
    return f"not cached, will train: {' then '.join(parts)}; {when}."


@contextlib.contextmanager
def text_progress():
    """Make the trainer's progress bar plain text (stderr): a widget bar shows nothing on
    papermill's --log-output or in a stored notebook read as text."""

    saved = train.tqdm
    train.tqdm = lambda *a, **kw: tqdm.std.tqdm(*a, **{**kw, "mininterval": 5.0, "file": sys.stderr})
    try:
        yield
    finally:
        train.tqdm = saved


@user_errors
def run_all(runs: Mapping, profile: str, overrides: Mapping | None = None) -> dict:
    """Run (or read) each experiment of `runs` ({key: experiment name}) in `profile` with
    `overrides[key]`; print, before any training, what is cached and what will train with its
    expected CPU time, then one line per result. Returns {key: RunResult}."""
    overrides = overrides or {}
    plans = {key: chain(name, profile, **overrides.get(key, {})) for key, name in runs.items()}
    for links in plans.values():  # every root of every chain, before the first run starts
        check_chain(links, profile)
    seen: set[str] = set()
    for links in plans.values():
        if links[-1].hash in seen:
            continue
        seen.add(links[-1].hash)
        line = announce(links)
        print(
            f"{links[-1].name:30s} "
            + (
                line
                or f"cached ({links[-1].path.relative_to(ex.ROOT) if links[-1].path.is_relative_to(ex.ROOT) else links[-1].path})"
            ),
            flush=True,
        )
    results = {}
    with text_progress():
        for key, name in runs.items():
            results[key] = run_pinned(
                name, profile, progress=bool(to_train(plans[key])), **overrides.get(key, {})
            )
    for r in {id(r): r for r in results.values()}.values():
        print(
            f"{r.name:30s} {r.source:30s} {r.train['steps']} steps, {r.train['seconds']:.0f} s on {r.train['device']}"
        )
    return results


def run_pinned(name: str, profile: str = "smoke", **kwargs):
    """`experiments.run`, which computes under pinned CPU threads and records the environment in
    every result.json it writes (pretraining runs of a chain included); kept for callers."""
    return ex.run(name, profile, **kwargs)


RUN_OPTIONS = ("need_checkpoint", "force", "runs_dir", "progress")


def cached_table(profile: str | None = None, *, runs_dir: str | Path | None = None):
    """One row per registered experiment and profile: cached or not, its hash, CPU seconds and
    main metrics, from `results/runs/` (what `python -m cgm list` prints)."""

    rows = []
    others = {}  # cached runs with overrides, listed after their experiment's default run
    for r in cached_runs(runs_dir):
        if profile in (None, r["profile"]):
            others.setdefault(r["experiment"], []).append(r)
    for e in ex.list_experiments():
        for p in [profile] if profile else ex.PROFILES:
            try:
                links = chain(e.name, p, runs_dir=runs_dir)
            except (ValueError, KeyError):
                continue
            last = links[-1]
            train, source = {}, ""
            if last.cached:
                try:
                    train = read_run(last.path)[0]["train"]
                except CacheError as err:
                    source = f"INVALID: {err}"
                if last.path.parent.parent.name + "/" + last.path.parent.name != e.name:
                    source = source or f"= {last.path.parent.parent.name}/{last.path.parent.name}"
            todo = to_train(links)
            rows.append(
                {
                    "experiment": e.name,
                    "profile": p,
                    "cached": last.cached,
                    "hash": last.hash,
                    "cpu_s": train.get("seconds") if train.get("device", "cpu") == "cpu" else None,
                    "shared_with": source,
                    "to_train": "" if not todo else ", ".join(link.name for link in todo),
                    "overrides": "",
                }
            )
            for r in others.get(e.name, []):
                if r["profile"] == p and r["hash"] != last.hash:
                    rows.append({**r, "cached": True, "shared_with": "", "to_train": ""})
    columns = ["experiment", "profile", "cached", "hash", "cpu_s", "shared_with", "to_train", "overrides"]
    return pd.DataFrame(rows, columns=columns)


def cached_runs(runs_dir: str | Path | None = None) -> list[dict]:
    """Every finished run in the cache (and its local recomputations): experiment, profile, hash,
    CPU seconds, and `overrides`, the text (`cgm.overrides.format_overrides`) of what its config
    changes from its profile's: what to give `--set` or a notebook's `overrides` to find it."""

    runs_dir = Path(runs_dir or ex.RUNS)
    out = []
    for folder in (runs_dir, local_runs(runs_dir)):
        for path, r in _results(folder):
            try:
                cfg = ex.ExperimentConfig.from_dict(json.loads((path / "config.json").read_text()))
                changed = format_overrides(ex.overrides_between(ex.resolve(r["name"], r["profile"]), cfg))
            except (ValueError, KeyError, TypeError, OSError) as err:
                changed = f"(not the profile's config with overrides: {err})"
            train = r.get("train", {})
            out.append(
                {
                    "experiment": r["name"],
                    "profile": r["profile"],
                    "hash": r["hash"],
                    "cpu_s": train.get("seconds") if train.get("device", "cpu") == "cpu" else None,
                    "overrides": changed,
                }
            )
    return out
