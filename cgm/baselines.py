"""Optical-flow and frame-prediction baselines of Table 1, from maintained libraries.

Table 1 (left) compares the ℓ1 error of a frame warped by each method's motion; Table 1 (right)
compares 1-step predicted frames. The methods that exist as maintained packages run here:

- DIS (fast preset), DeepFlow and TV-L1 from OpenCV contrib (`cv2`, `cv2.optflow`);
- RAFT (small, large) from torchvision, from a local weights file the user brings (never
  downloaded: `raft_weights_path` says which file and where it is expected);
- prediction: repeat the last frame; constant-velocity extrapolation with TV-L1 flow.

The others (FlowNet2, PWC-Net, TV-Net, BeyondMSE, ContextVP, MCnet+RES, EpicFlow, DVF) have no
maintained package; `PAPER_ONLY_METHODS` names their rows in `cgm.paper`, whose numbers the
notebooks show as quoted from the paper.

Flow convention (`cgm.warp.motion_to_flow`'s, see docs/design.md): a flow between frames a and b
lives on b's grid and says where content came from, `b(p) = a(p - flow(p))`. Every flow method
gets its best shot at the ℓ1 error: we ask it for the flow from b to a on b's grid (OpenCV's and
RAFT's convention: `b(p) = a(p + f(p))`), so `flow = -f` and backward-warping `a` predicts `b`
without any forward splatting.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

from cgm.tables import COLUMNS, compare

# ----------------------------------------------------------------------------- warping


def _check_frames(name: str, frame: torch.Tensor, flow: torch.Tensor) -> None:
    if frame.dim() != 4 or flow.dim() != 4:
        raise ValueError(
            f"{name}: expected frame (N,C,H,W) and flow (N,2,H,W), "
            f"got {tuple(frame.shape)} and {tuple(flow.shape)}"
        )
    if flow.shape[1] != 2 or flow.shape[0] != frame.shape[0] or flow.shape[2:] != frame.shape[2:]:
        raise ValueError(
            f"{name}: flow must be (N,2,H,W) = ({frame.shape[0]},2,{frame.shape[2]},"
            f"{frame.shape[3]}) to match the frame, got {tuple(flow.shape)}"
        )


def backward_warp(frame: torch.Tensor, flow: torch.Tensor) -> torch.Tensor:
    """`out(p) = frame(p - flow(p))`: bilinear, reads outside the frame clamped to the border.

    frame `(N,C,H,W)`, flow `(N,2,H,W)` in pixels, channel 0 = x (the `motion_to_flow`
    convention: a one-hot motion map at tap (dy, dx) and `flow = (dx, dy)` give the same image).
    """
    _check_frames("backward_warp", frame, flow)
    n, _, h, w = frame.shape
    ys, xs = torch.meshgrid(
        torch.arange(h, dtype=flow.dtype, device=flow.device),
        torch.arange(w, dtype=flow.dtype, device=flow.device),
        indexing="ij",
    )
    src_x = xs - flow[:, 0]  # (N, H, W) pixel coordinates to read from
    src_y = ys - flow[:, 1]
    # align_corners=True maps -1 and +1 to the centres of the first and last pixels.
    grid = torch.stack([2 * src_x / max(w - 1, 1) - 1, 2 * src_y / max(h - 1, 1) - 1], dim=-1)  # (N, H, W, 2)
    return F.grid_sample(
        frame, grid.to(frame.dtype), mode="bilinear", padding_mode="border", align_corners=True
    )


# ----------------------------------------------------------------------------- OpenCV methods


def to_gray_uint8(frame: torch.Tensor) -> np.ndarray:
    """(3,H,W) RGB or (1,H,W) in [-1,1] -> (H,W) uint8 luma (ITU-R BT.601), as OpenCV wants."""
    if frame.dim() != 3 or frame.shape[0] not in (1, 3):
        raise ValueError(f"to_gray_uint8: expected a (3,H,W) or (1,H,W) frame, got {tuple(frame.shape)}")
    x = frame.detach().float().cpu()
    if x.shape[0] == 3:
        x = 0.299 * x[0] + 0.587 * x[1] + 0.114 * x[2]
    else:
        x = x[0]
    return ((x.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).numpy()


def _opencv_flow(create: Callable[[], object]) -> Callable[[np.ndarray, np.ndarray], np.ndarray]:
    """Wrap an OpenCV DenseOpticalFlow factory: (prev, next) uint8 -> (H,W,2) with next(p)=prev(p+f)."""

    def calc(prev: np.ndarray, nxt: np.ndarray) -> np.ndarray:
        return create().calc(prev, nxt, None)

    return calc


_OPENCV = {
    "dis_fast": _opencv_flow(lambda: cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_FAST)),
    "deepflow": _opencv_flow(cv2.optflow.createOptFlow_DeepFlow),
    "tvl1": _opencv_flow(cv2.optflow.DualTVL1OpticalFlow_create),
}


# ----------------------------------------------------------------------------- RAFT (torchvision)

_RAFT_URLS = {
    "raft_small": "https://download.pytorch.org/models/raft_small_C_T_V2-01064c6d.pth",
    "raft_large": "https://download.pytorch.org/models/raft_large_C_T_SKHT_V2-ff5fadd5.pth",
}
RAFT_WEIGHTS_ENV = "CGM_WEIGHTS_DIR"  # folder holding the RAFT weights files; default data/weights


def raft_weights_path(model: str) -> Path:
    """Where the weights of `model` (raft_small | raft_large) are expected: $CGM_WEIGHTS_DIR or data/weights."""
    if model not in _RAFT_URLS:
        raise ValueError(f"unknown RAFT model {model!r}; expected one of {sorted(_RAFT_URLS)}")
    folder = Path(
        os.environ.get(RAFT_WEIGHTS_ENV, Path(__file__).resolve().parent.parent / "data" / "weights")
    )
    return folder / _RAFT_URLS[model].rsplit("/", 1)[1]


_RAFT_CACHE: dict[tuple[str, str], torch.nn.Module] = {}


def load_raft(model: str = "raft_small", weights: str | Path | None = None) -> torch.nn.Module:
    """torchvision's RAFT with weights from a local file (torch.load(weights_only=True)); never downloads."""
    from torchvision.models.optical_flow import raft_large, raft_small

    path = Path(weights) if weights is not None else raft_weights_path(model)
    if not path.is_file():
        raise FileNotFoundError(
            f"{model} needs its weights file {path.name!r}, expected at {path}. Nothing is downloaded "
            f"at run time: fetch it once from {_RAFT_URLS[model]} and put it there, set "
            f"${RAFT_WEIGHTS_ENV} to its folder, or pass weights=<path>."
        )
    key = (model, str(path.resolve()))
    if key not in _RAFT_CACHE:
        net = (raft_small if model == "raft_small" else raft_large)(weights=None)
        net.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
        _RAFT_CACHE[key] = net.eval()
    return _RAFT_CACHE[key]


