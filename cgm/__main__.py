"""Command line: python -m cgm list | show | plan | train | eval | run | flow.

    python -m cgm list                                      # what is cached, per profile, and its CPU time
    python -m cgm train --experiment table6/cgmul --profile smoke --out runs/t6 [--steps N] [--resume]
    torchrun --nproc_per_node 8 -m cgm train --experiment table3/r3d50 --profile paper \\
        --data-root /data/kinetics400 --out runs/k400_r50 --resume
    python -m cgm eval --experiment table6/cgmul --checkpoint runs/t6/checkpoint.pt
    python -m cgm run --experiment table6/cgmul            # cached under results/runs/
    python -m cgm flow my_video.mp4 --out flow_out          # flow colours, motion maps, prediction

Every parameter is checked before work starts; a bad one ends with a message listing what is valid.
`--set key=value` changes any config field (`width=0.5`, `model__scale=8`, `train__lr=3e-4`).
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import os
import shutil
import sys
import time
import warnings
from pathlib import Path
from typing import TYPE_CHECKING

from cgm import errors
from cgm.overrides import format_overrides, parse_pairs

if TYPE_CHECKING:
    from cgm.experiments import ExperimentConfig

# The stack (torch, torchvision, the experiments and everything they import) is imported inside the
# command functions, never here: `python -m cgm --help`, a subcommand's `--help` and a bad argument
# answer at once instead of after seconds of imports. tests/test_cli.py checks it.
# The profiles' names, for the parser (cgm.experiments.PROFILES; tests/test_cli.py checks they agree).
PROFILES = ("smoke", "laptop", "paper")


def parse_sets(pairs: list[str]) -> dict:
    """{key: value} of `--set key=value` pairs: the parser of the notebooks' `overrides` too."""
    return parse_pairs(pairs)


def overrides_from(args) -> dict:
    o = parse_sets(args.set or [])
    if getattr(args, "steps", None) is not None:
        o["steps"] = args.steps
    if getattr(args, "device", None) is not None:
        o["device"] = args.device
    if getattr(args, "data_root", None) is not None:
        o["data_root"] = args.data_root
    return o


def estimate_paper_time(cfg: ExperimentConfig, *, world_size: int = 1) -> str:
    """A measured CPU step (batch 2, extrapolated to the global batch) x the schedule's steps."""
    import torch

    from cgm import experiments as ex
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
    return (
        f"profile 'paper' on a CPU: one step of batch {cfg.train.batch_size} takes about "
        f"{step:.1f} s here (measured on batch 2), and the schedule ({how}) about {days:.1f} days. "
        f"Use --device cuda (torchrun for several GPUs) or --profile smoke."
    )


def _config(args) -> ExperimentConfig:
    from cgm import cache
    from cgm import experiments as ex

    cache.use_roots(**{k: getattr(args, k, None) for k in cache.ROOT_PARAMETERS})
    cfg = ex.resolve(args.experiment, args.profile, **overrides_from(args))
    ex.check_data(cfg)
    command = getattr(args, "command", "")
    todo = []  # (name, config) of every run this command trains
    if command in ("run", "train"):
        # every root of the chain (the pretraining it starts from too) before any estimate or work
        links = cache.chain(args.experiment, args.profile, runs_dir=args.runs_dir, **overrides_from(args))
        if command == "train":  # trains into --out whatever the cache holds
            links = [*([] if args.no_pretrain else links[:-1]), dataclasses.replace(links[-1], path=None)]
        cache.check_chain(links, args.profile)
        trains = cache.to_train(links)
        todo = [(link.name, ex.resolve(link.name, args.profile, **link.overrides)) for link in trains]
        if command == "run" and args.force and not todo:
            todo.append((args.experiment, cfg))
    from cgm import distributed

    world = distributed.env_world().world_size
    distributed.check_global_batch(cfg.train.batch_size, world)
    if str(cfg.train.device).startswith("cuda") and todo:  # a step that cannot fit: refused before work
        import torch

        from cgm.plan import check_fits

        free, _ = torch.cuda.mem_get_info(torch.device(cfg.train.device))
        for name, c in todo:
            check_fits(c, world_size=world, available_bytes=free, name=name)
    if args.profile == "paper" and cfg.train.device == "cpu" and getattr(args, "command", "") != "eval":
        warnings.warn(estimate_paper_time(cfg, world_size=world), stacklevel=1)
    return cfg


