"""Eq. 1: the pixel-adaptive warp, and the motion-map utilities built on it.

A motion map holds one K x K filter per pixel, taps flattened row-major into channels:
tap i = (dy + r) * K + (dx + r), r = K // 2, and

    out[n, c, y, x] = sum_i m[n, i, y, x] * x[n, c, y - dy, x - dx]          (Eq. 1)

so a one-hot map at tap (dy, dx) moves the content by (+dx, +dy). Reads outside the frame are
clamped (``padding="border"``) or zero (``padding="zeros"``).

`adaptive_warp` is the fast path: an autograd Function that loops over the K*K taps with shifted
views of a once-padded frame, so memory stays O(C*H*W + K*K*H*W) (no K*K-fold copy of the frames).
`adaptive_warp_reference` is the plain unfold formula of pixel-adaptive convolution, kept for
tests and benchmarks.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch.autograd.function import once_differentiable

PADDINGS = ("border", "zeros")
_CHAIN_MAX_CHANNELS = 4  # backward: up to this many channels, grad_m is a chain of addcmul_
UPSAMPLE_MODES = ("nearest", "bilinear")


# --------------------------------------------------------------------------- input checks


def _filter_size(m: torch.Tensor, *, name: str = "m") -> int:
    """K of a motion map (N, K*K, H, W); ValueError unless K*K channels with K odd."""
    if m.ndim != 4:
        raise ValueError(f"{name} must be a motion map (N, K*K, H, W), got {m.ndim} dims {tuple(m.shape)}")
    taps = m.shape[1]
    k = int(round(taps**0.5))
    if k * k != taps:
        raise ValueError(f"{name} must have K*K channels for an odd K, got {taps} channels (not a square)")
    if k % 2 == 0:
        raise ValueError(f"{name} must have K*K channels for an odd K, got K={k} (even)")
    return k


def _check_warp_inputs(x: torch.Tensor, m: torch.Tensor, padding: str) -> int:
    if padding not in PADDINGS:
        raise ValueError(f"padding must be one of {PADDINGS}, got {padding!r}")
    if x.ndim != 4:
        raise ValueError(f"x must be frames (N, C, H, W), got {x.ndim} dims {tuple(x.shape)}")
    k = _filter_size(m)
    if (x.shape[0], x.shape[2], x.shape[3]) != (m.shape[0], m.shape[2], m.shape[3]):
        raise ValueError(
            f"x (N, C, H, W) = {tuple(x.shape)} and m (N, K*K, H, W) = {tuple(m.shape)} "
            "must agree in N, H and W"
        )
    if x.dtype != m.dtype or x.device != m.device:
        raise ValueError(
            f"x and m must share dtype and device, got {x.dtype}/{x.device} and {m.dtype}/{m.device}"
        )
    return k


def _pad(x: torch.Tensor, r: int, padding: str) -> torch.Tensor:
    """Pad H and W by r on each side: replicate the edge ("border") or zeros -> (N, C, H+2r, W+2r)."""
    if r == 0:
        return x
    n, c, h, w = x.shape
    # Built from plain copies: aten's replication_pad2d is far slower on CPU for small frames.
    xp = x.new_empty(n, c, h + 2 * r, w + 2 * r)
    xp[..., r : r + h, r : r + w] = x
    if padding == "border":
        xp[..., r : r + h, :r] = x[..., :, :1]
        xp[..., r : r + h, r + w :] = x[..., :, w - 1 :]
        xp[..., :r, :] = xp[..., r : r + 1, :]
        xp[..., r + h :, :] = xp[..., r + h - 1 : r + h, :]
    else:
        xp[..., :r, :] = 0
        xp[..., r + h :, :] = 0
        xp[..., r : r + h, :r] = 0
        xp[..., r : r + h, r + w :] = 0
    return xp


def _taps(k: int):
    """(i, dy, dx) for every tap, in channel order."""
    r = k // 2
    for dy in range(-r, r + 1):
        for dx in range(-r, r + 1):
            yield (dy + r) * k + (dx + r), dy, dx


def _window(xp: torch.Tensor, r: int, dy: int, dx: int, h: int, w: int) -> torch.Tensor:
    """The view of the padded frame that tap (dy, dx) reads: xp[..., y - dy + r, x - dx + r]."""
    return xp[..., r - dy : r - dy + h, r - dx : r - dx + w]


# --------------------------------------------------------------------------- fast path


def _warp_forward(xp: torch.Tensor, m: torch.Tensor, k: int, h: int, w: int) -> torch.Tensor:
    # One fused multiply-add per tap over the whole batch: each tap's slice of m is read once
    # (m dominates the bytes when C is small), the output stays in cache across taps.
    r = k // 2
    out = None
    for i, dy, dx in _taps(k):
        view = _window(xp, r, dy, dx, h, w)  # (N, C, H, W), strided view, no copy
        if out is None:
            out = view * m[:, i : i + 1]
        else:
            out.addcmul_(view, m[:, i : i + 1])
    return out


def _fold_padding(grad_xp: torch.Tensor, r: int, padding: str) -> torch.Tensor:
    """Gradient of _pad: the padded border flows back into the edge rows/cols (or is dropped)."""
    if r == 0:
        return grad_xp
    h, w = grad_xp.shape[-2] - 2 * r, grad_xp.shape[-1] - 2 * r
    if padding == "border":
        # Columns first over the full height, then rows over the inner columns: corners land
        # in the corner pixel.
        grad_xp[..., :, r] += grad_xp[..., :, :r].sum(-1)
        grad_xp[..., :, r + w - 1] += grad_xp[..., :, r + w :].sum(-1)
        grad_xp[..., r, r : r + w] += grad_xp[..., :r, r : r + w].sum(-2)
        grad_xp[..., r + h - 1, r : r + w] += grad_xp[..., r + h :, r : r + w].sum(-2)
    return grad_xp[..., r : r + h, r : r + w].contiguous()


def _warp_backward(grad_out, xp, m, k, h, w, padding, *, need_x: bool, need_m: bool):
    r = k // 2
    grad_x = grad_m = None
    if need_m:
        # grad_m[:, i] = sum_c grad_out * view_i  (a dot product over channels, per pixel),
        # written straight into grad_m's tap slice.
        grad_m = torch.empty_like(m)
        c = grad_out.shape[1]
        product = grad_out.new_empty(grad_out.shape) if c > _CHAIN_MAX_CHANNELS else None
        for i, dy, dx in _taps(k):
            view = _window(xp, r, dy, dx, h, w)
            if product is None:  # few channels (RGB): a chain of fused multiply-adds, no temporary
                torch.mul(grad_out[:, 0], view[:, 0], out=grad_m[:, i])
                for ch in range(1, c):
                    grad_m[:, i].addcmul_(grad_out[:, ch], view[:, ch])
            else:  # many channels (features): one product into a reused buffer, one reduction
                torch.mul(grad_out, view, out=product)
                torch.sum(product, dim=1, keepdim=True, out=grad_m[:, i : i + 1])
    if need_x:
        # Scatter: every output pixel sends grad_out * m_i back to the input pixel tap i read.
        grad_xp = torch.zeros_like(xp) if r > 0 else None
        for i, dy, dx in _taps(k):
            if grad_xp is None:  # K = 1: no padding, no scatter
                grad_xp = grad_out * m[:, i : i + 1]
            else:
                _window(grad_xp, r, dy, dx, h, w).addcmul_(grad_out, m[:, i : i + 1])
        grad_x = _fold_padding(grad_xp, r, padding)
    return grad_x, grad_m


class _AdaptiveWarp(torch.autograd.Function):
    """Eq. 1 with a hand-written backward over shifted views (first-order gradients only)."""

    @staticmethod
    def forward(ctx, x, m, k: int, padding: str):
        h, w = x.shape[-2:]
        x, m = x.contiguous(), m.contiguous()
        out = _warp_forward(_pad(x, k // 2, padding), m, k, h, w)
        ctx.save_for_backward(x, m)
        ctx.k, ctx.padding = k, padding
        return out

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_out):
        x, m = ctx.saved_tensors
        k, padding = ctx.k, ctx.padding
        h, w = x.shape[-2:]
        # Re-pad instead of saving the padded frame: one cheap pass, less memory held by the graph.
        grad_x, grad_m = _warp_backward(
            grad_out.contiguous(),
            _pad(x, k // 2, padding),
            m,
            k,
            h,
            w,
            padding,
            need_x=ctx.needs_input_grad[0],
            need_m=ctx.needs_input_grad[1],
        )
        return grad_x, grad_m, None, None


def adaptive_warp(x: torch.Tensor, m: torch.Tensor, padding: str = "border") -> torch.Tensor:
    """Eq. 1: warp frames x (N, C, H, W) with per-pixel filters m (N, K*K, H, W) -> (N, C, H, W)."""
    k = _check_warp_inputs(x, m, padding)
    return _AdaptiveWarp.apply(x, m, k, padding)


def adaptive_warp_reference(x: torch.Tensor, m: torch.Tensor, padding: str = "border") -> torch.Tensor:
    """Eq. 1 by the unfold formula of pixel-adaptive convolution (a K*K-fold copy of x)."""
    k = _check_warp_inputs(x, m, padding)
    n, c, h, w = x.shape
    r = k // 2
    mode = "replicate" if padding == "border" else "constant"  # aten's pad: independent of _pad
    patches = F.unfold(F.pad(x, (r, r, r, r), mode=mode), kernel_size=k)  # (N, C*K*K, H*W)
    patches = patches.view(n, c, k * k, h, w)  # patch j = a*K + b reads x[y + a - r, x + b - r]
    # Patch j holds offset (a - r, b - r) = (-dy, -dx) of tap i = K*K - 1 - j: flip the taps.
    return (patches * m.flip(1).unsqueeze(1)).sum(2)


# --------------------------------------------------------------------------- filter normalisation


def _flush_subnormal_(t: torch.Tensor) -> torch.Tensor:
    """Set |t| < the smallest normal float of t's dtype to zero, in place (what CPU flush-to-zero
    mode does to a result)."""
    if t.dtype.is_floating_point:
        t.masked_fill_(t.abs() < torch.finfo(t.dtype).tiny, 0)
    return t


class _SoftmaxFilters(torch.autograd.Function):
    """Softmax over dim 1 whose output and input gradient carry no subnormal floats."""

    @staticmethod
    def forward(ctx, logits):
        p = _flush_subnormal_(torch.softmax(logits, dim=1))
        ctx.save_for_backward(p)
        return p

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_p):
        (p,) = ctx.saved_tensors
        # p * (g - sum_i g_i p_i): zero where p was flushed, and flushed again (a tiny p times an
        # ordinary gradient is subnormal).
        return _flush_subnormal_(torch._softmax_backward_data(grad_p, p, 1, p.dtype))


def softmax_filters(logits: torch.Tensor) -> torch.Tensor:
    """Motion filters from tap scores (N, K*K, H, W): softmax over the taps, with probabilities
    below the smallest normal float (1.2e-38 in float32) set to zero, in the gradient too.

    Why: once training sharpens the filters, a few percent of the taps of a 9x9 softmax fall into
    the subnormal range, and every multiply that touches one (the warp, the softmax backward,
    CGMUL's conv backward) takes a microcode assist on Intel CPUs, about 10x slower: a smoke run
    fell from ~12 to ~1 clips/s (docs/performance.md). Dropping them changes no sum by more
    than float rounding (they are 2^-23 below any weight that matters), and it does not depend on
    the thread's flush-to-zero mode, which `torch.set_flush_denormal` sets for the calling thread
    only, not for the intra-op worker threads.
    """
    return _SoftmaxFilters.apply(logits)


def softmax_filters_reference(logits: torch.Tensor) -> torch.Tensor:
    """`softmax_filters` by plain autograd ops (a softmax, then a mask), for tests."""
    p = torch.softmax(logits, dim=1)
    return p * (p >= torch.finfo(p.dtype).tiny)


# --------------------------------------------------------------------------- motion-map utilities


def _tap_offsets(k: int, *, dtype, device) -> tuple[torch.Tensor, torch.Tensor]:
    """(dx, dy) of every tap, each (K*K,), in channel order."""
    r = k // 2
    d = torch.arange(-r, r + 1, dtype=dtype, device=device)
    dy, dx = torch.meshgrid(d, d, indexing="ij")
    return dx.reshape(-1), dy.reshape(-1)


def motion_to_flow(m: torch.Tensor) -> torch.Tensor:
    """Flow (N, 2, H, W), channel 0 = x: sum_i m_i * (dx_i, dy_i), the displacement of the content
    arriving at each pixel."""
    k = _filter_size(m)
    dx, dy = _tap_offsets(k, dtype=m.dtype, device=m.device)
    flow_x = torch.einsum("nihw,i->nhw", m, dx)
    flow_y = torch.einsum("nihw,i->nhw", m, dy)
    return torch.stack([flow_x, flow_y], dim=1)


def identity_motion(
    n: int,
    k: int,
    h: int,
    w: int,
    *,
    dtype: torch.dtype = torch.float32,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """(n, k*k, h, w) motion map whose filters are one-hot at the centre tap (no motion)."""
    if k < 1 or k % 2 == 0:
        raise ValueError(f"k must be a positive odd filter size, got {k}")
    m = torch.zeros(n, k * k, h, w, dtype=dtype, device=device)
    m[:, (k * k) // 2] = 1
    return m


def dilate_motion(m: torch.Tensor, scale: int) -> torch.Tensor:
    """Spread K x K filters to (K-1)*scale+1 taps with zero holes (§4.3): tap (dy, dx) moves to
    (dy*scale, dx*scale), every other tap is zero. -> (N, ((K-1)*scale+1)**2, H, W)."""
    k = _filter_size(m)
    if not isinstance(scale, int) or scale < 1:
        raise ValueError(f"scale must be an integer >= 1, got {scale!r}")
    n, _, h, w = m.shape
    k_hr = (k - 1) * scale + 1
    out = m.new_zeros(n, k_hr, k_hr, h, w)
    out[:, ::scale, ::scale] = m.view(n, k, k, h, w)  # (N, K, K, H, W) into every scale-th tap
    return out.view(n, k_hr * k_hr, h, w)


def upsample_motion(m: torch.Tensor, scale: int, mode: str = "nearest") -> torch.Tensor:
    """The §4.3 baselines: upsample each tap channel by `scale` (nearest, or bilinear with
    align_corners=False), then dilate the filters. -> (N, ((K-1)*scale+1)**2, scale*H, scale*W)."""
    _filter_size(m)
    if mode not in UPSAMPLE_MODES:
        raise ValueError(f"mode must be one of {UPSAMPLE_MODES}, got {mode!r}")
    if not isinstance(scale, int) or scale < 1:
        raise ValueError(f"scale must be an integer >= 1, got {scale!r}")
    if scale > 1:
        kw = {"align_corners": False} if mode == "bilinear" else {}
        m = F.interpolate(m, scale_factor=scale, mode=mode, **kw)
    # Dilating by `scale` is the right displacement scaling: a displacement of d low-resolution
    # pixels is d*scale pixels on the grid that is `scale` times larger, so tap (dy, dx) of the
    # LR filter becomes tap (dy*scale, dx*scale) of the HR filter, with the same weight.
    return dilate_motion(m, scale)
