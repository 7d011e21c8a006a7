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

import contextlib
import ctypes
import hashlib
import os
import platform
import shutil
import subprocess
import tempfile
import warnings
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.autograd.function import once_differentiable

from cgm import settings

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
    """Eq. 1: warp frames x (N, C, H, W) with per-pixel filters m (N, K*K, H, W) -> (N, C, H, W).

    Runs the PyTorch tap loop (`adaptive_warp_taps`). On CPU in float32/float64,
    `set_warp_backend("native")` or $CGM_WARP=native opts in to the compiled kernels
    (`adaptive_warp_native`; if they cannot be built, e.g. no C compiler: a RuntimeWarning, then
    the tap loop)."""
    k = _check_warp_inputs(x, m, padding)
    if _native_ok(x):
        return _AdaptiveWarpNative.apply(x, m, k, padding)
    return _AdaptiveWarp.apply(x, m, k, padding)


def adaptive_warp_taps(x: torch.Tensor, m: torch.Tensor, padding: str = "border") -> torch.Tensor:
    """Eq. 1 by the PyTorch tap loop (any device and dtype): the path `adaptive_warp` takes on GPUs,
    and on CPU with the "taps" backend."""
    k = _check_warp_inputs(x, m, padding)
    return _AdaptiveWarp.apply(x, m, k, padding)


def adaptive_warp_native(x: torch.Tensor, m: torch.Tensor, padding: str = "border") -> torch.Tensor:
    """Eq. 1 by the compiled CPU kernels (float32/float64); RuntimeError if they are unavailable."""
    k = _check_warp_inputs(x, m, padding)
    if x.device.type != "cpu" or x.dtype not in _NATIVE_DTYPES:
        raise RuntimeError(f"the compiled warp runs on CPU in float32/float64, got {x.dtype} on {x.device}")
    if _load_native() is None:
        raise RuntimeError(f"the compiled warp is {native_status()}")
    return _AdaptiveWarpNative.apply(x, m, k, padding)


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


# --------------------------------------------------------------------------- native (compiled) path