@torch.no_grad()
def _raft_flow(
    model: str, frame_a: torch.Tensor, frame_b: torch.Tensor, weights: str | Path | None
) -> torch.Tensor:
    """RAFT flow from b to a on b's grid (b(p) = a(p + f(p))), (2,H,W).

    Pads (replicate) H and W up to multiples of 8 and at least 128: RAFT downsamples by 8 and its
    4-level correlation pyramid needs feature maps of at least 16x16.
    """
    net = load_raft(model, weights)
    device = next(net.parameters()).device
    _, h, w = frame_a.shape
    pad = (0, max(128, w + -w % 8) - w, 0, max(128, h + -h % 8) - h)
    a = F.pad(frame_a[None].float().to(device), pad, mode="replicate")
    b = F.pad(frame_b[None].float().to(device), pad, mode="replicate")
    f = net(b, a)[-1]  # (1, 2, H', W'), last refinement
    return f[0, :, :h, :w].cpu()


# ----------------------------------------------------------------------------- registry


@dataclass(frozen=True)
class Method:
    """A row of Table 1: `name` is ours, `paper_row` the row's name in `cgm.paper` (None: not in the paper)."""

    name: str
    label: str
    package: str
    paper_table: str
    paper_row: str | None


FLOW_METHODS: dict[str, Method] = {
    m.name: m
    for m in (
        Method("dis_fast", "DIS-Fast", "opencv", "table1_motion", "DIS-Fast"),
        Method("deepflow", "DeepFlow", "opencv-contrib", "table1_motion", "DeepFlow"),
        Method("tvl1", "TV-L1", "opencv-contrib", "table1_motion", "TV-L1"),
        Method("raft_small", "RAFT-small", "torchvision (local weights)", "table1_motion", None),
        Method("raft_large", "RAFT-large", "torchvision (local weights)", "table1_motion", None),
    )
}

PREDICTION_METHODS: dict[str, Method] = {
    m.name: m
    for m in (
        Method("repeat_last", "Repeat last frame", "-", "table1_prediction", None),
        Method(
            "constant_velocity_tvl1", "Constant velocity (TV-L1)", "opencv-contrib", "table1_prediction", None
        ),
    )
}

