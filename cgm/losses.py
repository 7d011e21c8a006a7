"""The multi-task loss of §3.5 (Eqs. 6-7): L = L_HR + lambda_lr * L_LR + lambda_cls * L_c.

L_HR: Charbonnier penalty of warp(X_t, M_HR_t) - X_{t+1}, t = 0..T-1, at full resolution.
L_LR: the same at 1/r with area-downsampled frames and M_LR (the intermediate supervision).
L_c: the sum of the cross-entropies of the enabled heads (backbone, lr, hr).

Reduction: a mean over pixels, channels and frames where Eq. 6 writes a sum, so that the lambdas
do not depend on resolution or clip length (L_LR has r^2 fewer terms than L_HR) — see
docs/assumptions.md.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from cgm.warp import adaptive_warp

CHARBONNIER_EPS = 1e-6  # §3.5
WEIGHTINGS = ("uniform", "motion")
# Motion weighting: w = mean_c |X_{t+1} - X_t| + MOTION_WEIGHT_FLOOR (frames in [-1, 1]), so static
# pixels still count a little (docs/training.md, "Natural footage").
MOTION_WEIGHT_FLOOR = 0.01


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
) -> tuple[torch.Tensor, dict[str, float]]:
    """Eq. 7 on a CGMOutput. clip (B,3,T+1,H,W): frames 0..T-1 went into the network, 1..T are targets.
    `weighting` of both reconstruction terms: "uniform" (the paper's) or "motion" (photometric_loss).

    metrics (python floats): loss, l_hr, l_lr, l_cls (0 without labels), l1_hr (plain l1 of the HR
    reconstruction). With lambda_cls == 0 the cross-entropy is reported but not in the loss.
    """
    if lambda_lr < 0 or lambda_cls < 0:
        raise ValueError(f"lambdas must be >= 0, got lambda_lr={lambda_lr}, lambda_cls={lambda_cls}")
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
    }
    return loss, metrics
