"""Eq. 1 warp: fast path vs unfold reference, gradients, sign convention, motion-map utilities."""

import shutil

import pytest
import torch

from cgm import warp as warp_module
from cgm.warp import (
    adaptive_warp,
    adaptive_warp_native,
    adaptive_warp_reference,
    adaptive_warp_taps,
    dilate_motion,
    identity_motion,
    motion_to_flow,
    softmax_filters,
    softmax_filters_reference,
    upsample_motion,
    use_warp_backend,
)

PADDINGS = ["border", "zeros"]


pytestmark = pytest.mark.usefixtures("seeded_one_thread")


def one_hot_motion(n, k, h, w, dy, dx, dtype=torch.float32):
    r = k // 2
    m = torch.zeros(n, k * k, h, w, dtype=dtype)
    m[:, (dy + r) * k + (dx + r)] = 1
    return m


# --------------------------------------------------------------------------- gradients


@pytest.mark.parametrize("padding", PADDINGS)
@pytest.mark.parametrize(
    "k", [1, pytest.param(3, marks=pytest.mark.slow), pytest.param(5, marks=pytest.mark.slow)]
)
def test_gradcheck(padding, k):
    for c in (2, 6):  # both ways of computing grad_m (few / many channels)
        x = torch.randn(2, c, 4, 5, dtype=torch.float64, requires_grad=True)
        m = torch.randn(2, k * k, 4, 5, dtype=torch.float64, requires_grad=True)
        for warp in (adaptive_warp_taps, adaptive_warp):  # the tap loop, and the CPU default
            assert torch.autograd.gradcheck(lambda x, m, warp=warp: warp(x, m, padding), (x, m))


@pytest.mark.parametrize("padding,k", [("border", 3), ("zeros", 1)])
def test_gradcheck_reference(padding, k):
    x = torch.randn(1, 2, 4, 3, dtype=torch.float64, requires_grad=True)
    m = torch.randn(1, k * k, 4, 3, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda x, m: adaptive_warp_reference(x, m, padding), (x, m))


# --------------------------------------------------------------------------- fast == reference


def _values_and_grads(fn, x, m, grad, padding):
    x = x.detach().requires_grad_(True)
    m = m.detach().requires_grad_(True)
    out = fn(x, m, padding)
    gx, gm = torch.autograd.grad(out, (x, m), grad)
    return out, gx, gm


@pytest.mark.parametrize("padding", PADDINGS)
@pytest.mark.parametrize("k", [3, 5, 9])
@pytest.mark.parametrize("c", [3, 8])  # both ways of computing grad_m (few / many channels)
@pytest.mark.parametrize("dtype,tol", [(torch.float64, 1e-10), (torch.float32, 1e-4)])
def test_fast_matches_reference(padding, k, c, dtype, tol):
    x = torch.randn(3, c, 11, 17, dtype=dtype)  # non-square, H and W both smaller than 2K
    m = torch.randn(3, k * k, 11, 17, dtype=dtype)
    grad = torch.randn(3, c, 11, 17, dtype=dtype)
    fast = _values_and_grads(adaptive_warp_taps, x, m, grad, padding)
    ref = _values_and_grads(adaptive_warp_reference, x, m, grad, padding)
    for a, b, what in zip(fast, ref, ("out", "grad_x", "grad_m")):
        assert a.dtype == dtype and a.shape == b.shape, what
        torch.testing.assert_close(a, b, atol=tol, rtol=tol, msg=what)


@pytest.mark.parametrize("padding", PADDINGS)
def test_fast_matches_reference_bfloat16_loosely(padding):
    k = 3
    x = torch.randn(2, 3, 9, 13)
    m = torch.randn(2, k * k, 9, 13).softmax(1)  # normalised filters: outputs of order 1
    grad = torch.randn(2, 3, 9, 13)
    exact = _values_and_grads(adaptive_warp_reference, x.double(), m.double(), grad.double(), padding)
    fast = _values_and_grads(adaptive_warp, x.bfloat16(), m.bfloat16(), grad.bfloat16(), padding)
    for a, b, what in zip(fast, exact, ("out", "grad_x", "grad_m")):
        assert a.dtype == torch.bfloat16, what
        err = (a.double() - b).abs().max().item()
        assert err < 0.1 * max(1.0, b.abs().max().item()), (what, err)