# No maintained package: the notebooks show the paper's numbers, labeled as quoted from the paper.
PAPER_ONLY_METHODS: dict[str, Method] = {
    m.name: m
    for m in (
        Method("flownet2", "FlowNet2.0", "none maintained", "table1_motion", "FlowNet2.0"),
        Method("pwcnet", "PWC-Net", "none maintained", "table1_motion", "PWC-Net"),
        Method("tvnet", "TV-Net-50", "none maintained", "table1_motion", "TV-Net-50"),
        Method("beyondmse", "BeyondMSE", "none maintained", "table1_prediction", "BeyondMSE"),
        Method("contextvp", "ContextVP", "none maintained", "table1_prediction", "ContextVP"),
        Method("mcnet_res", "MCnet+RES", "none maintained", "table1_prediction", "MCnet+RES"),
        Method("epicflow", "EpicFlow", "none maintained", "table1_prediction", "EpicFlow"),
        Method("dvf", "DVF", "none maintained", "table1_prediction", "DVF"),
    )
}


def _check_pair(frame_a: torch.Tensor, frame_b: torch.Tensor) -> None:
    if frame_a.dim() != 3 or frame_a.shape[0] != 3 or frame_a.shape != frame_b.shape:
        raise ValueError(
            f"expected two (3,H,W) frames of the same shape, got {tuple(frame_a.shape)} "
            f"and {tuple(frame_b.shape)}"
        )


def flow_between(
    method: str, frame_a: torch.Tensor, frame_b: torch.Tensor, *, weights: str | Path | None = None
) -> torch.Tensor:
    """Flow `(2,H,W)` (float32, x first) with `frame_b(p) ≈ frame_a(p - flow(p))`, by `method`.

    Frames are `(3,H,W)` in [-1,1]. `backward_warp(frame_a[None], flow[None])` predicts frame_b.
    `weights`: RAFT only, a local weights file (default `raft_weights_path(method)`).
    """
    if method not in FLOW_METHODS:
        raise ValueError(
            f"unknown flow method {method!r}; expected one of {list(FLOW_METHODS)} "
            f"(paper-only methods {list(PAPER_ONLY_METHODS)} have no implementation here)"
        )
    _check_pair(frame_a, frame_b)
    if method in _OPENCV:
        f = _OPENCV[method](to_gray_uint8(frame_b), to_gray_uint8(frame_a))  # (H, W, 2), b(p) = a(p + f)
        f = torch.from_numpy(np.ascontiguousarray(f)).permute(2, 0, 1)  # (2, H, W)
    else:
        f = _raft_flow(method, frame_a, frame_b, weights)
    return -f.float()


# ----------------------------------------------------------------------------- frame prediction


def predict_next(method: str, clip: torch.Tensor) -> torch.Tensor:
    """Predict the frame after `clip` `(3,T,H,W)` in [-1,1]; returns `(3,H,W)`.

    `repeat_last`: the last frame. `constant_velocity_tvl1`: TV-L1 flow between the last two
    frames, applied once more to the last frame (the flow field is reused at the same pixels, the
    usual first-order extrapolation; it needs T >= 2).
    """
    if method not in PREDICTION_METHODS:
        raise ValueError(f"unknown prediction method {method!r}; expected one of {list(PREDICTION_METHODS)}")
    if clip.dim() != 4 or clip.shape[0] != 3:
        raise ValueError(f"predict_next: expected a clip (3,T,H,W), got {tuple(clip.shape)}")
    last = clip[:, -1]
    if method == "repeat_last":
        return last.clone()
    if clip.shape[1] < 2:
        raise ValueError(f"predict_next({method!r}) needs at least 2 frames, got T={clip.shape[1]}")
    flow = flow_between("tvl1", clip[:, -2], last)
    return backward_warp(last[None].float(), flow[None])[0].to(clip.dtype)


# ----------------------------------------------------------------------------- Table 1 protocol
#
# Every method sees the same clips. A clip is (3, T+1, H, W): frames 0..T-1 are the input (what
# CGM-Net sees); motion is scored on the consecutive input pairs (t, t+1), t = 0..T-2, and 1-step
# prediction on the unseen frame T predicted from frames 0..T-1.

# clip (3,T,H,W) -> (reconstructions of frames 1..T-1 (T-1,3,H,W), flows (T-1,2,H,W) or None)
MotionFn = Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor | None]]
# clip (3,T,H,W) -> the frame after it (3,H,W)
PredictFn = Callable[[torch.Tensor], torch.Tensor]


