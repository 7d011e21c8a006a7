"""Eqs. 2-5: the Context Guided Motion Upsampling Layer (CGMUL), and the §4.3 baselines.

CGMUL turns a low-resolution motion map M_LR (N, k*k, h, w) into a high-resolution one
M_HR (N, k_hr*k_hr, scale*h, scale*w), guided by per-frame context features F_context and the
decoder's motion features F_motion (both (N, C, h, w)):

    S           = (1/C) sum_c F_motion * warp(F_context, M_LR)           (Eq. 2, Eq. 1 on features)
    F'_context  = S * F_context,   F'_motion = S * F_motion              (Eq. 3)
    F           = cat(F_context, F_motion, S, F'_context, F'_motion)     (Eq. 4, 4C+1 channels)
    M_HR        = pixel_shuffle(conv3x3(F), scale)                       (Eq. 5)

CGMUL returns raw filter values; the network decides how to normalise them (softmax or none).
The baselines upsample every tap channel (nearest or bilinear) and dilate the filters with zero
holes; they have no parameters and ignore the features.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from cgm.fastconv import conv2d_3x3
from cgm.warp import PADDINGS, adaptive_warp, motion_to_flow, upsample_motion


def _check_scale_and_sizes(*, k_lr: int, scale: int, k_hr: int | None = None) -> None:
    if not isinstance(k_lr, int) or k_lr < 1 or k_lr % 2 == 0:
        raise ValueError(f"k_lr must be a positive odd filter size, got {k_lr!r}")
    if k_hr is not None and (not isinstance(k_hr, int) or k_hr < 1 or k_hr % 2 == 0):
        raise ValueError(f"k_hr must be a positive odd filter size, got {k_hr!r}")
    if not isinstance(scale, int) or scale < 1:
        raise ValueError(f"scale must be an integer >= 1, got {scale!r}")


def _check_features(
    f_context: torch.Tensor,
    m_lr: torch.Tensor,
    f_motion: torch.Tensor,
    *,
    channels: int | None = None,
    k_lr: int | None = None,
) -> None:
    for name, t in (("f_context", f_context), ("m_lr", m_lr), ("f_motion", f_motion)):
        if t.ndim != 4:
            raise ValueError(f"{name} must be 4-D (N, channels, h, w), got shape {tuple(t.shape)}")
    if f_context.shape != f_motion.shape:
        raise ValueError(
            f"f_context and f_motion must have the same shape (N, C, h, w), got "
            f"{tuple(f_context.shape)} and {tuple(f_motion.shape)}"
        )
    if channels is not None and f_context.shape[1] != channels:
        raise ValueError(f"features must have {channels} channels, got {f_context.shape[1]}")
    if k_lr is not None and m_lr.shape[1] != k_lr * k_lr:
        raise ValueError(f"m_lr must have k_lr**2 = {k_lr * k_lr} channels, got {m_lr.shape[1]}")
    if (m_lr.shape[0],) + tuple(m_lr.shape[2:]) != (f_context.shape[0],) + tuple(f_context.shape[2:]):
        raise ValueError(
            f"m_lr (N, k*k, h, w) = {tuple(m_lr.shape)} must agree with the features "
            f"(N, C, h, w) = {tuple(f_context.shape)} in N, h and w"
        )


def similarity_map(
    f_context: torch.Tensor, m_lr: torch.Tensor, f_motion: torch.Tensor, *, padding: str = "border"
) -> torch.Tensor:
    """Eq. 2: S (N, 1, h, w), the channel mean of F_motion times F_context warped by M_LR.

    The paper indexes F_context(c, x - m, y - n): the same sign convention as Eq. 1, so the warp
    of `cgm.warp` applies unchanged.
    """
    _check_features(f_context, m_lr, f_motion)
    if padding not in PADDINGS:
        raise ValueError(f"padding must be one of {PADDINGS}, got {padding!r}")
    warped = adaptive_warp(f_context, m_lr, padding=padding)  # (N, C, h, w)
    return (f_motion * warped).mean(dim=1, keepdim=True)  # (N, 1, h, w)


class CGMUL(nn.Module):
    """Context Guided Motion Upsampling Layer (Fig. 2, Eqs. 2-5)."""

    def __init__(self, channels: int, k_lr: int, k_hr: int, scale: int, extra: int = 0):
        super().__init__()
        _check_scale_and_sizes(k_lr=k_lr, k_hr=k_hr, scale=scale)
        if not isinstance(channels, int) or channels < 1:
            raise ValueError(f"channels must be a positive integer, got {channels!r}")
        if not isinstance(extra, int) or extra < 0:
            raise ValueError(f"extra must be an integer >= 0, got {extra!r}")
        self.channels, self.k_lr, self.k_hr, self.scale, self.extra = channels, k_lr, k_hr, scale, extra
        # `extra` HR maps after the k_hr**2 taps (e.g. a per-pixel temperature, hr_prior="cost_local")
        self.conv = nn.Conv2d(
            4 * channels + 1, scale * scale * (k_hr * k_hr + extra), kernel_size=3, padding=1
        )
        # Small start: the default init shrunk tenfold and no bias, so the raw HR filters begin
        # near zero (a softmax on top starts near a uniform filter) whatever the feature scale.
        with torch.no_grad():
            self.conv.weight.mul_(0.1)
            self.conv.bias.zero_()

    def forward(self, f_context: torch.Tensor, m_lr: torch.Tensor, f_motion: torch.Tensor) -> torch.Tensor:
        """-> M_HR (N, k_hr**2, scale*h, scale*w), raw filter values (then the `extra` maps)."""
        _check_features(f_context, m_lr, f_motion, channels=self.channels, k_lr=self.k_lr)
        # Under autocast the features are bf16/fp16 conv outputs and M_LR float32 (normalize_filters):
        # Eq. 2's warp takes one dtype, M_LR's. A no-op without autocast.
        f_context, f_motion = f_context.to(m_lr.dtype), f_motion.to(m_lr.dtype)
        s = similarity_map(f_context, m_lr, f_motion)  # (N, 1, h, w)
        features = torch.cat([f_context, f_motion, s, s * f_context, s * f_motion], dim=1)  # (N, 4C+1, h, w)
        # self.conv to scale*scale*k_hr*k_hr channels, then F.pixel_shuffle: Winograd with the
        # shuffle in its output copy on CPU in float32, PyTorch's conv and shuffle otherwise (cgm.fastconv).
        # Eq. 5 takes channel C*r*mod(y,r) + C*mod(x,r) + c (sub-pixel offset major, tap c minor);
        # F.pixel_shuffle takes c*r*r + r*mod(y,r) + mod(x,r) (tap major). The two differ by a fixed
        # permutation of the conv's output channels, which the learned conv absorbs.
        return conv2d_3x3(
            features, self.conv.weight, self.conv.bias, self.scale
        )  # (N, k_hr*k_hr, scale*h, scale*w)


class _FixedMotionUpsampler(nn.Module):
    mode = "nearest"

    def __init__(self, k_lr: int, scale: int):
        super().__init__()
        _check_scale_and_sizes(k_lr=k_lr, scale=scale)
        self.k_lr, self.scale = k_lr, scale
        self.k_hr = (k_lr - 1) * scale + 1

    def forward(
        self, f_context: torch.Tensor | None, m_lr: torch.Tensor, f_motion: torch.Tensor | None
    ) -> torch.Tensor:
        """-> (N, k_hr**2, scale*h, scale*w); the features are ignored (checked when given)."""
        if f_context is not None and f_motion is not None:
            _check_features(f_context, m_lr, f_motion, k_lr=self.k_lr)
        elif m_lr.ndim != 4 or m_lr.shape[1] != self.k_lr * self.k_lr:
            raise ValueError(f"m_lr must be (N, k_lr**2 = {self.k_lr**2}, h, w), got {tuple(m_lr.shape)}")
        return upsample_motion(m_lr, self.scale, mode=self.mode)

    def extra_repr(self) -> str:
        return f"k_lr={self.k_lr}, scale={self.scale}, k_hr={self.k_hr}"


class NearestMotionUpsampler(_FixedMotionUpsampler):
    """§4.3 baseline: nearest-neighbour upsampling of every tap channel, zero-hole dilation."""

    mode = "nearest"


class BilinearMotionUpsampler(_FixedMotionUpsampler):
    """§4.3 baseline: bilinear upsampling (align_corners=False) of every tap, zero-hole dilation."""

    mode = "bilinear"


def flow_kernel(flow: torch.Tensor, k: int) -> torch.Tensor:
    """The k x k motion map that moves content by `flow` (N, 2, H, W; x first, in px): bilinear
    weights on the four taps around the displacement, clamped to the window -> (N, k*k, H, W).

    `cgm.warp.motion_to_flow` of the result returns the (clamped) flow; Eq. 1 with it is a
    bilinear backward warp. Differentiable in `flow` (almost everywhere).
    """
    if flow.ndim != 4 or flow.shape[1] != 2:
        raise ValueError(f"flow must be (N, 2, H, W), got {tuple(flow.shape)}")
    if not isinstance(k, int) or k < 1 or k % 2 == 0:
        raise ValueError(f"k must be a positive odd filter size, got {k!r}")
    r = k // 2
    taps = torch.arange(-r, r + 1, device=flow.device, dtype=flow.dtype)  # (k,)
    fx, fy = flow.clamp(-r, r).unbind(dim=1)  # (N, H, W) each
    wx = (1 - (fx[:, None] - taps[None, :, None, None]).abs()).clamp_min(0)  # (N, k, H, W) over dx
    wy = (1 - (fy[:, None] - taps[None, :, None, None]).abs()).clamp_min(0)  # (N, k, H, W) over dy
    return (wy[:, :, None] * wx[:, None]).flatten(1, 2)  # (N, k*k, H, W), tap (dy+r)*k + (dx+r)


def lr_flow_prior(m_lr: torch.Tensor, scale: int, k_hr: int, floor: float = 0.01) -> torch.Tensor:
    """Log-prior for the HR filters from M_LR: the LR map's mean displacement (its flow, x scale,
    bilinearly upsampled) as a k_hr x k_hr bilinear kernel, log(kernel + floor). Added to CGMUL's
    raw output before the softmax (CGMConfig.hr_prior="lr_flow"), CGMUL starts from a sub-pixel
    shift by the LR motion and learns the correction; (N, k_lr^2, h, w) -> (N, k_hr^2, H, W)."""

    flow = motion_to_flow(m_lr) * scale  # (N, 2, h, w) in HR px
    flow = F.interpolate(flow, scale_factor=scale, mode="bilinear", align_corners=False)  # (N, 2, H, W)
    return torch.log(flow_kernel(flow, k_hr) + floor)


# Patch of the matching cost (`hr_prior="cost"`): 3 x 3 px, measured on held-out footage at 64 px
# against 1 and 5 (docs/training.md, "A matching cue"): 1 px picks the best tap per pixel (lowest
# ℓ1, but the motion is noise: EPE of zero flow), 5 px smooths the motion and loses ℓ1.
COST_PATCH = 3


def matching_cost(prev: torch.Tensor, nxt: torch.Tensor, k: int, patch: int = COST_PATCH) -> torch.Tensor:
    """The local matching cost of every tap of a k x k motion map: per pixel of `nxt` and tap
    (dy, dx), the channel-mean |nxt(p) - prev(p - (dy, dx))|, averaged over a patch x patch box
    (border padding, Eq. 1's sign and tap order). prev, nxt (N, C, H, W) -> (N, k*k, H, W).

    A softmax of -cost / tau over the taps is a soft block matching; with patch = 1 and tau -> 0
    its Eq. 1 reconstruction is the tap oracle (`cgm.reference.best_tap`).
    """
    if prev.shape != nxt.shape or prev.ndim != 4:
        raise ValueError(
            f"expected two (N, C, H, W) frames of one shape, got {tuple(prev.shape)} and {tuple(nxt.shape)}"
        )
    if not isinstance(k, int) or k < 1 or k % 2 == 0:
        raise ValueError(f"k must be a positive odd filter size, got {k!r}")
    if not isinstance(patch, int) or patch < 1 or patch % 2 == 0:
        raise ValueError(f"patch must be a positive odd box size, got {patch!r}")
    r, h, w = k // 2, prev.shape[-2], prev.shape[-1]
    padded = F.pad(prev, (r, r, r, r), mode="replicate")
    cost = torch.cat(
        [
            (padded[..., r - dy : r - dy + h, r - dx : r - dx + w] - nxt).abs().mean(dim=1, keepdim=True)
            for dy in range(-r, r + 1)
            for dx in range(-r, r + 1)
        ],
        dim=1,
    )  # (N, k*k, H, W), tap (dy + r) * k + (dx + r)
    return box_mean(cost, patch)


def box_mean(x: torch.Tensor, patch: int) -> torch.Tensor:
    """Mean of every patch x patch box of x (N, C, H, W), border replicated -> (N, C, H, W)."""
    if patch == 1:
        return x
    p, h, w = patch // 2, x.shape[-2], x.shape[-1]
    # sums of shifted views: 6x faster than avg_pool2d on an 81-channel cost
    x = F.pad(x, (p, p, p, p), mode="replicate")  # (N, C, H + 2p, W + 2p)
    x = sum(x[..., i : i + h, :] for i in range(patch))  # (N, C, H, W + 2p)
    return sum(x[..., j : j + w] for j in range(patch)) / (patch * patch)  # (N, C, H, W)


# The matching flow (`hr_prior="cue_flow"`): the matching cost of 1 px averaged over boxes of
# 3, 7 and 15 px (a cross-scale aggregation: small boxes keep motion edges, large ones carry flat
# regions), its best tap refined to sub-pixel by an equiangular (V) fit per axis, then a 5x5
# median; where the same estimate at half resolution (twice the reach) says the motion leaves the
# k x k window, that coarse flow is taken instead. Measured against 1-box costs, parabola fits,
# 3x3 medians, Lucas-Kanade refinement and other coarse thresholds on `knownmotion` and
# Middlebury Motorcycle (docs/decisions/016-the-matching-flow-cue.md).
CUE_PATCHES = (3, 7, 15)
CUE_MEDIAN = 5
# Shiftable windows (`cue_shift`): each box's cost is the lowest over the boxes within
# CUE_SHIFTS[i] // 2 px of it (3 px: none; 7 px: ±2; 15 px: ±4), so a pixel near a motion
# boundary can take the box on its own side instead of one straddling both motions (the
# "fattening" of centred boxes). Sliding by about half a box's radius: the whole radius smooths
# more (lower EPE on known motion, higher ℓ1), a quarter fixes less of the boundary error
# (docs/decisions/017-shiftable-windows-and-still-pixels.md).
CUE_SHIFTS = (1, 5, 9)


def min_filter(x: torch.Tensor, size: int) -> torch.Tensor:
    """Minimum of every size x size box of x (N, C, H, W), border replicated -> (N, C, H, W).

    Separable (the minimum over a box is the minimum over its rows' minima), by shifted views:
    the same values as `-max_pool2d(-x, size, stride=1)` of the padded x, several times faster
    on a many-channel cost (tests/test_matching_flow.py compares them)."""
    if not isinstance(size, int) or size < 1 or size % 2 == 0:
        raise ValueError(f"size must be a positive odd box size, got {size!r}")
    if size == 1:
        return x
    p, h, w = size // 2, x.shape[-2], x.shape[-1]
    x = F.pad(x, (p, p, p, p), mode="replicate")  # (N, C, H + 2p, W + 2p)
    rows = x[..., 0:h, :]
    for i in range(1, size):
        rows = torch.minimum(rows, x[..., i : i + h, :])  # (N, C, H, W + 2p)
    out = rows[..., 0:w]
    for j in range(1, size):
        out = torch.minimum(out, rows[..., j : j + w])  # (N, C, H, W)
    return out


def _vee_offset(left: torch.Tensor, centre: torch.Tensor, right: torch.Tensor) -> torch.Tensor:
    """Sub-pixel offset of a cost minimum from its two neighbours: the equiangular line fit, which
    suits an absolute-difference cost better than a parabola; within [-0.5, 0.5]."""
    rise = torch.maximum(left, right) - centre
    offset = (left - right) / (2 * rise).clamp_min(1e-6)
    return torch.where(rise > 1e-6, offset, torch.zeros_like(offset)).clamp(-0.5, 0.5)


def median_filter(x: torch.Tensor, size: int) -> torch.Tensor:
    """Per-channel size x size median of x (N, C, H, W), border replicated."""
    if size == 1:
        return x
    p = size // 2
    windows = F.pad(x, (p, p, p, p), mode="replicate").unfold(2, size, 1).unfold(3, size, 1)
    return windows.flatten(-2).median(dim=-1).values  # (N, C, H, W)


@torch.no_grad()
def matching_flow(
    prev: torch.Tensor,
    nxt: torch.Tensor,
    k: int,
    *,
    patches: tuple[int, ...] = CUE_PATCHES,
    median: int = CUE_MEDIAN,
    coarse: bool = True,
    shift: bool = False,
    still: bool = False,
) -> torch.Tensor:
    """The flow that block matching of `nxt` in `prev` reads, to sub-pixel: per pixel, the tap of
    the k x k window with the lowest matching cost averaged over `patches`-px boxes, moved by the
    equiangular fit of its neighbours' costs, then a `median` x `median` median filter. With
    `coarse`, pixels where the same estimate on 2x-downsampled frames exceeds the window (k // 2
    px) take that coarse flow (coarse to fine: up to twice the reach). With `shift`, each box's
    cost is first `min_filter`ed by its CUE_SHIFTS size (the default `patches` only): shiftable
    windows, which keep a motion boundary where it is. With `still`, a pixel whose lowest cost is
    the centre tap's (ties included) reads exactly zero flow, no sub-pixel offset: a still scene
    stays sharp instead of being resampled by a fraction of a pixel. Flow (N, 2, H, W), x first,
    in Eq. 1's convention (content at p in `nxt` came from p - flow in `prev`); a k x k map holds
    it only within ±(k // 2) (`flow_kernel` clamps). No gradient: a parameter-free cue."""
    if shift and patches != CUE_PATCHES:
        raise ValueError(f"shift slides the boxes {CUE_PATCHES} by CUE_SHIFTS, got patches {patches}")
    shifts = CUE_SHIFTS if shift else (1,) * len(patches)
    flow = _window_flow(prev, nxt, k, patches, median, shifts, still)  # (N, 2, H, W)
    h, w = prev.shape[-2:]
    if coarse and min(h, w) >= 2 * k:
        small = _window_flow(F.avg_pool2d(prev, 2), F.avg_pool2d(nxt, 2), k, patches, median, shifts, still)
        wide = 2 * F.interpolate(small, size=(h, w), mode="bilinear", align_corners=False)  # (N, 2, H, W)
        flow = torch.where(wide.abs().amax(dim=1, keepdim=True) > k // 2, wide, flow)
    return flow


def _window_flow(
    prev, nxt, k: int, patches: tuple[int, ...], median: int, shifts: tuple[int, ...], still: bool
) -> torch.Tensor:
    """`matching_flow` within the k x k window (no coarse level), (N, 2, H, W)."""
    cost_1px = matching_cost(prev, nxt, k, patch=1)  # (N, k*k, H, W)
    boxes = [min_filter(box_mean(cost_1px, p), m) for p, m in zip(patches, shifts)]
    cost = sum(boxes) / len(patches)  # (N, k*k, H, W)
    n, _, h, w = cost.shape
    r = k // 2
    best = cost.argmin(dim=1)  # (N, H, W), tap (dy + r) * k + (dx + r)
    iy, ix = best // k, best % k
    grid = F.pad(cost.view(n, k, k, h * w).permute(0, 3, 1, 2), (1, 1, 1, 1), mode="replicate")
    grid = grid.reshape(n, h, w, (k + 2) ** 2)  # (N, H, W, (k+2)^2): the taps with a replicated rim

    def at(dy: int, dx: int) -> torch.Tensor:  # the cost at the best tap + (dy, dx)
        return grid.gather(3, ((iy + 1 + dy) * (k + 2) + ix + 1 + dx).unsqueeze(-1)).squeeze(-1)

    centre = at(0, 0)
    fx = (ix - r).to(cost.dtype) + _vee_offset(at(0, -1), centre, at(0, 1))  # (N, H, W)
    fy = (iy - r).to(cost.dtype) + _vee_offset(at(-1, 0), centre, at(1, 0))
    flow = torch.stack([fx, fy], dim=1)  # (N, 2, H, W)
    if still:  # the centre tap wins ties (flat regions) and reads no sub-pixel offset
        flow = flow.masked_fill((cost[:, k * k // 2] <= centre).unsqueeze(1), 0.0)
    return median_filter(flow, median)  # (N, 2, H, W)