def test_non_contiguous_inputs():
    x = torch.randn(2, 8, 3, 10).permute(0, 2, 3, 1)[..., :7]  # (2, 3, 10, 7), non-contiguous
    m = torch.randn(2, 10, 7, 9).permute(0, 3, 1, 2)  # (2, 9, 10, 7)
    torch.testing.assert_close(adaptive_warp(x, m), adaptive_warp_reference(x, m))


def test_only_one_input_needs_grad():
    x = torch.randn(1, 2, 6, 5)
    m = torch.randn(1, 9, 6, 5, requires_grad=True)
    adaptive_warp(x, m).sum().backward()
    ref_m = m.detach().requires_grad_(True)
    adaptive_warp_reference(x, ref_m).sum().backward()
    torch.testing.assert_close(m.grad, ref_m.grad)


# --------------------------------------------------------------------------- compiled kernels

needs_native = pytest.mark.skipif(
    warp_module.native_status() != "available", reason=f"compiled warp {warp_module.native_status()}"
)


def test_native_builds_where_a_compiler_exists():
    # Otherwise a kernel that no longer compiles would only show as skipped tests.
    if not any(shutil.which(cc) for cc in ("cc", "gcc", "clang")):
        pytest.skip("no C compiler on PATH")
    assert warp_module.native_status() == "available"


@needs_native
@pytest.mark.parametrize("padding", PADDINGS)
@pytest.mark.parametrize("k", [1, 3, 9])
@pytest.mark.parametrize("c", [1, 3, 8])
@pytest.mark.parametrize("dtype,tol", [(torch.float64, 1e-10), (torch.float32, 1e-4)])
def test_native_matches_reference(padding, k, c, dtype, tol):
    x = torch.randn(3, c, 11, 17, dtype=dtype)  # non-square, H and W both smaller than 2K
    m = torch.randn(3, k * k, 11, 17, dtype=dtype)
    grad = torch.randn(3, c, 11, 17, dtype=dtype)
    native = _values_and_grads(adaptive_warp_native, x, m, grad, padding)
    ref = _values_and_grads(adaptive_warp_reference, x, m, grad, padding)
    for a, b, what in zip(native, ref, ("out", "grad_x", "grad_m")):
        assert a.dtype == dtype and a.shape == b.shape, what
        torch.testing.assert_close(a, b, atol=tol, rtol=tol, msg=what)


@needs_native
@pytest.mark.parametrize("padding", PADDINGS)
def test_native_gradcheck_and_partial_grads(padding):
    x = torch.randn(2, 3, 5, 6, dtype=torch.float64, requires_grad=True)
    m = torch.randn(2, 9, 5, 6, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda x, m: adaptive_warp_native(x, m, padding), (x, m))
    for wants in ((True, False), (False, True)):
        xs, ms = x.detach().requires_grad_(wants[0]), m.detach().requires_grad_(wants[1])
        xr, mr = x.detach().requires_grad_(wants[0]), m.detach().requires_grad_(wants[1])
        adaptive_warp_native(xs, ms, padding).square().sum().backward()
        adaptive_warp_reference(xr, mr, padding).square().sum().backward()
        for a, b in ((xs, xr), (ms, mr)):
            assert (a.grad is None) == (b.grad is None)
            if a.grad is not None:
                torch.testing.assert_close(a.grad, b.grad)


@needs_native
def test_backend_switch_picks_the_path(monkeypatch):
    x, m = torch.randn(1, 2, 5, 5), torch.randn(1, 9, 5, 5)
    calls = []
    monkeypatch.setattr(warp_module._AdaptiveWarpNative, "apply", lambda *a: calls.append("native"))
    monkeypatch.setattr(warp_module._AdaptiveWarp, "apply", lambda *a: calls.append("taps"))
    with use_warp_backend("taps"):
        adaptive_warp(x, m)
    with use_warp_backend("native"):
        adaptive_warp(x, m)
        adaptive_warp(x.bfloat16(), m.bfloat16())  # no kernel for bfloat16: the tap loop
    assert calls == ["taps", "native", "taps"]
    with pytest.raises(ValueError, match="backend must be one of"):
        warp_module.set_warp_backend("fused")