def flow_motion(method: str, *, weights: str | Path | None = None) -> MotionFn:
    """A flow method as a `MotionFn`: flow of each consecutive pair, frame t backward-warped to t+1."""
    if method not in FLOW_METHODS:
        raise ValueError(f"unknown flow method {method!r}; expected one of {list(FLOW_METHODS)}")

    def motion(clip: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        flows = torch.stack(
            [
                flow_between(method, clip[:, t], clip[:, t + 1], weights=weights)
                for t in range(clip.shape[1] - 1)
            ]
        )  # (T-1, 2, H, W)
        frames = clip[:, :-1].transpose(0, 1).float()  # (T-1, 3, H, W)
        return backward_warp(frames, flows), flows

    return motion


def no_motion(clip: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The zero-motion reference as a `MotionFn`: frame t stands for frame t+1 (flow 0)."""
    _, t, h, w = clip.shape
    return clip[:, :-1].transpose(0, 1).float(), torch.zeros(t - 1, 2, h, w)


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
    from cgm.data.registry import LAYOUTS

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
    from cgm.data import build_dataset

    if dataset not in TABLE1_DATA:
        raise ValueError(f"dataset must be one of {list(TABLE1_DATA)}, got {dataset!r}")
    if kind not in ("motion", "prediction"):
        raise ValueError(f"kind must be 'motion' or 'prediction', got {kind!r}")
    name = TABLE1_DATA[dataset][kind == "prediction"]
    kw = dict(data_root=data_root, clip_len=clip_len, size=size, future=True)
    if dataset == "ucf101" and size > 128:
        kw["resize"] = size  # short side to 256, centre crop 256x256
    return evaluation_clips(build_dataset(name, "test", **kw), max_pairs=max_pairs)


def raft_status(method: str, raft_weights: str | Path | None = None) -> Path | str:
    """The RAFT weights file to use for `method` (a folder or file the user gave, else the default
    path), or a string saying why the RAFT row is not run."""
    path = Path(raft_weights) if raft_weights else raft_weights_path(method)
    if path.is_dir():
        path = path / raft_weights_path(method).name
    return path if path.is_file() else f"not run: no weights file {path.name}"


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
    from cgm.warp import adaptive_warp, motion_to_flow

    model.eval()

    @torch.no_grad()
    def motion(clip: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        maps = _cgm_maps(model, clip)[:-1]  # (T-1, K*K, H, W)
        frames = clip[:, :-1].transpose(0, 1).float()  # (T-1, 3, H, W)
        return adaptive_warp(frames, maps, padding=model.cfg.padding), motion_to_flow(maps)

    return motion


def cgm_prediction(model: torch.nn.Module) -> PredictFn:
    """CGM-Net as a `PredictFn`: the last map applied to the last input frame."""
    from cgm.warp import adaptive_warp

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
    from cgm.evaluate import epe

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
    from cgm.metrics import PSNR_CAP, psnr, ssim

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
_OURS = "cgm"
_NO_MOTION = "no_motion"
_PAPER_DATA = {"table1_motion": "UCF-Flow (paper)", "table1_prediction": "UCF-Pred (paper)"}
_ORACLE = "tap_oracle"
_BLOCK_MATCHING = "block_matching"
_LABELS = {
    _BLOCK_MATCHING: "Soft block matching (3x3 patches, 9x9 taps; no learning)",
    _OURS: "CGM-Net (ours)",
    _NO_MOTION: "No motion (frame t as t+1)",
    _ORACLE: "Tap oracle (best single tap of 9x9; sees t+1's pixels)",
}


def method_label(method: str) -> str:
    for registry in (FLOW_METHODS, PREDICTION_METHODS, PAPER_ONLY_METHODS):
        if method in registry:
            return registry[method].label
    if method not in _LABELS:
        raise ValueError(f"unknown Table 1 method {method!r}")
    return _LABELS[method]


def _paper_row(table: str, method: str, resolution: int) -> str | None:
    if method == _OURS:
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
    soft block matching (when scored);
    the flow methods' order against the paper's; 1-step prediction against repeating the frame."""
    from cgm.paper import TABLE1_MOTION_ROWS, paper_value

    methods = ("cgm", _NO_MOTION, "tvl1", "dis_fast", "deepflow", _ORACLE, _BLOCK_MATCHING)
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
            f"{l1[_ORACLE]:.4f} = {l1[_ORACLE] / l1['tvl1']:.2f} x TV-L1: the room a 9x9 motion "
            f"map has; CGM-Net uses {(l1[_NO_MOTION] - l1['cgm']) / (l1[_NO_MOTION] - l1[_ORACLE]):.0%} "
            f"of the way from copy to the oracle."
        )
    if np.isfinite(l1[_BLOCK_MATCHING]):
        gain = 1 - l1["cgm"] / l1[_BLOCK_MATCHING]
        lines.append(
            f"Soft block matching alone (no learning; CGM-Net's matching cue before training) reaches "
            f"{l1[_BLOCK_MATCHING]:.4f} = {l1[_BLOCK_MATCHING] / l1['tvl1']:.2f} x TV-L1; CGM-Net is "
            f"{abs(gain):.0%} {'below' if gain > 0 else 'above'} it"
            + (": what training adds." if gain > 0 else ": training did not improve on its own prior.")
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
    import cv2
    from skimage import data

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
    from cgm.metrics import epe

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