def cmd_list(args) -> int:
    from cgm import cache
    from cgm import experiments as ex

    table = cache.cached_table(args.profile, runs_dir=args.runs_dir)
    where = args.runs_dir or "results/runs"
    print(f"profiles: {', '.join(ex.PROFILES)}; cached runs live in {where}/<experiment>/<hash>/")
    print(f"{'experiment':36s} {'paper table':26s} {'profile':8s} {'cached':28s} {'CPU time':9s} overrides")
    rows = {e.name: e for e in ex.list_experiments()}
    for r in table.itertuples():
        e = rows[r.experiment]
        state = (
            ("yes" + (f" ({r.shared_with})" if r.shared_with else ""))
            if r.cached
            else f"no: trains {r.to_train}"
        )
        cpu = f"{r.cpu_s / 60:.1f} min" if r.cached and r.cpu_s == r.cpu_s and r.cpu_s is not None else ""
        line = f"{r.experiment:36s} {e.paper_table:26s} {r.profile:8s} {state:28s} {cpu:9s} {r.overrides}"
        print(line.rstrip())
    return 0


def train_out(args) -> Path:
    """`--out` as the folder to train into, or a ValueError before any work: an empty path, a
    file, or a folder holding an earlier run's checkpoint without --resume or --overwrite."""
    if not str(args.out).strip():
        raise ValueError("--out is empty; give the folder to train into (e.g. --out runs/t6)")
    out = errors.check_path(args.out, "--out").expanduser()
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out {args.out} is a file, not a folder; give the folder to train into")
    if args.resume and args.overwrite:
        raise ValueError("--resume continues the run in --out and --overwrite replaces it: give one")
    if (out / "checkpoint.pt").exists() and not (args.resume or args.overwrite):
        raise ValueError(
            f"--out {args.out} holds the checkpoint.pt of an earlier run; continue it with --resume "
            "or replace it with --overwrite"
        )
    return out


def cmd_train(args) -> int:
    from cgm import distributed
    from cgm import experiments as ex

    out = train_out(args)
    cfg = _config(args)
    init = None
    if cfg.pretrain_from and not args.no_pretrain:
        init = ex.run(
            cfg.pretrain_from,
            args.profile,
            need_checkpoint=True,
            runs_dir=args.runs_dir or ex.RUNS,
            **ex.pretrain_overrides(overrides_from(args)),
        ).verified_checkpoint()  # same architecture
    main_rank = distributed.env_world().is_main
    # One process trains into a folder at a time (the lock of `run`; rank 0 holds it for all).
    lock = ex.run_lock(out / ".train.lock", f"train into {out}") if main_rank else contextlib.nullcontext()
    with lock:
        if args.overwrite and main_rank:  # the earlier run's files go; a fresh run writes new ones
            for name in ("checkpoint.pt", "metrics.csv"):
                (out / name).unlink(missing_ok=True)
            shutil.rmtree(out / "tb", ignore_errors=True)
        trainer = ex.train_experiment(
            cfg,
            out,
            resume=args.resume,
            init_from=init,
            progress=True,
            fresh=ex.get_experiment(args.experiment).fresh,
        )
    if trainer.info.is_main:
        print(
            json.dumps(
                {
                    "out": str(args.out),
                    "step": trainer.step,
                    **(trainer.history[-1] if trainer.history else {}),
                }
            )
        )
    distributed.cleanup()
    return 0


def cmd_eval(args) -> int:
    from cgm import distributed
    from cgm import experiments as ex

    cfg = _config(args)
    info = distributed.init_distributed(cfg.train.device)  # under torchrun: each rank scores its share
    device = cfg.train.device
    if info.distributed and device.startswith("cuda"):
        device = f"cuda:{info.local_rank}"
    model = ex.model_from_checkpoint(cfg.model, args.checkpoint)  # every tensor, same model config
    metrics = ex.evaluate_config(model.to(device), cfg, device=device)
    distributed.cleanup()
    if not info.is_main:
        return 0
    if args.json:
        print(
            json.dumps(
                {
                    "experiment": args.experiment,
                    "profile": args.profile,
                    "dataset": cfg.data["name"],
                    "checkpoint": str(args.checkpoint),
                    "metrics": metrics,
                },
                indent=1,
            )
        )
    else:
        from cgm.notebook import run_report

        print(
            run_report(
                args.experiment,
                metrics,
                profile=args.profile,
                dataset=cfg.data["name"],
                source=f"checkpoint {args.checkpoint}",
            )
        )
    return 0