def test_the_tap_loop_is_the_default():
    assert warp_module.DEFAULT_BACKEND == "taps"  # native is opt-in (a Jupyter-kernel hang)


def test_no_compiler_falls_back_to_the_tap_loop(monkeypatch, tmp_path):
    for key, value in {"tried": False, "lib": None, "error": None}.items():
        monkeypatch.setitem(warp_module._native, key, value)
    monkeypatch.setenv("CC", str(tmp_path / "no-such-cc"))
    monkeypatch.setenv("CGM_NATIVE_CACHE", str(tmp_path / "cache"))
    x, m = torch.randn(2, 3, 6, 7), torch.randn(2, 25, 6, 7)
    with (
        use_warp_backend("native"),
        pytest.warns(RuntimeWarning, match="compiled Eq. 1 kernels are unavailable"),
    ):
        out = adaptive_warp(x, m)
    torch.testing.assert_close(out, adaptive_warp_taps(x, m))
    assert warp_module.native_status().startswith("unavailable: ")
    with pytest.raises(RuntimeError, match="compiled warp is unavailable"):
        adaptive_warp_native(x, m)


# --------------------------------------------------------------------------- sign convention


@pytest.mark.parametrize("dy,dx", [(0, 1), (1, 0), (-2, 1), (2, -2), (-1, -1)])
@pytest.mark.parametrize("warp", [adaptive_warp, adaptive_warp_taps, adaptive_warp_reference])
def test_one_hot_tap_moves_content_by_dx_dy(warp, dy, dx):
    k, h, w = 5, 12, 15
    x = torch.randn(1, 3, h, w)
    out = warp(x, one_hot_motion(1, k, h, w, dy, dx))
    # Content at (y, x) in the input is found at (y + dy, x + dx) in the output.
    r = k // 2
    inner = (slice(None), slice(None), slice(r, h - r), slice(r, w - r))
    torch.testing.assert_close(out[inner], torch.roll(x, shifts=(dy, dx), dims=(2, 3))[inner])
    # A bright dot moves by (+dx, +dy).
    dot = torch.zeros(1, 1, h, w)
    dot[0, 0, 6, 7] = 1
    moved = warp(dot, one_hot_motion(1, k, h, w, dy, dx))
    assert moved[0, 0, 6 + dy, 7 + dx] == 1 and moved.sum() == 1


@pytest.mark.parametrize("dy,dx", [(0, 1), (-2, 1), (1, -1)])
def test_motion_to_flow_of_one_hot(dy, dx):
    flow = motion_to_flow(one_hot_motion(2, 5, 4, 6, dy, dx))
    assert flow.shape == (2, 2, 4, 6)
    assert torch.all(flow[:, 0] == dx) and torch.all(flow[:, 1] == dy)


def test_motion_to_flow_is_weighted_sum():
    m = torch.zeros(1, 9, 1, 1)
    m[0, 5] = 0.25  # tap (dy, dx) = (0, 1)
    m[0, 1] = 0.75  # tap (-1, 0)
    flow = motion_to_flow(m)
    torch.testing.assert_close(flow.flatten(), torch.tensor([0.25, -0.75]))


@pytest.mark.parametrize("padding", PADDINGS)
@pytest.mark.parametrize("k", [1, 3, 7])
def test_identity_motion_reproduces_input(k, padding):
    x = torch.randn(2, 3, 6, 8)
    m = identity_motion(2, k, 6, 8)
    assert m.shape == (2, k * k, 6, 8) and m.dtype == torch.float32
    assert torch.equal(adaptive_warp(x, m, padding), x)
    assert torch.equal(motion_to_flow(m), torch.zeros(2, 2, 6, 8))


def test_border_padding_clamps_and_zeros_padding_drops():
    x = torch.arange(1.0, 5.0).view(1, 1, 1, 4).expand(1, 1, 3, 4).contiguous()
    m = one_hot_motion(1, 3, 3, 4, 0, 1)  # out[x] = in[x - 1]
    assert adaptive_warp(x, m, "border")[0, 0, 0].tolist() == [1, 1, 2, 3]
    assert adaptive_warp(x, m, "zeros")[0, 0, 0].tolist() == [0, 1, 2, 3]