# C kernels, compiled at first use with the system's C compiler (cc/gcc, -O3 -march=native,
# OpenMP over the batch) and loaded with ctypes: no PyTorch headers, so it builds in about a
# second. Both directions walk blocks of rows (sized so that the block's output, padded input and
# padded gradient rows stay in L2) tap by tap: each tap's filter rows are read once, as one
# contiguous run per block, and multiplied into the C channels' rows in cache. The backward writes
# each grad_m row once (a dot product over channels) and scatters grad_out * m into a padded
# grad_x buffer in the same pass. `T` is float or double.
_NATIVE_SOURCE = r"""
#include <string.h>
/* Rows per block: the block's output, padded-input and padded-gradient rows stay in L2. */
static long rows_per_block(long C, long Wp, long H) {
    long b = 32768 / (C * Wp);
    return b < 1 ? 1 : (b > H ? H : b);
}
#define DEF(T, SUF)                                                                              \
void warp_fwd_##SUF(const T *restrict xp, const T *restrict m, T *restrict out, long N, long C,   \
                    long H, long W, long K, int nt) {                                             \
    long r = K / 2, Hp = H + 2 * r, Wp = W + 2 * r, K2 = K * K, B = rows_per_block(C, Wp, H);     \
    _Pragma("omp parallel for num_threads(nt) collapse(2) schedule(static)")                      \
    for (long n = 0; n < N; n++)                                                                  \
        for (long y0 = 0; y0 < H; y0 += B) {                                                      \
            long y1 = y0 + B < H ? y0 + B : H;                                                    \
            for (long c = 0; c < C; c++)                                                          \
                memset(out + ((n * C + c) * H + y0) * W, 0, (y1 - y0) * W * sizeof(T));          \
            for (long dy = -r; dy <= r; dy++)                                                     \
                for (long dx = -r; dx <= r; dx++) {                                               \
                    long i = (dy + r) * K + (dx + r);                                             \
                    for (long y = y0; y < y1; y++) {                                              \
                        const T *mi = m + ((n * K2 + i) * H + y) * W;                             \
                        for (long c = 0; c < C; c++) {                                            \
                            const T *s = xp + ((n * C + c) * Hp + (y - dy + r)) * Wp + (r - dx);  \
                            T *o = out + ((n * C + c) * H + y) * W;                               \
                            for (long x = 0; x < W; x++) o[x] += mi[x] * s[x];                    \
                        }                                                                         \
                    }                                                                             \
                }                                                                                 \
        }                                                                                         \
}                                                                                                 \
void warp_bwd_##SUF(const T *restrict go, const T *restrict xp, const T *restrict m,              \
                    T *restrict gxp, T *restrict gm, long N, long C, long H, long W, long K,      \
                    int nt) {                                                                     \
    long r = K / 2, Hp = H + 2 * r, Wp = W + 2 * r, K2 = K * K, B = rows_per_block(C, Wp, H);     \
    _Pragma("omp parallel for num_threads(nt) schedule(static)")                                  \
    for (long n = 0; n < N; n++)                                                                  \
        for (long y0 = 0; y0 < H; y0 += B) {                                                      \
            long y1 = y0 + B < H ? y0 + B : H;                                                    \
            for (long dy = -r; dy <= r; dy++)                                                     \
                for (long dx = -r; dx <= r; dx++) {                                               \
                    long i = (dy + r) * K + (dx + r);                                             \
                    for (long y = y0; y < y1; y++) {                                              \
                        const T *mi = m + ((n * K2 + i) * H + y) * W;                             \
                        if (gm) {                                                                 \
                            T *g = gm + ((n * K2 + i) * H + y) * W;                               \
                            for (long c = 0; c < C; c++) {                                        \
                                const T *s = xp + ((n * C + c) * Hp + (y - dy + r)) * Wp + (r - dx); \
                                const T *o = go + ((n * C + c) * H + y) * W;                      \
                                if (c == 0)                                                       \
                                    for (long x = 0; x < W; x++) g[x] = o[x] * s[x];              \
                                else                                                              \
                                    for (long x = 0; x < W; x++) g[x] += o[x] * s[x];             \
                            }                                                                     \
                        }                                                                         \
                        if (gxp)                                                                  \
                            for (long c = 0; c < C; c++) {                                        \
                                T *s = gxp + ((n * C + c) * Hp + (y - dy + r)) * Wp + (r - dx);   \
                                const T *o = go + ((n * C + c) * H + y) * W;                      \
                                for (long x = 0; x < W; x++) s[x] += o[x] * mi[x];                \
                            }                                                                     \
                    }                                                                             \
                }                                                                                 \
        }                                                                                         \
}                                                                                                 \
void softmax_bwd_##SUF(const T *restrict g, const T *restrict p, T *restrict out, long N, long K2, \
                       long HW, double tiny_d, int nt) {                                          \
    const T tiny = (T)tiny_d;                                                                     \
    _Pragma("omp parallel for num_threads(nt) collapse(2) schedule(static)")                      \
    for (long n = 0; n < N; n++)                                                                  \
        for (long j0 = 0; j0 < HW; j0 += 256) {                                                   \
            long len = HW - j0 < 256 ? HW - j0 : 256;                                             \
            T s[256];                                                                             \
            for (long b = 0; b < len; b++) s[b] = 0;                                              \
            for (long i = 0; i < K2; i++) {                                                       \
                const T *gi = g + (n * K2 + i) * HW + j0, *pi = p + (n * K2 + i) * HW + j0;       \
                for (long b = 0; b < len; b++) s[b] += gi[b] * pi[b];                             \
            }                                                                                     \
            for (long i = 0; i < K2; i++) {                                                       \
                const T *gi = g + (n * K2 + i) * HW + j0, *pi = p + (n * K2 + i) * HW + j0;       \
                T *oi = out + (n * K2 + i) * HW + j0;                                             \
                for (long b = 0; b < len; b++) {                                                  \
                    T v = pi[b] * (gi[b] - s[b]);                                                 \
                    oi[b] = (v < tiny && v > -tiny) ? (T)0 : v;                                   \
                }                                                                                 \
            }                                                                                     \
        }                                                                                         \
}
DEF(float, f32)
DEF(double, f64)
"""

_NATIVE_FLAGS = ("-O3", "-march=native", "-std=gnu99", "-shared", "-fPIC")
_BACKEND_ENV = "CGM_WARP"  # "taps" (default) or "native": which fast path adaptive_warp takes on CPU
BACKENDS = ("native", "taps")
# Opt-in: the compiled kernels buy the laptop training step only 3-7% (docs/performance.md), not
# worth a run-time C compiler by default. (They were suspected of a Jupyter hang that turned out to
# be the explorer's Output widget; docs/performance_warp.md.)
DEFAULT_BACKEND = "taps"
_native = {"tried": False, "lib": None, "error": None}
_backend = [settings.read().warp]


