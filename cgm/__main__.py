"""Command line: python -m cgm list | train | eval | run.

    python -m cgm list
    python -m cgm train --experiment table6/cgmul --profile smoke --out runs/t6 [--steps N] [--resume]
    torchrun --nproc_per_node 8 -m cgm train --experiment table3/r3d50 --profile paper \\
        --data-root /data/kinetics400 --out runs/k400_r50 --resume
    python -m cgm eval --experiment table6/cgmul --checkpoint runs/t6/checkpoint.pt
    python -m cgm run --experiment table6/cgmul            # cached under results/runs/

Every parameter is checked before work starts; a bad one ends with a message listing what is valid.
`--set key=value` changes any config field (`width=0.5`, `model__scale=8`, `train__lr=3e-4`).
"""

from __future__ import annotations

import argparse
import ast
import json
import sys
import time
import warnings

from cgm import experiments as ex


def _value(text: str):
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


def parse_sets(pairs: list[str]) -> dict:
    out = {}
    for pair in pairs:
        if "=" not in pair:
            raise ValueError(f"--set expects key=value, got {pair!r}")
        key, value = pair.split("=", 1)
        out[key.strip()] = _value(value.strip())
    return out


def overrides_from(args) -> dict:
    o = parse_sets(args.set or [])
    if getattr(args, "steps", None) is not None:
        o["steps"] = args.steps
    if getattr(args, "device", None) is not None:
        o["device"] = args.device
    if getattr(args, "data_root", None) is not None:
        o["data_root"] = args.data_root
    return o


def estimate_paper_time(cfg: ex.ExperimentConfig, *, world_size: int = 1) -> str:
    """A measured CPU step (batch 2, extrapolated to the global batch) x the schedule's steps."""
    import torch

    from cgm.train import stage_loss

    model = ex.build_model(cfg)
    loss_fn = stage_loss(cfg.train, padding=cfg.model.padding)
    clip = torch.rand(2, 3, cfg.model.clip_len + 1, cfg.model.size, cfg.model.size) * 2 - 1
    labels = torch.zeros(2, dtype=torch.long)
    start = time.perf_counter()
    loss, _ = loss_fn(model(clip[:, :, :-1]), clip, labels)
    loss.backward()
    step = (time.perf_counter() - start) * cfg.train.batch_size / 2 / world_size
    if cfg.train.steps is not None:
        steps, how = cfg.train.steps, f"{cfg.train.steps} steps"
    else:
        train_set = ex.build_data(cfg.data, cfg, future=True)
        per_epoch = int(len(train_set) * cfg.train.labeled_fraction) // cfg.train.batch_size
        steps, how = cfg.train.epochs * per_epoch, f"{cfg.train.epochs} epochs x {per_epoch} steps"
    days = step * steps / 86400
    return (f"profile 'paper' on a CPU: one step of batch {cfg.train.batch_size} takes about "
            f"{step:.1f} s here (measured on batch 2), and the schedule ({how}) about {days:.1f} days. "
            f"Use --device cuda (torchrun for several GPUs) or --profile smoke.")


def _config(args) -> ex.ExperimentConfig:
    cfg = ex.resolve(args.experiment, args.profile, **overrides_from(args))
    ex.check_data(cfg)
    from cgm import distributed
    world = distributed.env_world().world_size
    distributed.check_global_batch(cfg.train.batch_size, world)
    if args.profile == "paper" and cfg.train.device == "cpu" and getattr(args, "command", "") != "eval":
        warnings.warn(estimate_paper_time(cfg, world_size=world), stacklevel=1)
    return cfg


def cmd_list(args) -> int:
    print(f"profiles: {', '.join(ex.PROFILES)}")
    print(f"{'experiment':36s} {'paper table':26s} row")
    for e in ex.list_experiments():
        print(f"{e.name:36s} {e.paper_table:26s} {e.paper_row}")
    return 0


def cmd_train(args) -> int:
    cfg = _config(args)
    init = None
    if cfg.pretrain_from and not args.no_pretrain:
        init = ex.run(cfg.pretrain_from, args.profile, need_checkpoint=True,
                      **ex.pretrain_overrides(overrides_from(args))).checkpoint  # same architecture
    trainer = ex.train_experiment(cfg, args.out, resume=args.resume, init_from=init, progress=True,
                                  fresh=ex.get_experiment(args.experiment).fresh)
    if trainer.info.is_main:
        print(json.dumps({"out": str(args.out), "step": trainer.step, **(trainer.history[-1] if trainer.history else {})}))
    from cgm import distributed
    distributed.cleanup()
    return 0


def cmd_eval(args) -> int:
    cfg = _config(args)
    model = ex.model_from_checkpoint(cfg.model, args.checkpoint)  # every tensor, same model config
    metrics = ex.evaluate_config(model.to(cfg.train.device), cfg, device=cfg.train.device)
    print(json.dumps({"experiment": args.experiment, "profile": args.profile, "dataset": cfg.data["name"],
                      "checkpoint": str(args.checkpoint), "metrics": metrics}, indent=1))
    return 0


def cmd_run(args) -> int:
    _config(args)
    r = ex.run(args.experiment, args.profile, force=args.force, need_checkpoint=args.need_checkpoint,
               progress=True, **overrides_from(args))
    print(json.dumps({"experiment": r.name, "profile": r.profile, "dataset": r.dataset, "hash": r.hash,
                      "source": r.source, "path": str(r.path), "metrics": r.metrics}, indent=1))
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m cgm", description="CGM-Net experiments: train, evaluate, run.")
    sub = p.add_subparsers(dest="command", required=True)
    sub.add_parser("list", help="experiments and profiles")

    def common(sp):
        sp.add_argument("--experiment", required=True, metavar="NAME", help="see `python -m cgm list`")
        sp.add_argument("--profile", default="smoke", help=f"one of {', '.join(ex.PROFILES)}")
        sp.add_argument("--data-root", dest="data_root", default=None, help="root of the training dataset")
        sp.add_argument("--device", default=None, help="cpu | cuda | cuda:N")
        sp.add_argument("--set", action="append", metavar="KEY=VALUE", help="config override (repeatable)")

    t = sub.add_parser("train", help="train an experiment's model into --out")
    common(t)
    t.add_argument("--out", required=True, help="folder for checkpoint.pt, metrics.csv, tb/")
    t.add_argument("--steps", type=int, default=None, help="train for N steps (instead of the schedule)")
    t.add_argument("--resume", action="store_true", help="continue from OUT/checkpoint.pt if present")
    t.add_argument("--no-pretrain", action="store_true", help="do not start from the pretraining experiment")
    e = sub.add_parser("eval", help="evaluate a checkpoint with an experiment's protocols")
    common(e)
    e.add_argument("--checkpoint", required=True)
    r = sub.add_parser("run", help="train + evaluate, cached under results/runs/")
    common(r)
    r.add_argument("--steps", type=int, default=None)
    r.add_argument("--force", action="store_true", help="recompute even if cached")
    r.add_argument("--need-checkpoint", action="store_true", help="recompute if the cache kept no weights")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if getattr(args, "profile", "smoke") not in ex.PROFILES:
            raise ValueError(f"unknown profile {args.profile!r}; valid: {', '.join(ex.PROFILES)}")
        if getattr(args, "steps", None) is not None and args.steps < 1:
            raise ValueError(f"--steps must be >= 1, got {args.steps}")
        return {"list": cmd_list, "train": cmd_train, "eval": cmd_eval, "run": cmd_run}[args.command](args)
    except (ValueError, FileNotFoundError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
