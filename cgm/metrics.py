"""Metrics of the paper's protocols (§4.1, §4.2), as pure functions on tensors (the protocols
that run a model over a dataset live in `cgm.protocols`).

- Table 1 (left), Table 6: `warp_l1`, the ℓ1 error of the warped frame, frames in [-1, 1].
- Table 1 (right): `psnr` and `ssim` of 1-step predicted frames (frames in [-1, 1], data range 2).
- Embedded data with ground-truth flow: `epe`, the end-point error.
- Action recognition: `average_views` over clips x crops, `topk_accuracy` in percent,
  `split_mean` over the three splits of UCF101 / HMDB51.

Frames are `(..., C, H, W)`; all leading dimensions are images. Nothing here keeps gradients.
"""

from __future__ import annotations

import math
from typing import Literal

import torch
import torch.nn.functional as F

Reduction = Literal["mean", "none"]


def _check_pair(name: str, pred: torch.Tensor, target: torch.Tensor, min_dim: int) -> None:
    if pred.shape != target.shape:
        raise ValueError(
            f"{name}: pred {tuple(pred.shape)} and target {tuple(target.shape)} must have the same shape"
        )
    if pred.dim() < min_dim:
        raise ValueError(f"{name}: expected at least {min_dim} dims (..., C, H, W), got {tuple(pred.shape)}")
    if pred.numel() == 0:
        raise ValueError(f"{name}: empty input {tuple(pred.shape)}")


def _reduce(per_image: torch.Tensor, reduction: Reduction) -> float | torch.Tensor:
    if reduction == "mean":
        return per_image.mean().item()
    if reduction == "none":
        return per_image
    raise ValueError(f"reduction must be 'mean' or 'none', got {reduction!r}")


# ----------------------------------------------------------------------------- reconstruction


@torch.no_grad()
def warp_l1(pred: torch.Tensor, target: torch.Tensor) -> float:
    """Mean absolute error over all elements; frames in [-1, 1] (the paper's ℓ1 Err)."""
    _check_pair("warp_l1", pred, target, min_dim=1)
    return (pred.double() - target.double()).abs().mean().item()


# Video evaluation caps each image's PSNR here: a held frame (an animation repeating a frame, a
# static camera) makes "repeat the last frame" exact, and one +inf would make the mean infinite.
PSNR_CAP = 100.0


@torch.no_grad()
def psnr(
    pred: torch.Tensor,
    target: torch.Tensor,
    data_range: float = 2.0,
    *,
    reduction: Reduction = "mean",
    max_db: float = math.inf,
) -> float | torch.Tensor:
    """PSNR in dB of each image `(C, H, W)`, then averaged over images (not PSNR of the mean MSE).

    `data_range` = max - min of the frame values: 2.0 for frames in [-1, 1]. A perfect image
    gives +inf, or `max_db` (PSNR_CAP in the evaluation protocols). `reduction="none"` returns
    the per-image values, shape `pred.shape[:-3]`.
    """
    _check_pair("psnr", pred, target, min_dim=3)
    if data_range <= 0:
        raise ValueError(f"psnr: data_range must be positive, got {data_range}")
    mse = (pred.double() - target.double()).pow(2).flatten(-3).mean(-1)  # (...,)
    per_image = (10.0 * torch.log10(data_range**2 / mse)).clamp(max=max_db)
    return _reduce(per_image, reduction)