def _cpu_signature() -> str:
    """What -march=native depends on: the CPU's model and flags (a cached build is per CPU)."""
    try:
        with open("/proc/cpuinfo") as f:
            lines = [ln for ln in f if ln.startswith(("model name", "flags"))][:2]
    except OSError:
        lines = []
    return platform.machine() + platform.processor() + "".join(lines)


def _build_native(cc: str, out: Path) -> None:
    """Compile _NATIVE_SOURCE into the shared library `out` (with OpenMP when the compiler has it)."""
    out.parent.mkdir(parents=True, exist_ok=True)
    src = out.with_suffix(f".{os.getpid()}.c")
    tmp = out.with_suffix(f".{os.getpid()}.tmp")
    src.write_text(_NATIVE_SOURCE)
    try:
        errors = []
        for extra in (("-fopenmp",), ()):  # without OpenMP the pragmas are ignored: one thread
            cmd = [cc, *_NATIVE_FLAGS, *extra, str(src), "-o", str(tmp)]
            done = subprocess.run(cmd, capture_output=True, text=True)
            if done.returncode == 0:
                os.replace(tmp, out)  # atomic: concurrent processes may build the same file
                return
            errors.append(f"{' '.join(cmd)}: {done.stderr.strip()[-500:]}")
        raise RuntimeError("; ".join(errors))
    finally:
        src.unlink(missing_ok=True)
        tmp.unlink(missing_ok=True)


def _load_native():
    """The compiled kernels (ctypes.CDLL), built at first call; None (and the reason in
    `native_status()`) when no C compiler is found or the build or load fails."""
    if _native["tried"]:
        return _native["lib"]
    _native["tried"] = True
    cc = os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc") or shutil.which("clang")
    try:
        if cc is None:
            raise RuntimeError("no C compiler found (cc, gcc or clang on PATH, or $CC)")
        key = hashlib.sha256(
            "\n".join([_NATIVE_SOURCE, cc, *_NATIVE_FLAGS, _cpu_signature()]).encode()
        ).hexdigest()[:16]
        root = settings.read().native_cache
        path = root / f"warp_{key}.so"
        if not path.exists():
            try:
                _build_native(cc, path)
            except OSError:  # cache not writable: build in a temporary folder
                path = Path(tempfile.mkdtemp(prefix="cgm_native_")) / path.name
                _build_native(cc, path)
        lib = ctypes.CDLL(str(path))
        ptr, long_, int_ = ctypes.c_void_p, ctypes.c_long, ctypes.c_int
        for suffix in ("f32", "f64"):
            getattr(lib, f"warp_fwd_{suffix}").argtypes = [ptr] * 3 + [long_] * 5 + [int_]
            getattr(lib, f"warp_bwd_{suffix}").argtypes = [ptr] * 5 + [long_] * 5 + [int_]
            getattr(lib, f"softmax_bwd_{suffix}").argtypes = [ptr] * 3 + [long_] * 3 + [ctypes.c_double, int_]
        _native["lib"] = lib
    except (RuntimeError, OSError, AttributeError) as e:
        _native["error"] = str(e)
        warnings.warn(
            f"cgm.warp: the compiled Eq. 1 kernels are unavailable ({e}); using the PyTorch tap loop",
            RuntimeWarning,
            stacklevel=3,
        )
    return _native["lib"]


def native_status() -> str:
    """'available', or why the compiled kernels are not used (builds them if not tried yet)."""
    if _load_native() is not None:
        return "available"
    return f"unavailable: {_native['error']}"


def warp_backend() -> str:
    """The CPU path `adaptive_warp` takes: "taps" (default) or "native" (compiled kernels, when they build)."""
    return _backend[0]


def set_warp_backend(name: str) -> None:
    """Choose `adaptive_warp`'s CPU path: "native" or "taps" (also $CGM_WARP at import). Both
    compute Eq. 1 and its gradients; they differ only in speed and float rounding."""
    if name not in BACKENDS:
        raise ValueError(f"warp backend must be one of {BACKENDS}, got {name!r}")
    _backend[0] = name


@contextlib.contextmanager
def use_warp_backend(name: str):
    """`set_warp_backend(name)` for the duration of a with-block."""
    saved = warp_backend()
    set_warp_backend(name)
    try:
        yield
    finally:
        set_warp_backend(saved)


