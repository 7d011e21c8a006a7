"""Optical-flow and frame-prediction baselines of Table 1, from maintained libraries (scored by
`cgm.motion_table`).

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

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from cgm import settings

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
    return settings.read().weights_dir / _RAFT_URLS[model].rsplit("/", 1)[1]


_RAFT_CACHE: dict[tuple[str, str], torch.nn.Module] = {}


def load_raft(model: str = "raft_small", weights: str | Path | None = None) -> torch.nn.Module:
    """torchvision's RAFT with weights from a local file (torch.load(weights_only=True)); never downloads."""
    from torchvision.models.optical_flow import raft_large, raft_small  # heavy: only RAFT rows need it

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


def raft_status(method: str, raft_weights: str | Path | None = None) -> Path | str:
    """The RAFT weights file to use for `method` (a folder or file the user gave, else the default
    path), or a string saying why the RAFT row is not run."""
    path = Path(raft_weights) if raft_weights else raft_weights_path(method)
    if path.is_dir():
        path = path / raft_weights_path(method).name
    return path if path.is_file() else f"not run: no weights file {path.name}"
