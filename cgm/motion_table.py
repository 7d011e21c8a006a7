"""Table 1 scored: the clips every method sees, each method's ℓ1 / EPE / PSNR / SSIM, the
measured table beside the paper's, and the sentences that read it.

The methods themselves live in `cgm.baselines` (optical flow, frame prediction) and
`cgm.network` (CGM-Net, wrapped here as `cgm_motion` / `cgm_prediction`). Every method is scored
on exactly the clips of `test_clips` (`evaluation_clips` spreads them over the dataset). A clip
is (3, T+1, H, W): frames 0..T-1 are the input (what CGM-Net sees); motion is scored on the
consecutive input pairs (t, t+1), t = 0..T-2, and 1-step prediction on the unseen frame T
predicted from frames 0..T-1. `table1_frame` puts the measured cells beside the paper's in the
one results layout (`cgm.tables.compare`); `figure_inputs` gives Figs. 4-5 their model and clips.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import torch

from cgm.baselines import FLOW_METHODS, PAPER_ONLY_METHODS, PREDICTION_METHODS, MotionFn, PredictFn
from cgm.data import build_dataset
from cgm.data.registry import LAYOUTS
from cgm.errors import user_errors
from cgm.experiments import RunResult, trained_model
from cgm.metrics import PSNR_CAP, epe, psnr, ssim
from cgm.paper import TABLE1_MOTION_ROWS, paper_value
from cgm.tables import COLUMNS, compare
from cgm.warp import adaptive_warp, motion_to_flow

# Table 1's notebook datasets -> (the motion set, the prediction set) of cgm.data.build_dataset.
TABLE1_DATA = {
    "footage": ("footage", "footage"),
    "natural": ("natural", "natural"),
    "synthmotion": ("synthmotion", "synthmotion"),
    "ucf101": ("ucf_flow", "ucf_pred"),
}


def check_motion_parameters(dataset: str, resolution: int | None, data_root: str | None = None) -> None:
    """A motion notebook's `dataset` (a key of TABLE1_DATA), `resolution` (None, or one of the
    paper's inputs 112 / 256) and `data_root` (a folder, for a dataset that is not embedded), or a
    ValueError naming the parameter and what was expected (before any model is trained)."""
    if dataset not in TABLE1_DATA:
        raise ValueError(f"dataset must be one of {list(TABLE1_DATA)}, got {dataset!r}")
    if resolution not in (None, 112, 256):
        raise ValueError(f"resolution must be None, 112 or 256 (the paper's two inputs), got {resolution!r}")
    embedded = ("footage", "natural", "synthmotion")
    if dataset not in embedded and (data_root is None or not Path(str(data_root)).expanduser().is_dir()):
        what = "is not given" if data_root is None else f"{data_root!r} is not a folder"
        raise ValueError(
            f"data_root {what}; dataset={dataset!r} reads {' and '.join(TABLE1_DATA[dataset])} from "
            "it, laid out as:\n  " + LAYOUTS[TABLE1_DATA[dataset][0]].replace("\n", "\n  ")
        )


def test_clips(
    dataset: str, kind: str, *, clip_len: int, size: int, max_pairs: int, data_root: str | None = None
) -> list[dict]:
    """The test items (clips of clip_len+1 frames) every method is scored on, for a notebook
    `dataset` of TABLE1_DATA; `kind` "motion" or "prediction" picks its set."""
    if dataset not in TABLE1_DATA:
        raise ValueError(f"dataset must be one of {list(TABLE1_DATA)}, got {dataset!r}")
    if kind not in ("motion", "prediction"):
        raise ValueError(f"kind must be 'motion' or 'prediction', got {kind!r}")
    name = TABLE1_DATA[dataset][kind == "prediction"]
    kw = dict(data_root=data_root, clip_len=clip_len, size=size, future=True)
    if dataset == "ucf101" and size > 128:
        kw["resize"] = size  # short side to 256, centre crop 256x256
    return evaluation_clips(build_dataset(name, "test", **kw), max_pairs=max_pairs)


def evaluation_clips(dataset, *, max_pairs: int) -> list[dict]:
    """Items of `dataset` (clips (3,T+1,H,W)) with about `max_pairs` input pairs in all.

    Takes max(1, max_pairs // (T-1)) clips evenly spread over the dataset (so that every video
    of a small dataset is represented, not only the first), in dataset order. Every method of
    Table 1 is scored on exactly these clips.
    """
    if max_pairs < 1:
        raise ValueError(f"max_pairs must be >= 1, got {max_pairs}")
    if len(dataset) == 0:
        raise ValueError("evaluation_clips: the dataset is empty")
    first = dataset[0]
    pairs_per_clip = first["clip"].shape[1] - 2  # T+1 frames: T inputs, T-1 input pairs
    if pairs_per_clip < 1:
        raise ValueError(
            f"clips need T+1 >= 3 frames (future=True, clip_len >= 2), got {tuple(first['clip'].shape)}"
        )
    n = min(len(dataset), max(1, max_pairs // pairs_per_clip))
    picks = np.unique(np.linspace(0, len(dataset) - 1, n).round().astype(int))
    return [dataset[int(i)] for i in picks]


@torch.no_grad()
def _cgm_maps(model: torch.nn.Module, clip: torch.Tensor) -> torch.Tensor:
    """HR motion maps of one input clip (3,T,H,W): (T, k^*k^, H, W), T = the model's clip_len."""
    device = next(model.parameters()).device
    return model(clip[None].float().to(device)).hr_maps[0].cpu()  # (T, K*K, H, W)


