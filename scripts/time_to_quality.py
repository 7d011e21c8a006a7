"""Time-to-quality of a motion run: held-out ℓ1 of training snapshots against training minutes.

    python scripts/time_to_quality.py --snapshots 'SNAPDIR/*.pt' --metrics RUN/metrics.csv \
        [--max-pairs 192] [--out results/time_to_quality__table1_cgm_laptop]

Each snapshot is a training checkpoint (`checkpoint.pt` copied aside while the run trained: the
trainer overwrites it every `checkpoint_every` steps). Every snapshot is scored like Table 1
(`cgm.baselines.score_motion` on the same held-out footage pairs, at the model's clip length and
size); copy, TV-L1 and the untrained soft block matching are scored once on the same pairs as
reference lines. Training minutes at a step come from the run's metrics.csv (the sum over its log
intervals of clips / measured clips-per-second: training time only, not checkpoint writes).
Writes OUT.csv and OUT.png and prints the table.
"""

from __future__ import annotations

import argparse
import glob
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
import torch  # noqa: E402
from tqdm.auto import tqdm  # noqa: E402

from cgm import baselines, checkpoints, reference  # noqa: E402
from cgm.network import CGMConfig, CGMNet  # noqa: E402


def minutes_at(metrics_csv: Path, batch_size: int) -> pd.Series:
    """Training minutes at each logged step of a run: cumulative clips / clips-per-second."""
    log = pd.read_csv(metrics_csv).drop_duplicates("step", keep="last").sort_values("step")
    steps = log["step"].diff().fillna(log["step"])
    seconds = (steps * batch_size / log["clips_per_s"]).cumsum()
    return pd.Series(seconds.to_numpy() / 60, index=log["step"].to_numpy())


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
    p.add_argument("--snapshots", required=True, help="glob of checkpoint copies")
    p.add_argument("--metrics", required=True, type=Path, help="the run's metrics.csv")
    p.add_argument("--dataset", default="footage", help="a Table 1 dataset (default: footage)")
    p.add_argument("--max-pairs", type=int, default=192)
    p.add_argument("--out", default="results/time_to_quality__table1_cgm_laptop")
    args = p.parse_args(argv)
    paths = sorted(glob.glob(args.snapshots))
    if not paths:
        raise SystemExit(f"no snapshot matches {args.snapshots!r}")
    if not args.metrics.is_file():
        raise SystemExit(f"no metrics file {args.metrics}")

    first, _, batch_size = load_snapshot(paths[0])
    cfg = first.cfg
    items = baselines.test_clips(
        args.dataset, "motion", clip_len=cfg.clip_len, size=cfg.size, max_pairs=args.max_pairs
    )
    clips = [item["clip"] for item in items]
    refs = {
        "no_motion": baselines.no_motion,
        "tvl1": baselines.flow_motion("tvl1"),
        "block_matching": reference.block_matching_motion(cfg.k_hr),
    }
    lines = {name: baselines.score_motion(fn, clips)["l1"] for name, fn in refs.items()}
    minutes = minutes_at(args.metrics, batch_size)
    rows = []
    for path in tqdm(paths, desc="snapshots", unit="ckpt"):
        model, step, _ = load_snapshot(path)
        if step not in minutes.index:
            raise SystemExit(f"{path}: step {step} is not logged in {args.metrics}")
        l1 = baselines.score_motion(baselines.cgm_motion(model), clips)["l1"]
        rows.append(
            {"step": step, "minutes": minutes[step], "l1": l1, **{f"{k}_l1": v for k, v in lines.items()}}
        )
    frame = pd.DataFrame(rows).drop_duplicates("step").sort_values("step")
    frame["l1_over_tvl1"] = frame["l1"] / frame["tvl1_l1"]
    frame["pairs"] = sum(c.shape[1] - 2 for c in clips)

    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    frame.to_csv(out.with_suffix(".csv"), index=False, float_format="%.6g")
    fig, ax = plt.subplots(figsize=(6, 3.6))
    ax.plot(frame["minutes"], frame["l1"], "o-", label="CGM-Net (snapshots)")
    for name, style in (("no_motion", ":"), ("tvl1", "--"), ("block_matching", "-.")):
        ax.axhline(lines[name], ls=style, color="grey", label=baselines.method_label(name))
    ax.set_xlabel("training minutes (this machine)")
    ax.set_ylabel(f"held-out ℓ1 ({int(frame['pairs'].iloc[0])} pairs)")
    ax.set_ylim(0, None)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out.with_suffix(".png"), dpi=120)
    print(frame.to_string(index=False, float_format=lambda v: f"{v:.4f}"))
    return frame


if __name__ == "__main__":
    main()