_NATIVE_DTYPES = {torch.float32: "f32", torch.float64: "f64"}


def _native_ok(x: torch.Tensor) -> bool:
    return (
        _backend[0] == "native"
        and x.device.type == "cpu"
        and x.dtype in _NATIVE_DTYPES
        and _load_native() is not None
    )


class _AdaptiveWarpNative(torch.autograd.Function):
    """Eq. 1 by the compiled kernels (first-order gradients only)."""

    @staticmethod
    def forward(ctx, x, m, k: int, padding: str):
        x, m = x.contiguous(), m.contiguous()
        n, c, h, w = x.shape
        xp = _pad(x, k // 2, padding).contiguous()
        out = torch.empty_like(x)
        fwd = getattr(_native["lib"], f"warp_fwd_{_NATIVE_DTYPES[x.dtype]}")
        fwd(xp.data_ptr(), m.data_ptr(), out.data_ptr(), n, c, h, w, k, torch.get_num_threads())
        ctx.save_for_backward(x, m)
        ctx.k, ctx.padding = k, padding
        return out

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_out):
        x, m = ctx.saved_tensors
        k, padding, r = ctx.k, ctx.padding, ctx.k // 2
        n, c, h, w = x.shape
        go = grad_out.contiguous()
        xp = _pad(x, r, padding).contiguous()
        need_x, need_m = ctx.needs_input_grad[:2]
        grad_xp = torch.zeros_like(xp) if need_x else None
        grad_m = torch.empty_like(m) if need_m else None
        bwd = getattr(_native["lib"], f"warp_bwd_{_NATIVE_DTYPES[x.dtype]}")
        bwd(
            go.data_ptr(),
            xp.data_ptr(),
            m.data_ptr(),
            grad_xp.data_ptr() if need_x else None,
            grad_m.data_ptr() if need_m else None,
            n,
            c,
            h,
            w,
            k,
            torch.get_num_threads(),
        )
        grad_x = _fold_padding(grad_xp, r, padding) if need_x else None
        return grad_x, grad_m, None, None


# --------------------------------------------------------------------------- filter normalisation


def _largest_subnormal(dtype: torch.dtype) -> float:
    """The float just below the smallest normal one of `dtype`: tiny - tiny * eps (exact)."""
    fi = torch.finfo(dtype)
    return fi.tiny * (1 - fi.eps)


def _flush_subnormal_(t: torch.Tensor) -> torch.Tensor:
    """Set |t| < the smallest normal float of t's dtype to zero, in place (what CPU flush-to-zero
    mode does to a result). One pass: hardshrink zeroes |t| <= the largest subnormal, i.e. exactly
    |t| < tiny; `t.masked_fill_(t.abs() < tiny, 0)` (the same values) took three passes and a
    temporary, 2.5-5x the time on the laptop's (16, 81, 64, 64) gradient (docs/performance.md)."""
    if t.dtype.is_floating_point:
        torch.ops.aten.hardshrink.out(t, _largest_subnormal(t.dtype), out=t)
    return t


class _SoftmaxFilters(torch.autograd.Function):
    """Softmax over dim 1 whose output and input gradient carry no subnormal floats.

    The forward flushes with one in-place threshold (probabilities are never negative). With the "native"
    backend on CPU (float32/float64) the backward is one compiled pass per block of pixels
    (p * (g - sum_i g_i p_i), then the flush); otherwise plain PyTorch ops. Same values up to the
    order of the sum over the taps."""

    @staticmethod
    def forward(ctx, logits):
        p = torch.softmax(logits, dim=1)
        ctx.native = _native_ok(p) and p.is_contiguous()
        F.threshold_(p, _largest_subnormal(p.dtype), 0.0)  # p < tiny -> 0 in one pass: p is never negative
        ctx.save_for_backward(p)
        return p

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_p):
        (p,) = ctx.saved_tensors
        if ctx.native and p.ndim >= 2:
            g = grad_p.contiguous()
            out = torch.empty_like(p)
            n, taps = p.shape[0], p.shape[1]
            fn = getattr(_native["lib"], f"softmax_bwd_{_NATIVE_DTYPES[p.dtype]}")
            pixels = p[0, 0].numel()
            fn(
                g.data_ptr(),
                p.data_ptr(),
                out.data_ptr(),
                n,
                taps,
                pixels,
                torch.finfo(p.dtype).tiny,
                torch.get_num_threads(),
            )
            return out
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