# --------------------------------------------------------------------------- dilation, upsampling


@pytest.mark.parametrize("scale", [1, 2, 4])
@pytest.mark.parametrize("dy,dx", [(0, 0), (1, -1), (-1, 0)])
def test_dilate_one_hot_tap(scale, dy, dx):
    m = one_hot_motion(2, 3, 4, 5, dy, dx)
    d = dilate_motion(m, scale)
    k_hr = 2 * scale + 1
    assert d.shape == (2, k_hr * k_hr, 4, 5)
    torch.testing.assert_close(d, one_hot_motion(2, k_hr, 4, 5, dy * scale, dx * scale))
    # The displacement scales with the filter.
    torch.testing.assert_close(motion_to_flow(d), scale * motion_to_flow(m))


def test_dilate_keeps_weights_and_zero_holes():
    m = torch.randn(1, 9, 2, 2)
    d = dilate_motion(m, 3).view(1, 7, 7, 2, 2)
    torch.testing.assert_close(d[:, ::3, ::3], m.view(1, 3, 3, 2, 2))
    assert d.abs().sum() == pytest.approx(m.abs().sum().item(), rel=1e-6)


@pytest.mark.parametrize("mode", ["nearest", "bilinear"])
@pytest.mark.parametrize("scale", [1, 2, 4])
def test_upsample_motion_shapes(mode, scale):
    m = torch.randn(2, 9, 5, 7)
    up = upsample_motion(m, scale, mode=mode)
    k_hr = 2 * scale + 1
    assert up.shape == (2, k_hr * k_hr, 5 * scale, 7 * scale)
    if scale == 1:
        torch.testing.assert_close(up, m)


@pytest.mark.parametrize("mode", ["nearest", "bilinear"])
def test_upsampled_identity_is_identity(mode):
    up = upsample_motion(identity_motion(1, 3, 4, 6), 4, mode=mode)
    torch.testing.assert_close(up, identity_motion(1, 9, 16, 24))
    x = torch.randn(1, 3, 16, 24)
    torch.testing.assert_close(adaptive_warp(x, up), x)


def test_upsampled_uniform_motion_scales_flow():
    # A map that is one-hot at (0, 1) everywhere: 1 LR pixel right = `scale` HR pixels right.
    up = upsample_motion(one_hot_motion(1, 3, 4, 4, 0, 1), 4, mode="bilinear")
    flow = motion_to_flow(up)
    assert torch.allclose(flow[:, 0], torch.tensor(4.0)) and torch.allclose(flow[:, 1], torch.tensor(0.0))


# --------------------------------------------------------------------------- invalid input


@pytest.mark.parametrize(
    "x_shape,m_shape,padding,match",
    [
        ((1, 3, 5, 5), (1, 4, 5, 5), "border", "even"),  # K = 2
        ((1, 3, 5, 5), (1, 8, 5, 5), "border", "not a square"),
        ((1, 3, 5, 5), (2, 9, 5, 5), "border", "must agree in N, H and W"),
        ((1, 3, 5, 5), (1, 9, 5, 6), "border", "must agree in N, H and W"),
        ((1, 3, 5, 5), (1, 9, 4, 5), "border", "must agree in N, H and W"),
        ((3, 5, 5), (1, 9, 5, 5), "border", r"x must be frames \(N, C, H, W\)"),
        ((1, 3, 5, 5), (9, 5, 5), "border", r"m must be a motion map \(N, K\*K, H, W\)"),
        ((1, 3, 5, 5), (1, 9, 5, 5), "reflect", "padding must be one of"),
    ],
)
@pytest.mark.parametrize("warp", [adaptive_warp, adaptive_warp_reference])
def test_invalid_warp_input(warp, x_shape, m_shape, padding, match):
    with pytest.raises(ValueError, match=match):
        warp(torch.zeros(x_shape), torch.zeros(m_shape), padding)


def test_invalid_dtype_mix():
    with pytest.raises(ValueError, match="share dtype and device"):
        adaptive_warp(torch.zeros(1, 3, 4, 4), torch.zeros(1, 9, 4, 4, dtype=torch.float64))


