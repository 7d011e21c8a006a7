"""Screen options for motion maps that are motion: fine-tune (or train) the laptop matching-cue
model (`table1/cgm_matching`, which the laptop `table1/cgm_box5` fine-tunes) with config changes and score it on held-out footage (ℓ1, as Table 1), on ground-truth motion (EPE:
Middlebury Motorcycle, SynthMotion, and the `knownmotion` set where the registry has it) and on
1-step prediction (PSNR against repeat-last).

    python scripts/motion_options.py --out /tmp/runs/smooth --steps 300 \
        --init results/runs/table1/cgm_matching/<hash>/checkpoint.pt --set train.smoothness=0.02
    python scripts/motion_options.py --score results/runs/table1/cgm_box5/<hash>/checkpoint.pt

`--set` takes `train.<field>=value` (TrainConfig) or `model.<field>=value` (CGMConfig); values are
read as Python literals. With `--init` the run starts from those weights (fine-tuning), else from
scratch. Training goes to OUT (checkpoint.pt, metrics.csv; `--resume` continues it); the scores go
to OUT/scores.json and are printed. Never point OUT at results/runs.
"""

from __future__ import annotations

import argparse
import ast
import dataclasses
import json
import time
from pathlib import Path

import torch

from cgm import baselines, checkpoints, motion_table
from cgm.data.registry import DATASETS
from cgm.experiments import resolve
from cgm.experiments.runs import model_from_checkpoint, train_experiment
from cgm.network import CGMConfig

# SynthMotion at the laptop's 64 px with the pixel speeds of the smoke profile's 112 px clips
# and a camera that always pans (its defaults move 0.2 px a frame on average at 64 px).
KNOWN_KW = {"knownmotion": {}, "synthmotion": {"speed": 2.0, "camera": 1.0}}


def configure(sets: list[str], steps: int | None, lr: float | None):
    """The laptop `table1/cgm_matching` config (the 3x3 matching-cue model that `table1/cgm_box5`
    fine-tunes) with `sets` applied (and the run's length and lr)."""
    cfg = resolve("table1/cgm_matching", "laptop")
    model, train = {}, {}
    for item in sets:
        key, _, value = item.partition("=")
        where, _, field = key.partition(".")
        if where not in ("model", "train") or not field or not _:
            raise ValueError(f"--set takes model.<field>=value or train.<field>=value, got {item!r}")
        (model if where == "model" else train)[field] = ast.literal_eval(value)
    if steps is not None:
        train["steps"] = steps
    if lr is not None:
        train["lr"] = lr
    train.setdefault("progress", False)
    return dataclasses.replace(
        cfg,
        model=dataclasses.replace(cfg.model, **model),
        train=dataclasses.replace(cfg.train, **train),
    )


@torch.no_grad()
def score(model, *, max_pairs: int = 192) -> dict[str, float]:
    """ℓ1 (Table 1's held-out footage pairs), EPE on every ground-truth set, 1-step PSNR."""
    model.eval()
    k, size = model.cfg.clip_len, model.cfg.size
    kw = dict(clip_len=k, size=size, max_pairs=max_pairs)
    motion = motion_table.cgm_motion(model)
    clips = [item["clip"] for item in motion_table.test_clips("footage", "motion", **kw)]
    out = {"l1": motion_table.score_motion(motion, clips)["l1"]}
    pred = motion_table.score_prediction(motion_table.cgm_prediction(model), clips)
    out["psnr"] = pred["psnr"]
    out["motorcycle_epe"] = motion_table.score_motorcycle(motion, k)["epe"]
    known = [name for name in ("knownmotion", "synthmotion") if name in DATASETS]
    for name in known:
        from cgm.data import build_dataset

        items = motion_table.evaluation_clips(
            build_dataset(name, "test", clip_len=k, size=size, future=True, **KNOWN_KW[name]),
            max_pairs=max_pairs,
        )
        r = motion_table.score_motion(
            motion,
            [i["clip"] for i in items],
            flows=[i["flow"] for i in items],
            occlusions=[i["occlusion"] for i in items],
        )
        out[f"{name}_epe"], out[f"{name}_l1"] = r["epe"], r["l1"]
    return out


@torch.no_grad()
def references(clip_len: int, size: int, *, max_pairs: int = 192) -> dict[str, dict[str, float]]:
    """The same scores for copy and TV-L1 (and their prediction PSNR: repeat-last)."""
    kw = dict(clip_len=clip_len, size=size, max_pairs=max_pairs)
    clips = [item["clip"] for item in motion_table.test_clips("footage", "motion", **kw)]
    rows = {}
    for method, fn in (("no_motion", baselines.no_motion), ("tvl1", baselines.flow_motion("tvl1"))):
        r = {"l1": motion_table.score_motion(fn, clips)["l1"]}
        r["motorcycle_epe"] = motion_table.score_motorcycle(fn, clip_len)["epe"]
        for name in ("knownmotion", "synthmotion"):
            if name not in DATASETS:
                continue
            from cgm.data import build_dataset

            items = motion_table.evaluation_clips(
                build_dataset(name, "test", clip_len=clip_len, size=size, future=True, **KNOWN_KW[name]),
                max_pairs=max_pairs,
            )
            s = motion_table.score_motion(
                fn,
                [i["clip"] for i in items],
                flows=[i["flow"] for i in items],
                occlusions=[i["occlusion"] for i in items],
            )
            r[f"{name}_epe"], r[f"{name}_l1"] = s["epe"], s["l1"]
        rows[method] = r
    rows["no_motion"]["psnr"] = motion_table.score_prediction(
        lambda c: baselines.predict_next("repeat_last", c), clips
    )["psnr"]
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, help="run folder for training (not under results/runs)")
    ap.add_argument("--steps", type=int, help="training steps (default: the laptop profile's)")
    ap.add_argument("--lr", type=float, help="Adam's lr (default: the laptop profile's)")
    ap.add_argument("--init", type=Path, help="start from this checkpoint's weights (fine-tuning)")
    ap.add_argument("--set", action="append", default=[], help="model.<field>=v or train.<field>=v")
    ap.add_argument("--resume", action="store_true", help="continue OUT's checkpoint")
    ap.add_argument("--score", type=Path, help="only score this checkpoint (its own model config)")
    ap.add_argument("--references", action="store_true", help="only score copy and TV-L1")
    args = ap.parse_args()
    if args.references:
        cfg = resolve("table1/cgm_matching", "laptop").model
        print(json.dumps(references(cfg.clip_len, cfg.size), indent=1))
        return
    if args.score is not None:
        stored = checkpoints.load(args.score)["model_config"]
        model = model_from_checkpoint(CGMConfig.from_dict(stored), args.score)
        print(json.dumps(score(model), indent=1))
        return
    if args.out is None or "results/runs" in str(args.out.resolve()):
        raise SystemExit("give --out, a folder outside results/runs")
    cfg = configure(args.set, args.steps, args.lr)
    start, wall = time.process_time(), time.perf_counter()
    trainer = train_experiment(
        cfg, args.out, resume=args.resume, init_from=None if args.resume else args.init
    )
    cpu_min, wall_min = (time.process_time() - start) / 60, (time.perf_counter() - wall) / 60
    scores = {
        "sets": args.set,
        "steps": cfg.train.steps,
        "init": str(args.init),
        "cpu_minutes": cpu_min,
        "wall_minutes": wall_min,
    }
    scores.update(score(checkpoints.unwrap(trainer.model)))
    (args.out / "scores.json").write_text(json.dumps(scores, indent=1))
    print(json.dumps(scores, indent=1))


if __name__ == "__main__":
    main()
