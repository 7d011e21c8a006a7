"""The multi-task loss of §3.5 (Eqs. 6-7): L = L_HR + lambda_lr * L_LR + lambda_cls * L_c.

L_HR: Charbonnier penalty of warp(X_t, M_HR_t) - X_{t+1}, t = 0..T-1, at full resolution.
L_LR: the same at 1/r with area-downsampled frames and M_LR (the intermediate supervision).
L_c: the sum of the cross-entropies of the enabled heads (backbone, lr, hr).

Reduction: a mean over pixels, channels and frames where Eq. 6 writes a sum, so that the lambdas
do not depend on resolution or clip length (L_LR has r^2 fewer terms than L_HR) — see
docs/assumptions.md.

Regularisers that are not the paper's (each off at weight 0; measured in docs/training.md, "Motion
maps that are motion"): `smoothness` (edge-aware first-order smoothness of the maps' flow,
`motion_to_flow`, at both scales), `compactness` (each filter's spread around its own mean
displacement, so that the mean is the motion) and `census` (a soft census transform of the HR
reconstruction against the target: a photometric term robust to brightness changes).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from cgm.warp import _tap_offsets, adaptive_warp, motion_to_flow

CHARBONNIER_EPS = 1e-6  # §3.5
WEIGHTINGS = ("uniform", "motion")
# Motion weighting: w = mean_c |X_{t+1} - X_t| + MOTION_WEIGHT_FLOOR (frames in [-1, 1]), so static
# pixels still count a little (docs/training.md, "Natural footage").
MOTION_WEIGHT_FLOOR = 0.01
# Edge-aware smoothness: a flow gradient counts exp(-EDGE_SCALE * mean_c |image gradient|) (frames
# in [-1, 1]; 5 here is UnFlow's / Monodepth's 10 on [0, 1] frames).
EDGE_SCALE = 5.0
CENSUS_PATCH = 7  # the census window (UnFlow's)


def charbonnier(x: torch.Tensor, eps: float = CHARBONNIER_EPS) -> torch.Tensor:
    """Elementwise sqrt(x^2 + eps^2), the robust penalty rho of Eq. 6."""
    return torch.sqrt(x * x + eps * eps)


def photometric_loss(
    pred: torch.Tensor, targets: torch.Tensor, frames: torch.Tensor, weighting: str = "uniform"
) -> torch.Tensor:
    """Charbonnier of pred - targets, averaged over pixels: uniformly (Eq. 6, the paper's), or
    weighted per pixel by how much it changes between frames (`"motion"`: mean_c |targets - frames|
    + MOTION_WEIGHT_FLOOR). On natural video most pixels do not move; uniformly weighted, they make
    copying the previous frame a deep local minimum (docs/training.md). All (B, C, T, H, W)."""
    if weighting not in WEIGHTINGS:
        raise ValueError(f"unknown weighting {weighting!r}; valid: {WEIGHTINGS}")
    err = charbonnier(pred - targets)
    if weighting == "uniform":
        return err.mean()
    w = (targets - frames).abs().mean(dim=1, keepdim=True) + MOTION_WEIGHT_FLOOR  # (B, 1, T, H, W)
    return (err * w).sum() / (w.sum() * err.shape[1])


def edge_aware_smoothness(flow: torch.Tensor, image: torch.Tensor) -> torch.Tensor:
    """Mean |first differences| of `flow` (N, 2, H, W; px), each weighted by
    exp(-EDGE_SCALE * mean_c |difference of image|) (image (N, C, H, W)): flat where the scene is
    flat, free to jump at edges."""
    if flow.ndim != 4 or flow.shape[1] != 2 or image.ndim != 4 or image.shape[-2:] != flow.shape[-2:]:
        raise ValueError(
            f"expected flow (N, 2, H, W) and image (N, C, H, W) of one size, got "
            f"{tuple(flow.shape)} and {tuple(image.shape)}"
        )
    wx = torch.exp(
        -EDGE_SCALE * (image[..., 1:] - image[..., :-1]).abs().mean(1, keepdim=True)
    )  # (N,1,H,W-1)
    wy = torch.exp(-EDGE_SCALE * (image[..., 1:, :] - image[..., :-1, :]).abs().mean(1, keepdim=True))
    gx = (flow[..., 1:] - flow[..., :-1]).abs()  # (N, 2, H, W-1)
    gy = (flow[..., 1:, :] - flow[..., :-1, :]).abs()  # (N, 2, H-1, W)
    return 0.5 * ((gx * wx).mean() + (gy * wy).mean())


def filter_spread(maps: torch.Tensor) -> torch.Tensor:
    """Mean over pixels of sum_i m_i |d_i - mu|^2 (px^2), mu = sum_i m_i d_i the filter's mean
    displacement: 0 for a one-hot or a one-pixel bilinear filter, large for a filter that spreads
    its weight over distant taps. maps (N, K*K, H, W) normalised filters."""
    k = round(maps.shape[1] ** 0.5)
    dx, dy = _tap_offsets(k, dtype=maps.dtype, device=maps.device)  # (K*K,) each
    second = torch.einsum("nihw,i->nhw", maps, dx * dx + dy * dy)  # E|d|^2, (N, H, W)
    mu = motion_to_flow(maps)  # (N, 2, H, W)
    return (second - mu.pow(2).sum(1)).clamp_min(0).mean()  # Var = E|d|^2 - |E d|^2


def census_loss(pred: torch.Tensor, target: torch.Tensor, patch: int = CENSUS_PATCH) -> torch.Tensor:
    """Soft census distance of pred and target (N, C, H, W in [-1, 1]) over a patch x patch window
    (UnFlow, Meister et al. 2018): per neighbour, d / sqrt(0.81 + d^2) of the grey-level difference
    to the centre; the robust (0.1 / (0.1 + ...)) Hamming-like distance of the two, averaged."""

    def transform(img):
        grey = img.mean(1, keepdim=True) * 127.5  # (N, 1, H, W), 0-255 range like UnFlow's
        r = patch // 2
        padded = F.pad(grey, (r, r, r, r), mode="replicate")
        h, w = grey.shape[-2:]
        d = torch.cat(
            [padded[..., i : i + h, j : j + w] - grey for i in range(patch) for j in range(patch)], dim=1
        )  # (N, patch*patch, H, W)
        return d / torch.sqrt(0.81 + d * d)

    dist = (transform(pred) - transform(target)).pow(2)
    return (dist / (0.1 + dist)).mean()


def warp_frames(frames: torch.Tensor, maps: torch.Tensor, padding: str = "border") -> torch.Tensor:
    """Eq. 1 on each frame: frames (B,C,T,H,W), maps (B,T,K*K,H,W) -> predictions (B,C,T,H,W)."""
    if frames.ndim != 5 or maps.ndim != 5:
        raise ValueError(
            f"expected frames (B,C,T,H,W) and maps (B,T,K*K,H,W), got "
            f"{tuple(frames.shape)} and {tuple(maps.shape)}"
        )
    b, c, t, h, w = frames.shape
    if maps.shape[:2] != (b, t) or maps.shape[3:] != (h, w):
        raise ValueError(
            f"maps {tuple(maps.shape)} do not match frames {tuple(frames.shape)}: "
            f"expected (B={b}, T={t}, K*K, H={h}, W={w})"
        )
    x = frames.transpose(1, 2).flatten(0, 1)  # (B*T, C, H, W)
    out = adaptive_warp(x, maps.flatten(0, 1), padding=padding)  # (B*T, C, H, W)
    return out.view(b, t, c, h, w).transpose(1, 2)  # (B, C, T, H, W)


def reconstruction_loss(
    frames: torch.Tensor, maps: torch.Tensor, targets: torch.Tensor, padding: str = "border"
) -> torch.Tensor:
    """Mean Charbonnier of warp(frames, maps) - targets; frames/targets (B,C,T,H,W)."""
    if targets.shape != frames.shape:
        raise ValueError(f"targets {tuple(targets.shape)} must match frames {tuple(frames.shape)}")
    return charbonnier(warp_frames(frames, maps, padding) - targets).mean()


def _downsample(video: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Area-downsample (B,C,T,H,W) frames to (B,C,T,h,w)."""
    b, c, t = video.shape[:3]
    x = F.interpolate(video.transpose(1, 2).flatten(0, 1), size=size, mode="area")  # (B*T, C, h, w)
    return x.view(b, t, c, *size).transpose(1, 2)


def cgm_loss(
    out,
    clip: torch.Tensor,
    labels: torch.Tensor | None = None,
    *,
    lambda_lr: float = 1.0,
    lambda_cls: float = 0.0,
    padding: str = "border",
    weighting: str = "uniform",
    smoothness: float = 0.0,
    compactness: float = 0.0,
    census: float = 0.0,
) -> tuple[torch.Tensor, dict[str, float]]:
    """Eq. 7 on a CGMOutput. clip (B,3,T+1,H,W): frames 0..T-1 went into the network, 1..T are targets.
    `weighting` of both reconstruction terms: "uniform" (the paper's) or "motion" (photometric_loss).
    The regularisers of the module docstring are added with weights `smoothness` (on the HR
    maps' flow against frame t+1, plus lambda_lr times the same on the LR maps), `compactness`
    (filter_spread of the HR maps) and `census` (census_loss of the HR reconstruction).

    metrics (python floats): loss, l_hr, l_lr, l_cls (0 without labels), l1_hr (plain l1 of the HR
    reconstruction). With lambda_cls == 0 the cross-entropy is reported but not in the loss.
    """
    if lambda_lr < 0 or lambda_cls < 0:
        raise ValueError(f"lambdas must be >= 0, got lambda_lr={lambda_lr}, lambda_cls={lambda_cls}")
    if min(smoothness, compactness, census) < 0:
        raise ValueError(
            f"regulariser weights must be >= 0, got smoothness={smoothness}, compactness={compactness}, "
            f"census={census}"
        )
    b, t = out.hr_maps.shape[:2]
    if clip.ndim != 5 or clip.shape[0] != b or clip.shape[2] != t + 1:
        raise ValueError(
            f"clip must be (B={b}, 3, T+1={t + 1}, H, W) for maps of {t} frames, got {tuple(clip.shape)}"
        )
    if lambda_cls > 0 and labels is None:
        raise ValueError("lambda_cls > 0 needs labels")
    if labels is not None and tuple(labels.shape) != (b,):
        raise ValueError(f"labels must be (B={b},) class indices, got {tuple(labels.shape)}")
    frames, targets = clip[:, :, :t], clip[:, :, 1:]  # (B, 3, T, H, W) each
    pred = warp_frames(frames, out.hr_maps, padding)
    l_hr = photometric_loss(pred, targets, frames, weighting)
    lr_size = tuple(out.lr_maps.shape[-2:])
    frames_lr, targets_lr = _downsample(frames, lr_size), _downsample(targets, lr_size)
    l_lr = photometric_loss(warp_frames(frames_lr, out.lr_maps, padding), targets_lr, frames_lr, weighting)
    loss = l_hr + lambda_lr * l_lr
    extra = {}
    if smoothness > 0 or compactness > 0 or census > 0:
        hr = out.hr_maps.flatten(0, 1)  # (B*T, K*K, H, W)
        nxt = targets.transpose(1, 2).flatten(0, 1)  # (B*T, 3, H, W): map t lives on frame t+1's grid
    if smoothness > 0:
        nxt_lr = targets_lr.transpose(1, 2).flatten(0, 1)  # (B*T, 3, h, w)
        scale = hr.shape[-1] // out.lr_maps.shape[-1]
        extra["l_smooth"] = edge_aware_smoothness(
            motion_to_flow(hr), nxt
        ) + lambda_lr * edge_aware_smoothness(motion_to_flow(out.lr_maps.flatten(0, 1)) * scale, nxt_lr)
        loss = loss + smoothness * extra["l_smooth"]
    if compactness > 0:
        extra["l_spread"] = filter_spread(hr)
        loss = loss + compactness * extra["l_spread"]
    if census > 0:
        extra["l_census"] = census_loss(pred.transpose(1, 2).flatten(0, 1), nxt)
        loss = loss + census * extra["l_census"]
    l_cls = torch.zeros((), device=clip.device)
    if labels is not None and out.logits:
        l_cls = sum(F.cross_entropy(logits, labels) for logits in out.logits.values())
        if lambda_cls > 0:
            loss = loss + lambda_cls * l_cls
    metrics = {
        "loss": loss.item(),
        "l_hr": l_hr.item(),
        "l_lr": l_lr.item(),
        "l_cls": float(l_cls.detach()),
        "l1_hr": (pred - targets).abs().mean().item(),
        **{k: v.item() for k, v in extra.items()},
    }
    return loss, metrics