@pytest.mark.parametrize("scale", [0, -1, 1.5])
def test_invalid_scale(scale):
    with pytest.raises(ValueError, match="scale must be an integer >= 1"):
        dilate_motion(torch.zeros(1, 9, 2, 2), scale)
    with pytest.raises(ValueError, match="scale must be an integer >= 1"):
        upsample_motion(torch.zeros(1, 9, 2, 2), scale)


def test_invalid_mode_and_maps():
    with pytest.raises(ValueError, match="mode must be one of"):
        upsample_motion(torch.zeros(1, 9, 2, 2), 2, mode="bicubic")
    with pytest.raises(ValueError, match="even"):
        dilate_motion(torch.zeros(1, 16, 2, 2), 2)
    with pytest.raises(ValueError, match="not a square"):
        motion_to_flow(torch.zeros(1, 5, 2, 2))
    with pytest.raises(ValueError, match="odd filter size"):
        identity_motion(1, 4, 2, 2)


# --------------------------------------------------------------------------- softmax_filters


def _subnormal(t):
    return ((t != 0) & (t.abs() < torch.finfo(t.dtype).tiny)).any().item()


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16])
def test_flush_subnormal_is_the_masked_fill_it_replaced(dtype):
    # the one-pass hardshrink must zero exactly |t| < tiny: at the boundary, NaN and inf as well
    fi = torch.finfo(dtype)
    bits = {torch.float32: (torch.int32, 0x007FFFFF), torch.float64: (torch.int64, 0x000FFFFFFFFFFFFF)}
    int_dtype, pattern = bits.get(dtype, (torch.int16, 0x007F))  # all mantissa bits, exponent 0
    largest_sub = torch.tensor(pattern, dtype=int_dtype).view(dtype)
    edge = torch.tensor(
        [fi.tiny, -fi.tiny, 0.0, -0.0, float("nan"), float("inf"), -float("inf"), 1.0], dtype=dtype
    )
    t = torch.cat(
        [edge, largest_sub.view(1), -largest_sub.view(1), torch.randn(500, dtype=dtype) * fi.tiny * 4]
    )
    assert (t.abs() < fi.tiny).sum() > 10 and largest_sub < fi.tiny  # subnormals present
    expected = t.masked_fill(t.abs() < fi.tiny, 0)
    out = t.clone()
    assert warp_module._flush_subnormal_(out) is out
    torch.testing.assert_close(out, expected, rtol=0, atol=0, equal_nan=True)


@pytest.mark.parametrize("backend", ["native", "taps"])
def test_softmax_filters_gradcheck(backend):
    logits = torch.randn(2, 9, 3, 4, dtype=torch.float64, requires_grad=True)
    with use_warp_backend(backend):
        assert torch.autograd.gradcheck(softmax_filters, (logits,))


@pytest.mark.parametrize("backend", ["native", "taps"])
@pytest.mark.parametrize("shape", [(3, 81, 6, 5), (2, 9, 23, 29)])  # pixels: < and > one block of 256
def test_softmax_filters_matches_reference_and_has_no_subnormals(backend, shape):
    logits = torch.randn(*shape) * 40  # saturated: many taps fall below 1.2e-38
    grad = torch.randn(*shape) * 1e-3
    plain = logits.softmax(1)
    assert _subnormal(plain)  # the case the flush is for
    outs = []
    for fn in (softmax_filters, softmax_filters_reference):
        x = logits.clone().requires_grad_(True)
        with use_warp_backend(backend):
            p = fn(x)
            (g,) = torch.autograd.grad(p, x, grad)
        outs.append((p, g))
    (p, g), (p_ref, g_ref) = outs
    torch.testing.assert_close(p, p_ref, rtol=0, atol=0)
    torch.testing.assert_close(p, plain, rtol=0, atol=torch.finfo(torch.float32).tiny)
    torch.testing.assert_close(g, g_ref, rtol=1e-5, atol=1e-30)
    assert not _subnormal(p) and not _subnormal(g)
    torch.testing.assert_close(p.sum(1), torch.ones(shape[0], *shape[2:]))