def cmd_run(args) -> int:
    from cgm import experiments as ex

    _config(args)  # every root of the chain (pretraining too) before any work
    from cgm.cache import run_pinned  # pinned CPU threads: a rerun gives the same numbers

    r = run_pinned(
        args.experiment,
        args.profile,
        force=args.force,
        need_checkpoint=args.need_checkpoint,
        progress=True,
        runs_dir=args.runs_dir or ex.RUNS,
        **overrides_from(args),
    )
    from cgm import distributed

    distributed.cleanup()
    if not distributed.env_world().is_main:  # the result once, from rank 0
        return 0
    if args.json:
        print(
            json.dumps(
                {
                    "experiment": r.name,
                    "profile": r.profile,
                    "dataset": r.dataset,
                    "hash": r.hash,
                    "source": r.source,
                    "path": str(r.path),
                    "metrics": r.metrics,
                },
                indent=1,
            )
        )
    else:
        from cgm.notebook import run_report

        print(
            run_report(
                r.name,
                r.metrics,
                profile=r.profile,
                dataset=r.dataset,
                source=f"{r.source} ({r.path}), {r.train.get('steps')} steps in {r.train.get('seconds', 0):.0f} s",
            )
        )
    return 0


def cmd_show(args) -> int:
    """The resolved config of an experiment with the given overrides (JSON) and its hash."""
    from cgm import cache
    from cgm import experiments as ex

    cache.use_roots(**{k: getattr(args, k, None) for k in cache.ROOT_PARAMETERS})
    overrides = overrides_from(args)
    links = cache.chain(args.experiment, args.profile, runs_dir=args.runs_dir, **overrides)
    cfg = ex.resolve(args.experiment, args.profile, **overrides)
    doc = {
        "experiment": args.experiment,
        "profile": args.profile,
        "overrides": format_overrides(overrides),
        "hash": links[-1].hash,
        "chain": [
            {"experiment": link.name, "hash": link.hash, "cached": str(link.path) if link.cached else None}
            for link in links
        ],
        "config": cfg.to_dict(),
    }
    print(json.dumps(doc, indent=1, default=str))
    return 0


def cmd_plan(args) -> int:
    """What the experiment needs on `--gpus` GPUs: chain, data roots, memory, batch, time, commands."""
    from cgm import cache, plan

    cache.use_roots(**{k: getattr(args, k, None) for k in cache.ROOT_PARAMETERS})
    roots = {k: getattr(args, k, None) for k in ("data_root", *cache.ROOT_PARAMETERS)}
    overrides = {k: v for k, v in overrides_from(args).items() if k != "data_root"}  # a root: in roots
    p = plan.make_plan(
        args.experiment,
        args.profile,
        gpus=args.gpus,
        gpu_memory_gib=args.gpu_memory,
        tflops=args.tflops,
        runs_dir=args.runs_dir,
        roots=roots,
        **overrides,
    )
    print(json.dumps(p.to_dict(), indent=1, default=str) if args.json else plan.render(p))
    return 0


def cmd_flow(args) -> int:
    from cgm.flow import run_flow

    summary = run_flow(
        args.video,
        args.out,
        experiment=args.experiment,
        profile=args.profile,
        checkpoint=args.checkpoint,
        train=args.train,
        size=args.size,
        max_frames=args.max_frames,
        compare=args.compare,
    )
    agree = summary.get("compare")
    print(
        json.dumps(summary, indent=1)
        if args.json
        else f"{summary['frames']} frames of {summary['width']}x{summary['height']} -> {summary['out']}: flow/*.png, "
        f"flow.mp4 ({summary['codec']}), motion_maps.npz, prediction.png, prediction_check.png "
        f"(predicted last frame: l1 {summary['check_prediction_l1']:.4f}, copying: {summary['check_copy_l1']:.4f})"
        + (
            f"; vs {agree['method']}: mean |flow| {agree['cgm_mean_px']:.2f} vs {agree['compare_mean_px']:.2f} px, "
            f"x-correlation {agree['corr_x']:.2f}"
            if agree
            else ""
        )
    )
    return 0


