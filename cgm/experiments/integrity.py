"""The integrity check of a cached run: nothing in `results/runs/` is trusted blindly.

`read_run(folder)` reads a run folder's result.json and config.json and checks them against the
schema `run` writes: the types of every field, finite metrics, and the config hash recomputed from
the stored config (`config.config_hash`) equal to the stored hash and to the folder's name. A
tampered, truncated or hand-edited run is a `CacheError` naming the file and the problem, never
a result printed as valid.

`checkpoint_sha256` is recorded in result.json when the run is written; `check_checkpoint`
compares it when the checkpoint is used. A checkpoint cached before the digest was recorded is
accepted only if it reads whole as a weights-only checkpoint (`checkpoints.load`: a truncated or
foreign file fails), since its digest cannot be compared.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from pathlib import Path

from cgm import checkpoints
from cgm.errors import CacheError

from .config import ExperimentConfig, config_hash

# result.json: field -> type (`run` writes these; "environment", "torch", "created" are optional).
RESULT_SCHEMA = {"name": str, "profile": str, "hash": str, "dataset": str, "metrics": dict, "train": dict}
SHA_KEY = "checkpoint_sha256"


def _number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _json(path: Path):
    """The JSON of `path`, or a CacheError naming the file (missing, empty, not JSON)."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise CacheError(f"cached run {path.parent}: {path.name} is missing") from None
    except (OSError, UnicodeDecodeError) as err:
        raise CacheError(f"{path}: cannot be read ({err})") from None
    if not text.strip():
        raise CacheError(f"{path}: is empty")
    try:
        return json.loads(text)
    except json.JSONDecodeError as err:
        raise CacheError(
            f"{path}: not valid JSON ({err.msg} at line {err.lineno} column {err.colno})"
        ) from None


def check_result(r, path: Path) -> None:
    """The result.json schema, or a CacheError naming the file and the first field that fails."""
    if not isinstance(r, dict):
        raise CacheError(
            f"{path}: holds a JSON {type(r).__name__}, expected an object with {sorted(RESULT_SCHEMA)}"
        )
    for key, kind in RESULT_SCHEMA.items():
        if key not in r:
            raise CacheError(f"{path}: no {key!r} field (expected {sorted(RESULT_SCHEMA)})")
        if not isinstance(r[key], kind):
            raise CacheError(f"{path}: {key!r} is a {type(r[key]).__name__}, expected a {kind.__name__}")
    bad = [f"{k}={v!r}" for k, v in r["metrics"].items() if not _number(v)]
    if bad:
        raise CacheError(f"{path}: metrics must be finite numbers, got {', '.join(bad[:3])}")
    train = r["train"]
    if "steps" in train and (
        not isinstance(train["steps"], int) or isinstance(train["steps"], bool) or train["steps"] < 0
    ):
        raise CacheError(f"{path}: train.steps must be an integer >= 0, got {train['steps']!r}")
    if "seconds" in train and not (_number(train["seconds"]) and train["seconds"] >= 0):
        raise CacheError(f"{path}: train.seconds must be a finite number >= 0, got {train['seconds']!r}")
    sha = r.get(SHA_KEY)
    if sha is not None and not (
        isinstance(sha, str) and len(sha) == 64 and all(c in "0123456789abcdef" for c in sha)
    ):
        raise CacheError(f"{path}: {SHA_KEY} must be 64 hex digits, got {sha!r}")


def read_run(folder: str | os.PathLike) -> tuple[dict, dict]:
    """(result, config) of the run folder after the integrity check (module docstring)."""
    folder = Path(folder)
    result_path, config_path = folder / "result.json", folder / "config.json"
    r = _json(result_path)
    check_result(r, result_path)
    config = _json(config_path)
    if not isinstance(config, dict):
        raise CacheError(f"{config_path}: holds a JSON {type(config).__name__}, expected an object")
    try:
        h = config_hash(ExperimentConfig.from_dict(config), config.get("pretrain_hash"))
    except (KeyError, TypeError, ValueError) as err:
        raise CacheError(f"{config_path}: not a run config ({type(err).__name__}: {err})") from None
    if not h == r["hash"] == folder.name:
        raise CacheError(
            f"cached run {folder}: the config hash does not match (config.json hashes to {h}, "
            f"result.json says {r['hash']!r}, the folder is {folder.name!r}); a file was changed after "
            "the run was written"
        )
    return r, config


def checkpoint_sha256(path: str | os.PathLike) -> str:
    """SHA-256 (hex) of a file, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def check_checkpoint(path: str | os.PathLike, recorded: str | None) -> Path:
    """The checkpoint `path` if it is the one its run recorded (`recorded`: result.json's SHA-256),
    or a CacheError naming it; without a recorded digest it must read whole (`checkpoints.load`)."""
    path = Path(path)
    if not path.is_file():
        raise CacheError(f"cached run {path.parent}: {path.name} is missing")
    if recorded is None:
        try:
            checkpoints.load(path)
        except checkpoints.CheckpointError as err:
            raise CacheError(f"cached run {path.parent}: {err}") from None
        return path
    got = checkpoint_sha256(path)
    if got != recorded:
        raise CacheError(
            f"{path}: its SHA-256 {got[:12]}... differs from the {recorded[:12]}... result.json "
            f"recorded ({path.stat().st_size} bytes now); the checkpoint was changed or truncated after "
            "the run was written"
        )
    return path