def cgm_motion(model: torch.nn.Module) -> MotionFn:
    """CGM-Net as a `MotionFn`: map t applied to frame t (Eq. 1) reconstructs frame t+1.

    One forward per clip gives all T maps; the first T-1 are scored (the last one predicts the
    unseen frame, `cgm_prediction`). The flows are the maps read through `motion_to_flow`.
    """
    model.eval()

    @torch.no_grad()
    def motion(clip: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        maps = _cgm_maps(model, clip)[:-1]  # (T-1, K*K, H, W)
        frames = clip[:, :-1].transpose(0, 1).float()  # (T-1, 3, H, W)
        return adaptive_warp(frames, maps, padding=model.cfg.padding), motion_to_flow(maps)

    return motion


def cgm_prediction(model: torch.nn.Module) -> PredictFn:
    """CGM-Net as a `PredictFn`: the last map applied to the last input frame."""
    model.eval()

    @torch.no_grad()
    def predict(clip: torch.Tensor) -> torch.Tensor:
        last_map = _cgm_maps(model, clip)[-1:]  # (1, K*K, H, W)
        return adaptive_warp(clip[:, -1][None].float(), last_map, padding=model.cfg.padding)[0]

    return predict


def _check_clips(clips: list[torch.Tensor]) -> None:
    if not clips:
        raise ValueError("expected at least one clip")
    for clip in clips:
        if clip.dim() != 4 or clip.shape[0] != 3 or clip.shape[1] < 3:
            raise ValueError(f"expected clips (3,T+1,H,W) with T >= 2, got {tuple(clip.shape)}")


@torch.no_grad()
def score_motion(
    motion: MotionFn,
    clips: list[torch.Tensor],
    *,
    flows: list[torch.Tensor] | None = None,
    occlusions: list[torch.Tensor] | None = None,
) -> dict[str, float]:
    """Table 1 (left) for one method: ℓ1 error of the reconstructed frames over all input pairs.

    `clips`: (3,T+1,H,W) each. `flows` / `occlusions` (ground truth, (T',2,H,W) / (T',1,H,W) with
    T' >= T-1, e.g. SynthMotion's): adds `epe`, the end-point error on non-occluded pixels, when
    the method returns flows. Returns l1, epe (nan without ground truth), pairs, sec_per_pair.
    """
    _check_clips(clips)
    preds, targets, est, gt, valid, seconds = [], [], [], [], [], 0.0
    for i, clip in enumerate(clips):
        inputs = clip[:, :-1]  # (3, T, H, W): frame T is the prediction target, never shown
        (recon, flow), dt = timed(motion, inputs)
        seconds += dt
        preds.append(recon.float())
        targets.append(inputs[:, 1:].transpose(0, 1).float())  # (T-1, 3, H, W)
        if flows is not None and flow is not None:
            pairs = recon.shape[0]
            est.append(flow.float())
            gt.append(flows[i][:pairs].float())
            if occlusions is not None:
                valid.append(~occlusions[i][:pairs])
    pred, target = torch.cat(preds), torch.cat(targets)
    end_point = float("nan")
    if est:
        end_point = epe(torch.cat(est), torch.cat(gt), torch.cat(valid) if valid else None)
    return {
        "l1": (pred - target).abs().mean().item(),
        "epe": end_point,
        "pairs": pred.shape[0],
        "sec_per_pair": seconds / pred.shape[0],
    }


@torch.no_grad()
def score_prediction(predict: PredictFn, clips: list[torch.Tensor]) -> dict[str, float]:
    """Table 1 (right) for one method: PSNR / SSIM of frame T predicted from frames 0..T-1."""
    _check_clips(clips)
    preds, seconds = [], 0.0
    for clip in clips:
        pred, dt = timed(predict, clip[:, :-1])
        seconds += dt
        preds.append(pred.float().clamp(-1, 1))
    pred = torch.stack(preds)  # (N, 3, H, W)
    target = torch.stack([clip[:, -1].float() for clip in clips])
    return {
        "psnr": psnr(pred, target, max_db=PSNR_CAP),
        "ssim": ssim(pred, target),
        "clips": len(clips),
        "sec_per_pair": seconds / len(clips),
    }


# ----------------------------------------------------------------------------- tables

MEASURED, QUOTED = "measured", "quoted from the paper"
# The one results layout (`cgm.tables.COLUMNS`: row = the method's label, column = the metric),
# then what Table 1 adds: the method's key, where the line comes from, input size, cost, pairs.
TABLE_COLUMNS = (*COLUMNS, "method", "source", "resolution", "sec_per_pair", "n")
OURS = "cgm"  # the committed CGM-Net (`table1/cgm`)
# The laptop's second CGM-Net, from soft block matching over 5x5 boxes (`table1/cgm_box5`): its ℓ1
# reaches TV-L1's by colour matching, not motion. Scored beside `table1/cgm` where the two differ
# (the laptop profile), no paper row.
OURS_BOX5 = "cgm_box5"
_NO_MOTION = "no_motion"
_PAPER_DATA = {"table1_motion": "UCF-Flow (paper)", "table1_prediction": "UCF-Pred (paper)"}
_ORACLE = "tap_oracle"
_BLOCK_MATCHING = "block_matching"
_MATCHING_FLOW = "matching_flow"
# The cues the laptop CGM-Nets start from, scored alone, and the model that starts from each: what
# training adds is the difference.
_CUES = {
    _BLOCK_MATCHING: (
        OURS_BOX5,
        'soft block matching alone (no learning; hr_prior="cost_local"\'s cue before training)',
    ),
    _MATCHING_FLOW: (
        OURS,
        'the matching flow alone (no learning; hr_prior="cue_flow"\'s cue before training)',
    ),
}
_LABELS = {
    _BLOCK_MATCHING: "Soft block matching (3x3 patches, 9x9 taps; no learning)",
    _MATCHING_FLOW: "Matching flow (sub-pixel block matching in CGM-Net's window; no learning)",
    OURS: "CGM-Net (ours)",
    OURS_BOX5: "CGM-Net from soft block matching (ours, table1/cgm_box5)",
    _NO_MOTION: "No motion (frame t as t+1)",
    _ORACLE: "Tap oracle (best single tap of CGM-Net's window; sees t+1's pixels)",
}


def method_label(method: str) -> str:
    for registry in (FLOW_METHODS, PREDICTION_METHODS, PAPER_ONLY_METHODS):
        if method in registry:
            return registry[method].label
    if method not in _LABELS:
        raise ValueError(f"unknown Table 1 method {method!r}")
    return _LABELS[method]


def _paper_row(table: str, method: str, resolution: int) -> str | None:
    if method == OURS:
        # The paper has CGM-Net at 112 and 256 px; other input sizes compare to the nearer one.
        return (
            "Ours (CGM-Net)" if table == "table1_motion" else f"Ours ({256 if resolution >= 184 else 112} px)"
        )
    for registry in (FLOW_METHODS, PREDICTION_METHODS, PAPER_ONLY_METHODS):
        if method in registry and registry[method].paper_table == table:
            return registry[method].paper_row
    return None


def table1_frame(
    table: str, scores: dict[str, dict[str, float] | str], *, dataset: str, profile: str, resolution: int
) -> pd.DataFrame:
    """Measured Table 1 cells beside the paper's, one line per (method, metric), in the one
    results layout (`cgm.tables.compare`: row = the method's label, column = the metric).

    `table`: "table1_motion" (metrics l1, epe) or "table1_prediction" (psnr, ssim). `scores`:
    method name -> the dict of `score_motion` / `score_prediction`, or a string saying why the
    method was not run (its source column then says so; measured stays empty). Method names:
    the registries' keys, "cgm" (ours) and "no_motion". The paper-only methods of this table are
    appended with their paper value, source "quoted from the paper", the paper's dataset and no
    measured value.
    EPE lines appear only where ground-truth flow gave a finite value (the paper has none).
    `resolution`: the input size; CGM-Net's prediction line compares to the paper's "Ours (112 px)"
    or "Ours (256 px)", whichever is nearer.
    """
    metrics = {"table1_motion": ("l1", "epe"), "table1_prediction": ("psnr", "ssim")}
    if table not in metrics:
        raise ValueError(f"table must be one of {sorted(metrics)}, got {table!r}")
    records = []

    def add(method, source, metric, measured, sec, n):
        paper_row = _paper_row(table, method, resolution) if metric != "epe" else None  # no EPE there
        where = (dataset, profile) if source != QUOTED else (_PAPER_DATA[table], "")
        records.append(
            {
                "row": method_label(method),
                "column": metric,
                "measured": measured,
                "paper_row": paper_row,
                "dataset": where[0],
                "profile": where[1],
                "method": method,
                "source": source,
                "resolution": resolution,
                "sec_per_pair": sec,
                "n": n,
            }
        )

    for method, score in scores.items():
        if isinstance(score, str):
            add(method, score, metrics[table][0], float("nan"), float("nan"), 0)
            continue
        n = score.get("pairs", score.get("clips"))
        for metric in metrics[table]:
            if metric == "epe" and not np.isfinite(score.get("epe", float("nan"))):
                continue
            add(method, MEASURED, metric, float(score[metric]), float(score["sec_per_pair"]), n)
    for method, info in PAPER_ONLY_METHODS.items():
        if info.paper_table == table:
            for metric in metrics[table]:
                if metric != "epe":
                    add(method, QUOTED, metric, float("nan"), float("nan"), 0)
    return compare(table, records, dataset=dataset, profile=profile)[list(TABLE_COLUMNS)]


def table1_wide(frame: pd.DataFrame) -> pd.DataFrame:
    """`table1_frame`'s lines as one row per method (for printing): source, each metric measured
    and the paper's, seconds per pair; columns with no value at all are dropped."""
    rows: dict[str, dict] = {}
    for line in frame.itertuples():
        row = rows.setdefault(line.row, {"source": line.source})
        row[line.column] = line.measured
        row[f"{line.column} (paper)"] = line.paper
        row["sec/pair"] = line.sec_per_pair
    wide = pd.DataFrame.from_dict(rows, orient="index")
    metrics = list(dict.fromkeys(frame["column"]))
    order = ["source", *metrics, *(f"{m} (paper)" for m in metrics), "sec/pair"]
    return wide[[c for c in order if c in wide.columns]].dropna(axis=1, how="all")


def timed(fn: Callable, *args, **kwargs):
    """Run `fn(*args, **kwargs)`; return its result and the wall-clock seconds it took."""
    start = time.perf_counter()
    out = fn(*args, **kwargs)
    return out, time.perf_counter() - start


def _cell(frame: pd.DataFrame, method: str, metric: str) -> float:
    line = frame[(frame["method"] == method) & (frame["column"] == metric) & (frame["source"] == MEASURED)]
    return float(line["measured"].iloc[0]) if len(line) else float("nan")


def table1_reading(motion: pd.DataFrame, prediction: pd.DataFrame) -> list[str]:
    """What Table 1's measured lines show, as sentences computed from them (never fixed prose):
    CGM-Net against copying the frame, TV-L1 (the paper's ratio 0.49), DIS-Fast, the tap oracle and
    (when scored) each cue against the CGM-Net that starts from it;
    the flow methods' order against the paper's; 1-step prediction against repeating the frame."""
    methods = ("cgm", OURS_BOX5, _NO_MOTION, "tvl1", "dis_fast", "deepflow", _ORACLE, *_CUES)
    l1 = {m: _cell(motion, m, "l1") for m in methods}
    paper = {m: paper_value("table1_motion", row, "l1") for m, row in TABLE1_MOTION_ROWS.items()}
    where = (
        f"{motion['dataset'].iloc[0]}, profile {motion['profile'].iloc[0]}, {motion['resolution'].iloc[0]} px"
    )
    below_copy = 1 - l1["cgm"] / l1[_NO_MOTION]
    ratio, paper_ratio = l1["cgm"] / l1["tvl1"], paper["cgm"] / paper["tvl1"]
    lines = [
        f"On {where}: CGM-Net's ℓ1 is {l1['cgm']:.4f}, {abs(below_copy):.0%} "
        f"{'below' if below_copy > 0 else 'above'} copying the previous frame ({l1[_NO_MOTION]:.4f}).",
        f"CGM-Net / TV-L1 = {ratio:.2f} (paper: {paper_ratio:.2f}): "
        + (
            "CGM-Net is above TV-L1 — this disagrees with the paper."
            if ratio > 1
            else "CGM-Net is at or below TV-L1, as in the paper"
            + (
                "."
                if ratio <= 1.2 * paper_ratio
                else f", by less than the paper's margin ({ratio:.2f} vs {paper_ratio:.2f})."
            )
        ),
    ]
    if np.isfinite(l1[_ORACLE]):
        lines.append(
            f"The tap oracle (the best single tap per pixel, which sees frame t+1) reaches "
            f"{l1[_ORACLE]:.4f} = {l1[_ORACLE] / l1['tvl1']:.2f} x TV-L1: the room CGM-Net's motion "
            f"map has; CGM-Net uses {(l1[_NO_MOTION] - l1['cgm']) / (l1[_NO_MOTION] - l1[_ORACLE]):.0%} "
            f"of the way from copy to the oracle."
        )
    for cue, (model, what) in _CUES.items():
        if not (np.isfinite(l1[cue]) and np.isfinite(l1[model])):
            continue
        gain = 1 - l1[model] / l1[cue]
        lines.append(
            f"{what[0].upper() + what[1:]}: {l1[cue]:.4f} = {l1[cue] / l1['tvl1']:.2f} x TV-L1; "
            f"{method_label(model)} is {abs(gain):.0%} {'below' if gain > 0 else 'above'} it"
            + (": what training adds." if gain > 0 else ": training did not improve on it.")
        )
    flows = sorted(("tvl1", "dis_fast", "deepflow"), key=lambda m: l1[m])
    paper_order = sorted(flows, key=lambda m: paper[m])
    names = {m: FLOW_METHODS[m].label for m in flows}
    lines.append(
        f"Optical flow, measured: {' < '.join(names[m] for m in flows)}; paper: "
        f"{' < '.join(names[m] for m in paper_order)} — "
        + ("the same order." if flows == paper_order else "a different order.")
    )
    psnr, copy_psnr = _cell(prediction, "cgm", "psnr"), _cell(prediction, "repeat_last", "psnr")
    cv = _cell(prediction, "constant_velocity_tvl1", "psnr")
    lines.append(
        f"1-step prediction: CGM-Net PSNR {psnr:.2f} dB vs repeat-last {copy_psnr:.2f} dB "
        f"({'above' if psnr > copy_psnr else 'not above'}) and constant velocity (TV-L1) "
        f"{cv:.2f} dB ({'above' if psnr > cv else 'not above'})."
    )
    return lines


# ----------------------------------------------------------------------------- a real pair with ground truth

MOTORCYCLE_SCALE = 0.1  # skimage's pair is 741x500 with disparities 7-60 px: 0.7-6 px at this scale


def motorcycle_clip(clip_len: int, *, scale: float = MOTORCYCLE_SCALE, multiple: int = 8):
    """Middlebury 2014 Motorcycle (scikit-image's `stereo_motorcycle`) as a clip with known motion.

    The right view is shown until frame `clip_len // 2 - 1`, the left view from `clip_len // 2` on
    (clip_len + 1 frames in all), so pair `clip_len // 2 - 1` moves the right view onto the left
    one: the flow on the left view's grid is (disparity, 0) (left(p) = right(p - d)), read from the
    left disparity map, scaled with the image; inf disparities are invalid. Returns
    (clip (3, T+1, H, W) in [-1, 1], the pair index, flow (2, H, W), valid (H, W) bool); H and W
    are cropped to a multiple of `multiple`."""
    from skimage import data  # scikit-image loads on use: only this pair needs it

    left, right, disp = data.stereo_motorcycle()
    h, w = round(left.shape[0] * scale), round(left.shape[1] * scale)
    h, w = h - h % multiple, w - w % multiple
    if clip_len < 2 or h < multiple or w < multiple:
        raise ValueError(
            f"need clip_len >= 2 and a scale that leaves >= {multiple} px, got "
            f"clip_len={clip_len}, scale={scale}"
        )
    size = (round(left.shape[1] * scale), round(left.shape[0] * scale))

    def frame(img):
        small = cv2.resize(img, size, interpolation=cv2.INTER_AREA)[:h, :w]
        return torch.from_numpy(small).permute(2, 0, 1).float() / 127.5 - 1.0  # (3, h, w)

    valid_full = np.isfinite(disp)
    d = cv2.resize(np.where(valid_full, disp, 0).astype(np.float32), size, interpolation=cv2.INTER_NEAREST)[
        :h, :w
    ]
    valid = cv2.resize(valid_full.astype(np.uint8), size, interpolation=cv2.INTER_NEAREST)[:h, :w] > 0
    pair = clip_len // 2 - 1
    views = [frame(right)] * (pair + 1) + [frame(left)] * (clip_len + 1 - (pair + 1))
    flow = torch.stack([torch.from_numpy(d * scale), torch.zeros(h, w)])  # (2, h, w), x first
    return torch.stack(views, dim=1), pair, flow, torch.from_numpy(valid)


def score_motorcycle(motion: MotionFn, clip_len: int, *, scale: float = MOTORCYCLE_SCALE) -> dict[str, float]:
    """EPE (valid pixels, px) and ℓ1 of one method on the Motorcycle pair of `motorcycle_clip`."""
    clip, pair, gt, valid = motorcycle_clip(clip_len, scale=scale)
    recon, flow = motion(clip[:, :-1])
    target = clip[:, pair + 1]
    out = {
        "l1": (recon[pair].float() - target).abs().mean().item(),
        "epe": float("nan"),
        "max_disparity": float(gt[0][valid].max()),
    }
    if flow is not None:
        out["epe"] = epe(flow[pair : pair + 1].float(), gt[None], valid[None])
    return out


# ----------------------------------------------------------------------------- Figs. 4-5


@user_errors
def figure_inputs(
    kind: str,
    *,
    dataset: str,
    profile: str,
    num_clips: int,
    backbone: str | None = None,
    resolution: int | None = None,
    data_root: str | None = None,
    device: str = "cpu",
    seed: int = 0,
    overrides: str | dict | None = None,
) -> tuple[RunResult, object, list[dict]]:
    """What Figs. 4-5 draw from: the parameters checked, the seed set, the `table1/cgm` model of
    `trained_model`, and about `num_clips` test clips of `dataset` for `kind` ("motion" or
    "prediction", `test_clips`) at the model's clip length and size. `overrides`:
    as in `trained_model`."""
    check_motion_parameters(dataset, resolution, data_root)
    if not isinstance(num_clips, int) or num_clips < 1:
        raise ValueError(f"num_clips must be a positive int, got {num_clips!r}")
    torch.manual_seed(seed)
    print(f"dataset={dataset} profile={profile} backbone={backbone} device={device}")
    result, model = trained_model(
        "table1/cgm",
        profile,
        backbone=backbone,
        resolution=resolution,
        data_root=data_root,
        device=device,
        overrides=overrides,
    )
    clip_len, size = model.cfg.clip_len, model.cfg.size
    items = test_clips(
        dataset, kind, clip_len=clip_len, size=size, max_pairs=num_clips * (clip_len - 1), data_root=data_root
    )
    print(f"{len(items)} clips of {dataset} (test split), {clip_len} input frames + 1 at {size}px")
    return result, model, items
