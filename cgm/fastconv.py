"""A faster CPU convolution with the same math, for CGM-Net's float32 training step.

`winograd_conv2d_3x3` is a 3x3, stride-1, padding-1 2D convolution by Winograd's minimal
filtering F(4x4, 3x3) (Lavin & Gray, "Fast Algorithms for Convolutional Neural Networks", CVPR
2016): each 6x6 input tile and each 3x3 filter are transformed, multiplied channel-wise as 36
batched GEMMs, and the 4x4 output tile is transformed back: 36 multiplies per 16 outputs instead
of 144. The backward is written by hand (`_WinogradConv`), itself in the Winograd domain: the
same few GEMMs transposed and one layout copy each way. `conv2d_3x3(x, w, b, shuffle)` also folds
CGMUL's pixel shuffle (Eq. 5) into the output tile's layout copy, so the 1,312-channel output is
written once, already shuffled. CGMUL's conv to scale^2 * k_hr^2 channels is 41% of the float32
laptop step with oneDNN's direct algorithm; Winograd makes its forward+backward 2.5x faster, and
the hand-written backward with the folded shuffle another ~20% (conv + shuffle: 629-664 -> 515-525
ms on an AMD EPYC Zen 1; docs/decisions/005-fast-float32-convolutions.md). The reference, `conv2d_3x3_reference`, is `F.conv2d(x,
weight, bias, padding=1)` then `F.pixel_shuffle`; the float32 error relative to a float64
convolution is ~7e-6 of the largest value (oneDNN's direct algorithm: ~2e-6), tested with the
gradients.

It runs on CPU in float32 only: on CUDA cuDNN chooses its own algorithms (Winograd among them);
under bf16 autocast oneDNN's bf16 kernels are faster, and the transforms would lose bf16's bits.

`Conv3d` is `nn.Conv3d` (same parameters, same state_dict) whose CPU float32 forward runs the
convolution on a channels-last 3D (NDHWC) copy of its input and hands back the default layout:
oneDNN's 3D conv backward on few channels is much faster in that layout (the laptop stem and its
16-channel convs: 125 -> 65 ms and 161 -> 92 ms forward+backward, 1.0-1.3x for the rest; the
two copies included). Only the convolution sees the layout: whole-network channels-last
(activations kept NDHWC through batch norm) was 24% faster for the laptop encoder+decoder, but
PyTorch's channels-last BatchNorm on CPU computes its statistics less accurately (26-63x the
float64 error of the default layout, output and gradients, for activations of mean 1 and std
0.01) and moved the smoke CGM-Net's weight gradients by up to 1.8% (the default layout: 6e-6).
Not the same math, so not adopted.

`conv_backend()` is "fast" (default) or "direct" (PyTorch's own convolutions in the default
layout: the baseline of `benchmarks/train.py --compare`), from
$CGM_CONV at import or `set_conv_backend` / `use_conv_backend`. No config field: the backend
changes float rounding only, never a cached result's config hash.
"""

from __future__ import annotations

import contextlib

import torch
import torch.nn.functional as F
from torch import nn

from cgm import settings
from cgm.settings import CONV_BACKENDS

_backend = [settings.read().conv]  # $CGM_CONV, checked by cgm.settings: one of CONV_BACKENDS

# F(4x4, 3x3): output tile m = 4, input tile m + 2 = 6 (Lavin & Gray 2016, section 4.2)
_TILE = 4
_A_T = [[1, 1, 1, 1, 1, 0], [0, 1, -1, 2, -2, 0], [0, 1, 1, 4, 4, 0], [0, 1, -1, 8, -8, 1]]
_B_T = [
    [4, 0, -5, 0, 1, 0],
    [0, -4, -4, 1, 1, 0],
    [0, 4, -4, -1, 1, 0],
    [0, -2, -1, 2, 1, 0],
    [0, 2, -1, -2, 1, 0],
    [0, 4, 0, -5, 0, 1],
]
_G = [
    [1 / 4, 0, 0],
    [-1 / 6, -1 / 6, -1 / 6],
    [-1 / 6, 1 / 6, -1 / 6],
    [1 / 24, 1 / 12, 1 / 6],
    [1 / 24, -1 / 12, 1 / 6],
    [0, 0, 1],
]
# Above this many bytes for the Winograd-domain product (36 x C_out x tiles), the direct
# convolution runs instead: it is 2.25x the output's size, too much for large CPU batches.
WINOGRAD_MAX_BYTES = 1 << 30
_matrices: dict = {}


def conv_backend() -> str:
    """The backend: "fast" (Winograd for CGMUL's conv, channels-last 3D convs; CPU float32) or "direct"."""
    return _backend[0]


def set_conv_backend(name: str) -> None:
    if name not in CONV_BACKENDS:
        raise ValueError(f"conv backend must be one of {CONV_BACKENDS}, got {name!r}")
    _backend[0] = name


