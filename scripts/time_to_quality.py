"""Time-to-quality of a motion run: held-out ℓ1 of training snapshots against training minutes.

    python scripts/time_to_quality.py --snapshots 'SNAPDIR/*.pt' --metrics RUN/metrics.csv \
        [--max-pairs 192] [--machine "CPU, threads"] [--out results/time_to_quality__table1_cgm_laptop]
    python scripts/time_to_quality.py --replot results/time_to_quality__table1_cgm_laptop.csv

Each snapshot is a training checkpoint (`checkpoint.pt` copied aside while the run trained: the
trainer overwrites it every `checkpoint_every` steps). Every snapshot is scored like Table 1
(`cgm.motion_table.score_motion` on the same held-out footage pairs, at the model's clip length and
size); copy, TV-L1 and the untrained soft block matching are scored once on the same pairs as
reference lines. Training minutes at a step come from the run's metrics.csv (the sum over its log
intervals of clips / measured clips-per-second: training time only, not checkpoint writes), so
they are minutes of the machine that trained: the CSV's `machine` column names it (`--machine`;
default: this CPU's model name, right when the script runs where the run trained) and the figure's
axis says it. Writes OUT.csv and OUT.png and prints the table; `--replot` redraws OUT.png from
OUT.csv alone.
"""

from __future__ import annotations

import argparse
import glob
import platform
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
import torch  # noqa: E402
from tqdm.auto import tqdm  # noqa: E402

from cgm import baselines, checkpoints, motion_table, reference  # noqa: E402
from cgm.network import CGMConfig, CGMNet  # noqa: E402


def minutes_at(metrics_csv: Path, batch_size: int) -> pd.Series:
    """Training minutes at each logged step of a run: cumulative clips / clips-per-second."""
    log = pd.read_csv(metrics_csv).drop_duplicates("step", keep="last").sort_values("step")
    steps = log["step"].diff().fillna(log["step"])
    seconds = (steps * batch_size / log["clips_per_s"]).cumsum()
    return pd.Series(seconds.to_numpy() / 60, index=log["step"].to_numpy())


def cpu_name() -> str:
    """This CPU's model name (Linux: /proc/cpuinfo), else what `platform` knows."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


REFERENCES = (("no_motion", ":"), ("tvl1", "--"), ("block_matching", "-."))


def plot(frame: pd.DataFrame, png: Path) -> None:
    """The curve of `frame` (this script's CSV) against the reference lines it holds."""
    fig, ax = plt.subplots(figsize=(6, 3.6))
    ax.plot(frame["minutes"], frame["l1"], "o-", label="CGM-Net (snapshots)")
    for name, style in REFERENCES:
        ax.axhline(frame[f"{name}_l1"].iloc[0], ls=style, color="grey", label=motion_table.method_label(name))
    ax.set_xlabel(f"training minutes ({frame['machine'].iloc[0]})", fontsize=8)
    ax.set_ylabel(f"held-out ℓ1 ({int(frame['pairs'].iloc[0])} pairs)")
    ax.set_ylim(0, None)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(png, dpi=120)
    plt.close(fig)


def load_snapshot(path: str) -> tuple[CGMNet, int, int]:
    """(model in eval mode, step, batch size) of one training checkpoint."""
    state = torch.load(path, map_location="cpu", weights_only=True)
    if "model_config" not in state or "step" not in state:
        raise ValueError(f"{path}: not a training checkpoint (no model_config / step)")
    model = CGMNet(CGMConfig.from_dict(state["model_config"]))
    weights = checkpoints.model_weights(state, path)
    model.load_state_dict({k: v.float() for k, v in weights.items()})
    return model.eval(), int(state["step"]), int(state["train_config"]["batch_size"])


def main(argv: list[str] | None = None) -> pd.DataFrame:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--snapshots", help="glob of checkpoint copies")
    p.add_argument("--metrics", type=Path, help="the run's metrics.csv")
    p.add_argument("--dataset", default="footage", help="a Table 1 dataset (default: footage)")
    p.add_argument("--max-pairs", type=int, default=192)
    p.add_argument("--out", default="results/time_to_quality__table1_cgm_laptop")
    p.add_argument(
        "--machine",
        default=None,
        help="the CPU (and threads) that trained the run, for the CSV and the figure (default: this CPU)",
    )
    p.add_argument("--replot", type=Path, default=None, help="redraw CSV's figure (.png beside it) and exit")
    args = p.parse_args(argv)
    if args.replot is not None:
        frame = pd.read_csv(args.replot)
        if "machine" not in frame.columns:
            raise SystemExit(f"{args.replot} has no `machine` column: add the CPU that trained the run")
        plot(frame, args.replot.with_suffix(".png"))
        return frame
    if not args.snapshots or not args.metrics:
        p.error("--snapshots and --metrics are required (or --replot CSV)")
    paths = sorted(glob.glob(args.snapshots))
    if not paths:
        raise SystemExit(f"no snapshot matches {args.snapshots!r}")
    if not args.metrics.is_file():
        raise SystemExit(f"no metrics file {args.metrics}")

    first, _, batch_size = load_snapshot(paths[0])
    cfg = first.cfg
    items = motion_table.test_clips(
        args.dataset, "motion", clip_len=cfg.clip_len, size=cfg.size, max_pairs=args.max_pairs
    )
    clips = [item["clip"] for item in items]
    refs = {
        "no_motion": baselines.no_motion,
        "tvl1": baselines.flow_motion("tvl1"),
        "block_matching": reference.block_matching_motion(cfg.k_hr),
    }
    lines = {name: motion_table.score_motion(fn, clips)["l1"] for name, fn in refs.items()}
    minutes = minutes_at(args.metrics, batch_size)
    rows = []
    for path in tqdm(paths, desc="snapshots", unit="ckpt"):
        model, step, _ = load_snapshot(path)
        if step not in minutes.index:
            raise SystemExit(f"{path}: step {step} is not logged in {args.metrics}")
        l1 = motion_table.score_motion(motion_table.cgm_motion(model), clips)["l1"]
        rows.append(
            {"step": step, "minutes": minutes[step], "l1": l1, **{f"{k}_l1": v for k, v in lines.items()}}
        )
    frame = pd.DataFrame(rows).drop_duplicates("step").sort_values("step")
    frame["l1_over_tvl1"] = frame["l1"] / frame["tvl1_l1"]
    frame["pairs"] = sum(c.shape[1] - 2 for c in clips)
    frame["machine"] = args.machine or cpu_name()

    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    frame.to_csv(out.with_suffix(".csv"), index=False, float_format="%.6g")
    plot(frame, out.with_suffix(".png"))
    print(frame.to_string(index=False, float_format=lambda v: f"{v:.4f}"))
    return frame


if __name__ == "__main__":
    main()