EXAMPLES = """examples:
  python -m cgm list --profile smoke                      # cached runs and their CPU time
  python -m cgm run --experiment table6/cgmul             # read (or train, ~1 CPU min) and compare with the paper
  python -m cgm run --experiment table7/cgmul --json      # the same, as JSON
  python -m cgm run --experiment fig6/scale8 --set seed=1 # any config field; changes the hash
  python -m cgm train --experiment table6/cgmul --out runs/t6 --steps 50
  python -m cgm eval --experiment table6/cgmul --checkpoint runs/t6/checkpoint.pt
  python -m cgm flow video.mp4 --out flow_out             # flow colours, motion maps, prediction
  torchrun --nproc_per_node 8 -m cgm run --experiment table3/r3d50 --profile paper --device cuda \\
      --data-root /data/kinetics400
"""


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m cgm",
        description="CGM-Net experiments: train, evaluate, run.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = p.add_subparsers(dest="command", required=True)
    ls = sub.add_parser("list", help="experiments, whether each run is cached, and its CPU time")
    ls.add_argument(
        "--profile", default=None, help=f"only this profile, one of {', '.join(PROFILES)} (default: all)"
    )
    runs_dir = dict(dest="runs_dir", default=None, metavar="DIR", help="run cache (default: results/runs/)")
    ls.add_argument("--runs-dir", **runs_dir)

    def common(sp, profile="smoke"):
        sp.add_argument("--experiment", required=True, metavar="NAME", help="see `python -m cgm list`")
        sp.add_argument(
            "--profile", default=profile, help=f"one of {', '.join(PROFILES)} (default {profile})"
        )
        sp.add_argument(
            "--data-root",
            dest="data_root",
            default=None,
            help="root of the training dataset (default: the profile's; paper: CGM_<DATASET>_ROOT)",
        )
        roots = sp.add_argument_group(
            "other data roots a paper-profile chain reads (checked before any work)"
        )
        roots.add_argument(
            "--pretrain-root",
            dest="pretrain_root",
            default=None,
            metavar="DIR",
            help="unlabeled video folder of self-supervised pretraining (sets CGM_VIDEOFOLDER_ROOT; "
            "default: that variable)",
        )
        for ds in ("kinetics", "ucf101", "hmdb51"):
            roots.add_argument(
                f"--{ds}-root",
                dest=f"{ds}_root",
                default=None,
                metavar="DIR",
                help=f"{ds} root when a pretraining or evaluation set of the chain needs it (sets "
                f"CGM_{ds.upper().replace('KINETICS', 'KINETICS400')}_ROOT; default: that variable)",
            )
        sp.add_argument(
            "--device",
            default=None,
            help="cpu | cuda | cuda:N (default: the profile's; cpu for smoke, laptop)",
        )
        sp.add_argument(
            "--set", action="append", metavar="KEY=VALUE", help="config override, repeatable (default: none)"
        )
        sp.add_argument("--runs-dir", **runs_dir)

    t = sub.add_parser("train", help="train an experiment's model into --out")
    common(t)
    t.add_argument("--out", required=True, help="folder for checkpoint.pt, metrics.csv, tb/")
    t.add_argument("--steps", type=int, default=None, help="train for N steps (default: the schedule)")
    t.add_argument("--resume", action="store_true", help="continue from OUT/checkpoint.pt if present")
    t.add_argument(
        "--overwrite",
        action="store_true",
        help="replace the run in OUT (its checkpoint.pt, metrics.csv, tb/)",
    )
    t.add_argument("--no-pretrain", action="store_true", help="do not start from the pretraining experiment")
    e = sub.add_parser("eval", help="evaluate a checkpoint with an experiment's protocols")
    common(e)
    e.add_argument("--checkpoint", required=True, help="the checkpoint.pt to evaluate")
    r = sub.add_parser("run", help="train + evaluate, cached under results/runs/")
    common(r)
    r.add_argument("--steps", type=int, default=None, help="train for N steps (default: the schedule)")
    r.add_argument("--force", action="store_true", help="recompute even if cached")
    r.add_argument("--need-checkpoint", action="store_true", help="recompute if the cache kept no weights")
    for sp in (e, r):
        sp.add_argument("--json", action="store_true", help="print the metrics as JSON (machine form)")
        how = sp.add_argument_group("how evaluation is computed (never part of a run's identity)")
        how.add_argument(
            "--eval-memory-gib",
            dest="eval_memory_gib",
            type=float,
            default=None,
            metavar="GIB",
            help="memory budget of one evaluation forward pass (default: 70%% of the GPU's free "
            "memory, 2 GiB on the CPU; sets CGM_EVAL_MEMORY_GIB)",
        )
        how.add_argument(
            "--eval-workers",
            dest="eval_workers",
            type=int,
            default=None,
            metavar="N",
            help="DataLoader workers decoding evaluation videos (default: the config's num_workers; "
            "sets CGM_EVAL_WORKERS)",
        )
    s = sub.add_parser("show", help="the resolved config (JSON), its hash and its chain's cache status")
    common(s)
    s.add_argument("--steps", type=int, default=None, help="train for N steps (default: the schedule)")
    pl = sub.add_parser("plan", help="before a GPU run: chain, data roots, memory, batch, time, commands")
    common(pl, profile="paper")
    pl.add_argument("--steps", type=int, default=None, help="train for N steps (default: the schedule)")
    pl.add_argument("--gpus", type=int, default=1, help="GPUs the runs will use (default 1)")
    pl.add_argument("--gpu-memory", dest="gpu_memory", type=float, default=80.0, help="GiB each (default 80)")
    pl.add_argument(
        "--tflops",
        type=float,
        default=None,
        help="sustained TFLOP/s per GPU (default: an assumed 80, 160 with bf16/fp16 autocast)",
    )
    pl.add_argument("--json", action="store_true", help="print the plan as JSON")
    f = sub.add_parser(
        "flow",
        help="CGM-Net on your own video: flow colours (PNG, MP4), motion maps, prediction",
        epilog="example: python -m cgm flow clip.mp4 --out flow_out --compare tvl1",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    f.add_argument("video", help="any video file PyAV decodes")
    f.add_argument(
        "--out", required=True, help="folder for flow/*.png, flow.mp4, motion_maps.npz, prediction*.png"
    )
    f.add_argument(
        "--experiment", default="table1/cgm", metavar="NAME", help="whose trained model (default table1/cgm)"
    )
    f.add_argument(
        "--profile",
        default="laptop",
        help=f"one of {', '.join(PROFILES)} (default laptop: the committed model)",
    )
    f.add_argument("--checkpoint", default=None, help="weights to use (default: the experiment's cached run)")
    f.add_argument(
        "--train",
        action="store_true",
        help="train the experiment's model if no trained weights are cached (never replaces committed runs)",
    )
    f.add_argument(
        "--size",
        type=int,
        default=None,
        help="long side of the frames in px, aspect ratio kept (default: the model's training size, at least 128)",
    )
    f.add_argument(
        "--max-frames",
        dest="max_frames",
        type=int,
        default=None,
        help="stop after N frames, >= 2 (default: all)",
    )
    f.add_argument(
        "--compare",
        default=None,
        choices=("tvl1", "dis"),
        help="also write OpenCV's TV-L1 or DIS flow beside CGM-Net's, coloured on the same scale "
        "(default: none)",
    )
    f.add_argument("--json", action="store_true", help="print the summary as JSON")
    return p


# Errors that bad input (arguments, files, data, a full disk, too little memory, a run held by
# another process) ends in: `cgm.errors.expected`.
EXPECTED_ERRORS = errors.expected()


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)  # --help and argument errors end here, before the stack loads
    from cgm import distributed

    if not distributed.env_world().is_main:  # under torchrun: warnings once, from rank 0
        warnings.simplefilter("ignore")
    for flag, env in (("eval_memory_gib", "CGM_EVAL_MEMORY_GIB"), ("eval_workers", "CGM_EVAL_WORKERS")):
        if getattr(args, flag, None) is not None:  # for every evaluation of the chain
            os.environ[env] = str(getattr(args, flag))
    try:
        from cgm import experiments as ex  # inside the boundary: a bad CGM_* variable fails at its import

        if getattr(args, "profile", None) not in (None, *ex.PROFILES):  # `list` takes no profile
            raise ValueError(f"unknown profile {args.profile!r}; valid: {', '.join(ex.PROFILES)}")
        if getattr(args, "steps", None) is not None and args.steps < 1:
            raise ValueError(f"--steps must be >= 1, got {args.steps}")
        if getattr(args, "device", None) is not None:
            ex.check_device(args.device)  # before any work
        if getattr(args, "eval_memory_gib", None) is not None and not 0 < args.eval_memory_gib < float("inf"):
            raise ValueError(
                f"--eval-memory-gib must be a positive number of GiB, got {args.eval_memory_gib}"
            )
        if getattr(args, "eval_workers", None) is not None and args.eval_workers < 0:
            raise ValueError(f"--eval-workers must be >= 0, got {args.eval_workers}")
        commands = {"list": cmd_list, "train": cmd_train, "eval": cmd_eval, "run": cmd_run, "flow": cmd_flow}
        commands["show"] = cmd_show
        commands["plan"] = cmd_plan
        return commands[args.command](args)
    except EXPECTED_ERRORS as err:  # a message, not a traceback: the input is wrong, not the code
        print(f"error: {errors.message(err)}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