@contextlib.contextmanager
def use_conv_backend(name: str):
    """`set_conv_backend(name)` for the duration of a with-block."""
    saved = conv_backend()
    set_conv_backend(name)
    try:
        yield
    finally:
        set_conv_backend(saved)


def _fast_on(x: torch.Tensor) -> bool:
    return (
        _backend[0] == "fast"
        and x.device.type == "cpu"
        and x.dtype == torch.float32
        and not torch.is_autocast_enabled("cpu")
    )


def _transforms(dtype, device) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(A^T, B^T x B^T, G x G): (4, 6), (36, 36), (36, 9). A 2D transform P t Q^T of a tile t
    flattened row-major is kron(P, Q) @ t: one small GEMM for the (small) input and filters. The
    output side, the big one, applies A^T along each axis in turn (two GEMMs with inner size 6:
    in the backward 4x less traffic than one with the (36, 16) Kronecker product)."""
    key = (dtype, device)
    if key not in _matrices:
        a, b, g = (torch.tensor(m, dtype=torch.float64) for m in (_A_T, _B_T, _G))
        _matrices[key] = tuple(
            t.to(dtype=dtype, device=device) for t in (a, torch.kron(b, b), torch.kron(g, g))
        )
    return _matrices[key]


def _check(x: torch.Tensor, weight: torch.Tensor, shuffle: int) -> None:
    if weight.ndim != 4 or weight.shape[2:] != (3, 3) or x.ndim != 4 or x.shape[1] != weight.shape[1]:
        raise ValueError(
            f"expected x (N, C, H, W) and a 3x3 weight (K, C, 3, 3), got {tuple(x.shape)} and {tuple(weight.shape)}"
        )
    if shuffle < 1 or weight.shape[0] % (shuffle * shuffle):
        raise ValueError(
            f"shuffle must be a positive factor r with r*r dividing the {weight.shape[0]} output channels, got {shuffle}"
        )


class _WinogradConv(torch.autograd.Function):
    """F(4x4, 3x3) forward and a hand-written backward, both as a few large GEMMs and one layout
    copy each way. Autograd through the same ops would spend ~200 ms of the laptop step outside
    the GEMMs (AMD EPYC Zen 1, 1 thread): a transposed 6x4 GEMM over 2M columns, the tile layout
    copied twice (to (N, K, H, W), then by pixel shuffle) each way, and unfold's backward."""

    @staticmethod
    def forward(ctx, x, weight, bias, shuffle):
        a_t, b_t, g = _transforms(x.dtype, x.device)
        m, alpha, r = _TILE, _TILE + 2, shuffle
        n, c, h, w = x.shape
        k = weight.shape[0]
        th, tw = -(-h // m), -(-w // m)  # tiles per column and row
        tiles = n * th * tw
        # padding 1 on the top/left; bottom/right up to whole tiles (the extra outputs are cropped)
        xp = F.pad(x, (1, 1 + m * tw - w, 1, 1 + m * th - h))
        d = xp.unfold(2, alpha, m).unfold(3, alpha, m)  # (N, C, th, tw, 6, 6), overlapping views
        d = d.permute(4, 5, 1, 0, 2, 3).reshape(alpha * alpha, c * tiles)  # (36, C*N*th*tw)
        v = (b_t @ d).view(alpha * alpha, c, tiles)  # input tiles, Winograd domain
        u = (g @ weight.permute(2, 3, 0, 1).reshape(9, k * c)).view(alpha * alpha, k, c)  # filters
        prod = torch.bmm(u, v).view(alpha, alpha * k * tiles)  # (6 rows, 6 columns * K*N*th*tw)
        rows = (a_t @ prod).view(m, alpha, k * tiles)  # (4, 6, K*N*th*tw): A^T along the rows
        y = torch.matmul(a_t, rows)  # (4, 4, K*N*th*tw): output tiles, A^T along the columns
        # one copy to the output layout: channel k = (c_out, sy, sx) goes to pixel (Y*r+sy, X*r+sx)
        # of map c_out (pixel shuffle; r = 1: a plain conv), where Y = 4*tile row + iy
        y = y.view(m, m, k // (r * r), r, r, n, th, tw).permute(
            5, 2, 6, 0, 3, 7, 1, 4
        )  # (N, K/r², th, iy, sy, tw, ix, sx)
        out = x.new_empty(y.shape)
        if bias is None:
            out.copy_(y)
        else:
            torch.add(y, bias.view(1, k // (r * r), 1, 1, r, 1, 1, r), out=out)
        ctx.save_for_backward(u, v)
        ctx.dims = (n, c, h, w, k, th, tw, r)
        ctx.has_bias = bias is not None
        out = out.view(n, k // (r * r), m * th * r, m * tw * r)
        if m * th != h or m * tw != w:
            out = out[..., : h * r, : w * r]
        return out

    @staticmethod
    def backward(ctx, grad):
        u, v = ctx.saved_tensors
        n, c, h, w, k, th, tw, r = ctx.dims
        a_t, b_t, g = _transforms(grad.dtype, grad.device)
        m, alpha = _TILE, _TILE + 2
        tiles = n * th * tw
        if m * th != h or m * tw != w:
            grad = F.pad(grad, (0, (m * tw - w) * r, 0, (m * th - h) * r))  # the cropped outputs: zero
        grad = grad.reshape(n, k // (r * r), th, m, r, tw, m, r)  # (N, K/r², th, iy, sy, tw, ix, sx)
        g_bias = grad.sum((0, 2, 3, 5, 6)).reshape(k) if ctx.has_bias else None
        gy = grad.new_empty(m, m, k // (r * r), r, r, n, th, tw)
        gy.copy_(grad.permute(3, 6, 1, 4, 7, 0, 2, 5))  # (iy, ix, K, N, th, tw), one copy
        a = a_t.t().contiguous()  # (6, 4): a transposed view made MKL ~5x slower here
        g_rows = torch.matmul(a, gy.view(m, m, k * tiles))  # (4, 6, K*T)
        g_prod = (a @ g_rows.view(m, alpha * k * tiles)).view(alpha * alpha, k, tiles)  # (36, K, T)
        g_x = g_weight = None
        if ctx.needs_input_grad[1]:
            g_u = torch.bmm(g_prod, v.transpose(1, 2))  # (36, K, C)
            g_weight = (g.t().contiguous() @ g_u.view(alpha * alpha, k * c)).view(3, 3, k, c)
            g_weight = g_weight.permute(2, 3, 0, 1).contiguous()  # (K, C, 3, 3)
        if ctx.needs_input_grad[0]:
            g_v = torch.bmm(u.transpose(1, 2), g_prod)  # (36, C, T)
            g_d = b_t.t().contiguous() @ g_v.view(alpha * alpha, c * tiles)  # (36, C*T)
            # the overlapping 6x6 tiles (stride 4) summed back onto the padded input: col2im
            g_d = (
                g_d.view(alpha, alpha, c, n, th * tw)
                .permute(3, 2, 0, 1, 4)
                .reshape(n, c * alpha * alpha, th * tw)
            )
            g_xp = F.fold(g_d, (m * th + 2, m * tw + 2), alpha, stride=m)  # (N, C, 4th+2, 4tw+2)
            g_x = g_xp[:, :, 1 : 1 + h, 1 : 1 + w].contiguous()
        return g_x, g_weight, g_bias, None


def winograd_conv2d_3x3(
    x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, shuffle: int = 1
) -> torch.Tensor:
    """`F.pixel_shuffle(F.conv2d(x, weight, bias, padding=1), shuffle)` for a 3x3 kernel by
    Winograd F(4x4, 3x3); shuffle = 1 is the plain conv. x (N, C, H, W), weight (K, C, 3, 3),
    bias (K,) or None -> (N, K / shuffle², H * shuffle, W * shuffle)."""
    _check(x, weight, shuffle)
    return _WinogradConv.apply(x, weight, bias, shuffle)


def conv2d_3x3_reference(
    x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, shuffle: int = 1
) -> torch.Tensor:
    """What `winograd_conv2d_3x3` and `conv2d_3x3` compute, by PyTorch's convolution and pixel
    shuffle (the direct backend; the tests' reference)."""
    _check(x, weight, shuffle)
    out = F.conv2d(x, weight, bias, padding=1)
    return out if shuffle == 1 else F.pixel_shuffle(out, shuffle)


def conv2d_3x3(
    x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, shuffle: int = 1
) -> torch.Tensor:
    """A 3x3, stride-1, padding-1 convolution, then pixel shuffle by `shuffle` (1: none):
    Winograd on CPU in float32 (backend "fast", and the Winograd-domain product under
    WINOGRAD_MAX_BYTES), PyTorch's conv and pixel shuffle otherwise."""
    if _fast_on(x) and weight.dtype == x.dtype:
        th, tw = -(-x.shape[2] // _TILE), -(-x.shape[3] // _TILE)
        product_bytes = 36 * weight.shape[0] * x.shape[0] * th * tw * x.element_size()
        if product_bytes <= WINOGRAD_MAX_BYTES:
            return winograd_conv2d_3x3(x, weight, bias, shuffle)
    return conv2d_3x3_reference(x, weight, bias, shuffle)


class Conv3d(nn.Conv3d):
    """`nn.Conv3d` that, on CPU in float32 (backend "fast"), convolves a channels-last 3D copy of
    its input and returns the default layout (see the module docstring); the same parameters,
    state_dict and values (to float rounding) as `nn.Conv3d`, which it is an instance of."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not _fast_on(x) or x.ndim != 5:
            return super().forward(x)
        out = super().forward(x.contiguous(memory_format=torch.channels_last_3d))
        return out.contiguous()  # (N, C, T, H, W) in the default layout, for batch norm