def _gaussian_window(win_size: int, sigma: float, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """1-D Gaussian, normalized over its taps (as scipy.ndimage.gaussian_filter's kernel)."""
    x = torch.arange(win_size, dtype=dtype, device=device) - (win_size - 1) / 2
    g = torch.exp(-0.5 * (x / sigma) ** 2)
    return g / g.sum()


def _filter_valid(x: torch.Tensor, window: torch.Tensor) -> torch.Tensor:
    """Separable Gaussian filter of `(N, 1, H, W)`, valid region only (no padding)."""
    k = window.numel()
    x = F.conv2d(x, window.view(1, 1, k, 1))  # (N, 1, H-k+1, W)
    return F.conv2d(x, window.view(1, 1, 1, k))  # (N, 1, H-k+1, W-k+1)


@torch.no_grad()
def ssim(
    pred: torch.Tensor,
    target: torch.Tensor,
    data_range: float = 2.0,
    *,
    sigma: float = 1.5,
    win_size: int = 11,
    k1: float = 0.01,
    k2: float = 0.03,
    reduction: Reduction = "mean",
) -> float | torch.Tensor:
    """SSIM (Wang et al. 2004) of each image `(C, H, W)`, then averaged over images.

    11x11 Gaussian window, sigma 1.5, K1 = 0.01, K2 = 0.03, population (not sample) covariance;
    computed per channel and averaged over channels, over the valid region where the window fits
    inside the image. This is what `skimage.metrics.structural_similarity(..., data_range=2,
    channel_axis=0, gaussian_weights=True, sigma=1.5, use_sample_covariance=False)` returns:
    skimage filters with reflect padding, then crops (win_size - 1) // 2 pixels at each border
    before averaging, which removes exactly the padded part of an 11-tap window.
    Computed in float64 because the variances are differences of nearly equal means.
    """
    _check_pair("ssim", pred, target, min_dim=3)
    if win_size % 2 != 1:
        raise ValueError(f"ssim: win_size must be odd, got {win_size}")
    height, width = pred.shape[-2:]
    if height < win_size or width < win_size:
        raise ValueError(f"ssim: images must be at least {win_size}x{win_size}, got {height}x{width}")
    lead, channels = pred.shape[:-3], pred.shape[-3]
    x = pred.double().reshape(-1, 1, height, width)  # (N*C, 1, H, W)
    y = target.double().reshape(-1, 1, height, width)
    window = _gaussian_window(win_size, sigma, x.dtype, x.device)

    mu_x, mu_y = _filter_valid(x, window), _filter_valid(y, window)
    var_x = _filter_valid(x * x, window) - mu_x**2
    var_y = _filter_valid(y * y, window) - mu_y**2
    cov_xy = _filter_valid(x * y, window) - mu_x * mu_y
    c1, c2 = (k1 * data_range) ** 2, (k2 * data_range) ** 2
    ssim_map = ((2 * mu_x * mu_y + c1) * (2 * cov_xy + c2)) / (
        (mu_x**2 + mu_y**2 + c1) * (var_x + var_y + c2)
    )

    per_channel = ssim_map.flatten(1).mean(1)  # (N*C,)
    per_image = per_channel.view(*lead, channels).mean(-1)  # (...,)
    return _reduce(per_image, reduction)


# ----------------------------------------------------------------------------- flow


@torch.no_grad()
def epe(flow: torch.Tensor, gt: torch.Tensor, mask: torch.Tensor | None = None) -> float:
    """Mean end-point error ||flow - gt||_2 over the pixels where `mask` is true.

    `flow`, `gt`: `(..., 2, H, W)`; `mask`: bool, `(..., H, W)` or `(..., 1, H, W)`, e.g. the
    complement of the occlusion mask. Without a mask, all pixels count.
    """
    _check_pair("epe", flow, gt, min_dim=3)
    if flow.shape[-3] != 2:
        raise ValueError(f"epe: flow must be (..., 2, H, W), got {tuple(flow.shape)}")
    error = (flow.double() - gt.double()).pow(2).sum(-3).sqrt()  # (..., H, W)
    if mask is None:
        return error.mean().item()
    if mask.dtype != torch.bool:
        raise ValueError(f"epe: mask must be bool, got {mask.dtype}")
    if mask.dim() == error.dim() + 1 and mask.shape[-3] == 1:
        mask = mask.squeeze(-3)
    if mask.shape != error.shape:
        raise ValueError(
            f"epe: mask {tuple(mask.shape)} must be {tuple(error.shape)} or with a channel dim of 1"
        )
    if not mask.any():
        raise ValueError("epe: mask selects no pixels")
    return error[mask].mean().item()


OUTLIER_PX = 3.0  # an end-point error above this many pixels counts as an outlier


@torch.no_grad()
def outlier_rate(
    flow: torch.Tensor, gt: torch.Tensor, mask: torch.Tensor | None = None, px: float = OUTLIER_PX
) -> float:
    """Share of the pixels where `mask` is true whose end-point error exceeds `px` (shapes as `epe`)."""
    _check_pair("outlier_rate", flow, gt, min_dim=3)
    if flow.shape[-3] != 2:
        raise ValueError(f"outlier_rate: flow must be (..., 2, H, W), got {tuple(flow.shape)}")
    bad = ((flow.double() - gt.double()).pow(2).sum(-3).sqrt() > px).double()  # (..., H, W)
    if mask is None:
        return bad.mean().item()
    if mask.dim() == bad.dim() + 1 and mask.shape[-3] == 1:
        mask = mask.squeeze(-3)
    if mask.dtype != torch.bool or mask.shape != bad.shape or not mask.any():
        raise ValueError(f"outlier_rate: mask must be bool {tuple(bad.shape)} selecting some pixels")
    return bad[mask].mean().item()


# ----------------------------------------------------------------------------- classification


@torch.no_grad()
def average_views(scores: torch.Tensor, views: int) -> torch.Tensor:
    """Average class probabilities over the V test views (clips x crops) of each video.

    `scores`: probabilities, `(B*V, K)` with the V views of a video in consecutive rows (as
    flattening `(B, V, ...)` gives) or `(B, V, K)`; returns `(B, K)`. Probabilities, not logits:
    averaging logits would weight views by their confidence scale. `cgm.network.fuse` returns
    probabilities; apply `softmax(-1)` to raw logits first. Rows not summing to 1 raise.
    """
    if views < 1:
        raise ValueError(f"average_views: views must be >= 1, got {views}")
    if scores.dim() == 2:
        if scores.shape[0] % views != 0:
            raise ValueError(f"average_views: {scores.shape[0]} rows are not a multiple of views={views}")
        scores = scores.view(-1, views, scores.shape[-1])  # (B, V, K)
    elif scores.dim() != 3 or scores.shape[1] != views:
        raise ValueError(f"average_views: expected (B*V, K) or (B, V={views}, K), got {tuple(scores.shape)}")
    sums = scores.sum(-1)
    if scores.min() < 0 or not torch.allclose(sums, torch.ones_like(sums), atol=1e-3):
        raise ValueError(
            "average_views: scores must be probabilities (rows >= 0 summing to 1); "
            "apply softmax(-1) to logits first"
        )
    return scores.mean(1)


@torch.no_grad()
def topk_accuracy(
    scores: torch.Tensor, labels: torch.Tensor, ks: tuple[int, ...] = (1, 5)
) -> dict[str, float]:
    """Top-k accuracy in percent for each k: `{"top1": 87.5, "top5": 100.0}`.

    `scores`: `(B, K)` logits or probabilities (only the order matters); `labels`: `(B,)` ints.
    """
    if scores.dim() != 2:
        raise ValueError(f"topk_accuracy: scores must be (B, K), got {tuple(scores.shape)}")
    if labels.shape != scores.shape[:1] or labels.dtype.is_floating_point:
        raise ValueError(
            f"topk_accuracy: labels must be integer (B,) = ({scores.shape[0]},), "
            f"got {labels.dtype} {tuple(labels.shape)}"
        )
    num_classes = scores.shape[1]
    if any(k < 1 or k > num_classes for k in ks):
        raise ValueError(f"topk_accuracy: every k must be in 1..{num_classes}, got {ks}")
    if labels.numel() and (labels.min() < 0 or labels.max() >= num_classes):
        raise ValueError(f"topk_accuracy: labels must be in 0..{num_classes - 1}")
    if scores.shape[0] == 0:
        raise ValueError("topk_accuracy: empty batch")
    top = scores.topk(max(ks), dim=1).indices  # (B, max k)
    hit = top == labels[:, None]  # (B, max k), at most one True per row
    return {f"top{k}": 100.0 * hit[:, :k].any(1).double().mean().item() for k in ks}


def split_mean(results: dict[int, float]) -> float:
    """Mean over the three official splits of UCF101 / HMDB51; `results` = {1: acc, 2: acc, 3: acc}."""
    if sorted(results) != [1, 2, 3]:
        raise ValueError(f"split_mean: expected results for splits 1, 2 and 3, got {sorted(results)}")
    return sum(float(results[s]) for s in (1, 2, 3)) / 3
