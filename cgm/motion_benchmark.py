"""Table 1's ground-truth column, which the paper could not report: is each method's motion the motion?

Every Table 1 motion method (a `cgm.baselines.MotionFn`: copy, the OpenCV flows, the tap oracle,
soft block matching, CGM-Net) is scored against exact flow on two sets:
- **known motion** (`cgm.data.knownmotion`): held-out footage frames under known smooth camera and
  layer motion, with occlusion; EPE and the outlier rate on non-occluded pixels, and the ℓ1 of the
  reconstructed frames (all pixels, as Table 1's);
- **Middlebury Motorcycle** (`cgm.motion_table.motorcycle_clip`): a real stereo pair whose disparity is
  the flow of one frame pair; EPE and outliers on valid pixels, ℓ1 of that pair.

A method's flow is what it moves pixels by: OpenCV's flows as they are, CGM-Net's HR maps through
`motion_to_flow`, the tap oracle's chosen tap (`oracle_flow_motion`, the oracle of
`cgm.reference` with its tap read as a displacement). Results use the one results layout
(`cgm.tables.compare`, no paper values: the paper has none) and go to `results/table1_known_motion.csv`,
from which `cgm.verdicts` judges "Fig. 4: the HR maps are motion".
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

from cgm.baselines import MotionFn
from cgm.data import build_dataset
from cgm.metrics import epe, outlier_rate
from cgm.motion_table import OURS, OURS_BOX5, evaluation_clips, method_label, motorcycle_clip, timed
from cgm.tables import compare

STEM = "table1_known_motion"
KNOWN = "knownmotion"
MOTORCYCLE = "Middlebury Motorcycle"
METRICS = ("epe", "outliers", "l1")
EPE_RATIO = 1.5  # the verdict: CGM-Net's EPE within this factor of TV-L1's on both sets
MODELS = {OURS: "CGM-Net", OURS_BOX5: "CGM-Net from soft block matching"}  # the laptop's, as read


def oracle_flow_motion(k: int) -> MotionFn:
    """The tap oracle (per pixel, the single tap of the k x k window that best reconstructs frame
    t+1; ties keep the centre tap, as `cgm.reference.best_tap`) with its tap as the flow: a tap
    (dy, dx) moves content by (+dx, +dy) (Eq. 1)."""
    if k < 1 or k % 2 == 0:
        raise ValueError(f"k must be a positive odd filter size, got {k}")
    r = k // 2
    taps = [(0, 0)] + [(dy, dx) for dy in range(-r, r + 1) for dx in range(-r, r + 1) if (dy, dx) != (0, 0)]

    @torch.no_grad()
    def motion(clip: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        frames = clip.transpose(0, 1).float()  # (T, 3, H, W)
        prev, nxt = frames[:-1], frames[1:]
        h, w = prev.shape[-2:]
        padded = F.pad(prev, (r, r, r, r), mode="replicate")
        shifted = torch.stack([padded[..., r - dy : r - dy + h, r - dx : r - dx + w] for dy, dx in taps])
        err = (shifted - nxt).abs().mean(2)  # (K*K, T-1, H, W); argmin keeps the first (centre) on ties
        best = err.argmin(0)  # (T-1, H, W)
        recon = shifted.gather(0, best[None, :, None].expand(1, -1, 3, -1, -1))[0]  # (T-1, 3, H, W)
        d = torch.tensor(taps, dtype=torch.float32)[best]  # (T-1, H, W, 2) as (dy, dx)
        return recon, d.flip(-1).permute(0, 3, 1, 2).contiguous()  # flow (T-1, 2, H, W), x first

    return motion


def known_motion_items(clip_len: int, size: int, max_pairs: int, *, footage_dir=None) -> list[dict]:
    """The known-motion test clips (clip_len + 1 frames at size px) every method is scored on:
    about `max_pairs` scored frame pairs (`cgm.motion_table.evaluation_clips`)."""
    kw = {"footage_dir": footage_dir} if footage_dir else {}
    dataset = build_dataset(KNOWN, "test", clip_len=clip_len, size=size, future=True, **kw)
    return evaluation_clips(dataset, max_pairs=max_pairs)


@torch.no_grad()
def score_known_motion(motion: MotionFn, items: list[dict]) -> dict[str, float]:
    """EPE and outlier rate (> `metrics.OUTLIER_PX`) on non-occluded pixels, ℓ1 of the reconstructed
    frames (all pixels), over the input pairs of `items` (clips (3, T+1, H, W) with flow and
    occlusion). EPE and outliers are NaN for a method without flow."""
    if not items:
        raise ValueError("score_known_motion: no items")
    l1, est, gt, valid, seconds = [], [], [], [], 0.0
    for item in items:
        inputs = item["clip"][:, :-1]  # (3, T, H, W): the last frame is the prediction target
        (recon, flow), dt = timed(motion, inputs)
        seconds += dt
        pairs = recon.shape[0]
        l1.append((recon.float() - inputs[:, 1:].transpose(0, 1).float()).abs().flatten(1).mean(1))
        if flow is not None:
            est.append(flow.float())
            gt.append(item["flow"][:pairs].float())
            valid.append(~item["occlusion"][:pairs])
    l1 = torch.cat(l1)
    out = {"epe": math.nan, "outliers": math.nan, "l1": l1.mean().item()}
    if est:
        est, gt, valid = torch.cat(est), torch.cat(gt), torch.cat(valid)
        out.update(epe=epe(est, gt, valid), outliers=outlier_rate(est, gt, valid))
    return {**out, "pairs": len(l1), "sec_per_pair": seconds / len(l1)}


@torch.no_grad()
def score_motorcycle(motion: MotionFn, clip_len: int) -> dict[str, float]:
    """EPE, outlier rate (valid pixels) and ℓ1 of one method on the Motorcycle pair
    (`cgm.motion_table.motorcycle_clip`); EPE and outliers NaN without flow."""
    clip, pair, gt, valid = motorcycle_clip(clip_len)
    (recon, flow), dt = timed(motion, clip[:, :-1])
    out = {
        "epe": math.nan,
        "outliers": math.nan,
        "l1": (recon[pair].float() - clip[:, pair + 1]).abs().mean().item(),
    }
    if flow is not None:
        f = flow[pair : pair + 1].float()
        out.update(epe=epe(f, gt[None], valid[None]), outliers=outlier_rate(f, gt[None], valid[None]))
    return {**out, "pairs": 1, "sec_per_pair": dt / max(clip_len - 1, 1)}


def benchmark_frame(
    known: dict[str, dict], motorcycle: dict[str, dict], *, profile: str, resolution: int
) -> pd.DataFrame:
    """Both sets' scores (method -> `score_known_motion` / `score_motorcycle`) in the one results
    layout: one line per (set, method, metric), `dataset` naming the set, no paper value. An empty
    dict leaves its set out."""
    frames = []
    for dataset, scores in ((KNOWN, known), (MOTORCYCLE, motorcycle)):
        if not scores:  # a set not run (known motion needs `make data`)
            continue
        records = [
            {
                "row": method_label(method),
                "column": metric,
                "measured": float(score[metric]),
                "paper_row": None,
                "method": method,
                "resolution": resolution if dataset == KNOWN else "72x48",
                "sec_per_pair": float(score["sec_per_pair"]),
                "n": int(score["pairs"]),
            }
            for method, score in scores.items()
            for metric in METRICS
            if not (metric != "l1" and np.isnan(score[metric]))
        ]
        frames.append(compare(STEM, records, dataset=dataset, profile=profile))
    if not frames:
        raise ValueError("benchmark_frame: no scores for either set")
    return pd.concat(frames, ignore_index=True)


def benchmark_wide(frame: pd.DataFrame) -> pd.DataFrame:
    """`benchmark_frame` as one row per method, a column per (set, metric), for printing."""
    wide = frame.pivot_table(index="row", columns=["dataset", "column"], values="measured", sort=False)
    order = list(dict.fromkeys(frame["row"]))
    return wide.reindex(order)[[(d, m) for d in (KNOWN, MOTORCYCLE) for m in METRICS if (d, m) in wide]]


def epe_ratios(frame: pd.DataFrame, method: str = OURS, reference: str = "tvl1") -> dict[str, tuple]:
    """Per set: (method's EPE, reference's EPE, their ratio), for the sets that hold both."""
    out = {}
    for dataset in (KNOWN, MOTORCYCLE):
        sub = frame[(frame["dataset"] == dataset) & (frame["column"] == "epe")].set_index("method")[
            "measured"
        ]
        if method in sub and reference in sub:
            out[dataset] = (float(sub[method]), float(sub[reference]), float(sub[method] / sub[reference]))
    return out


def reading(frame: pd.DataFrame) -> list[str]:
    """What the measured lines say, computed from them."""
    lines = []
    for method, name in MODELS.items():
        for dataset, (ours, tvl1, ratio) in epe_ratios(frame, method=method).items():
            verdict = "within" if ratio <= EPE_RATIO else "not within"
            lines.append(
                f"{dataset}: {name} EPE {ours:.2f} px vs TV-L1 {tvl1:.2f} px = {ratio:.2f}x, "
                f"{verdict} {EPE_RATIO}x (the target for maps that are motion)."
            )
    sub = frame[(frame["dataset"] == KNOWN) & (frame["column"] == "epe")].set_index("method")["measured"]
    if len(sub):
        best = sub.idxmin()
        lines.append(
            f"{KNOWN}: lowest EPE {method_label(best)} ({sub[best]:.2f} px); copy {sub.get('no_motion', math.nan):.2f} px."
        )
    l1 = frame[(frame["dataset"] == KNOWN) & (frame["column"] == "l1")].set_index("method")["measured"]
    if "tap_oracle" in l1 and "tap_oracle" in sub and "tvl1" in sub:
        lines.append(
            f"{KNOWN}: the tap oracle reconstructs best (ℓ1 {l1['tap_oracle']:.4f}) with EPE "
            f"{sub['tap_oracle']:.2f} px vs TV-L1's {sub['tvl1']:.2f}: a low ℓ1 does not make a flow."
        )
    return lines
