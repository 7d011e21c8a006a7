"""cgm.fastconv: Winograd F(4x4, 3x3) against F.conv2d (values and gradients), the dispatch rules,
and CGM-Net's step under the fast and the direct backends."""

import pytest
import torch
import torch.nn.functional as F

from cgm import fastconv
from cgm.fastconv import conv2d_3x3, conv2d_3x3_reference, use_conv_backend, winograd_conv2d_3x3

pytestmark = pytest.mark.usefixtures("seeded_one_thread")


def _grads(fn, x, w, b, go):
    out = fn(x, w, b)
    return (out, *torch.autograd.grad(out, [t for t in (x, w, b) if t is not None], go))


@pytest.mark.parametrize("shape", [(2, 5, 16, 16), (3, 7, 15, 13), (1, 4, 1, 1), (2, 3, 4, 9), (1, 2, 6, 5)])
@pytest.mark.parametrize("with_bias", [True, False])
def test_winograd_matches_a_float64_convolution_in_values_and_gradients(shape, with_bias):
    """Relative to the largest value: Winograd F(4x4, 3x3) in float32 within 5e-5 of a float64
    convolution (measured ~7e-6; oneDNN's direct float32 conv ~2e-6), for the output and the
    gradients of input, weight and bias, at sizes that are and are not multiples of the tile."""
    n, c, h, w = shape
    x = torch.randn(n, c, h, w, requires_grad=True)
    weight = torch.randn(6, c, 3, 3, requires_grad=True)
    bias = torch.randn(6, requires_grad=True) if with_bias else None
    go = torch.randn(n, 6, h, w)
    ref = _grads(
        conv2d_3x3_reference,
        x.double(),
        weight.double(),
        None if bias is None else bias.double(),
        go.double(),
    )
    got = _grads(winograd_conv2d_3x3, x, weight, bias, go)
    assert got[0].shape == (n, 6, h, w)
    for a, r in zip(got, ref):
        assert a.dtype == torch.float32
        scale = r.abs().max().item()
        assert (a.double() - r).abs().max().item() <= 5e-5 * scale


@pytest.mark.parametrize("shape, shuffle", [((2, 5, 16, 16), 4), ((3, 7, 15, 13), 2), ((1, 3, 5, 6), 3)])
def test_winograd_with_pixel_shuffle_matches_conv_then_shuffle_in_float64(shape, shuffle):
    """The shuffle is done by the output copy (no separate pixel-shuffle pass): values and the
    gradients of input, weight and bias equal F.pixel_shuffle(F.conv2d(...)) in float64 within
    5e-5 of the largest value, also where the output is cropped to a size not a multiple of 4."""
    n, c, h, w = shape
    k = 2 * shuffle * shuffle
    x = torch.randn(n, c, h, w, requires_grad=True)
    weight = torch.randn(k, c, 3, 3, requires_grad=True)
    bias = torch.randn(k, requires_grad=True)
    go = torch.randn(n, 2, h * shuffle, w * shuffle)

    def shuffled(fn):
        return lambda x, w, b: fn(x, w, b, shuffle)

    ref = _grads(shuffled(conv2d_3x3_reference), x.double(), weight.double(), bias.double(), go.double())
    got = _grads(shuffled(winograd_conv2d_3x3), x, weight, bias, go)
    assert got[0].shape == (n, 2, h * shuffle, w * shuffle)
    for a, r in zip(got, ref):
        assert (a.double() - r).abs().max().item() <= 5e-5 * r.abs().max().item()
    # the reference is the plain conv then F.pixel_shuffle
    plain = F.pixel_shuffle(F.conv2d(x.double(), weight.double(), bias.double(), padding=1), shuffle)
    assert torch.equal(ref[0], plain)


def test_winograd_input_gradient_only_when_asked():
    """With frozen weights (the backward skips the weight gradient) the input gradient is right."""
    x = torch.randn(1, 3, 8, 8, requires_grad=True)
    weight = torch.randn(4, 3, 3, 3)
    out = winograd_conv2d_3x3(x, weight, None)
    (gx,) = torch.autograd.grad(out.sum(), [x])
    xd = x.detach().double().requires_grad_()
    (ref,) = torch.autograd.grad(conv2d_3x3_reference(xd, weight.double(), None).sum(), [xd])
    assert (gx.double() - ref).abs().max().item() <= 5e-5 * ref.abs().max().item()


def test_winograd_is_not_the_direct_convolution_renamed():
    """It computes the same function by other arithmetic: equal to float rounding, not bitwise."""
    x, w, b = torch.randn(2, 8, 12, 12), torch.randn(16, 8, 3, 3), torch.randn(16)
    a, r = winograd_conv2d_3x3(x, w, b), conv2d_3x3_reference(x, w, b)
    assert torch.allclose(a, r, rtol=1e-4, atol=1e-4)
    assert not torch.equal(a, r)


def test_winograd_rejects_what_it_does_not_compute():
    with pytest.raises(ValueError, match="3x3 weight"):
        winograd_conv2d_3x3(torch.randn(1, 3, 8, 8), torch.randn(4, 3, 5, 5), None)
    with pytest.raises(ValueError, match="3x3 weight"):
        winograd_conv2d_3x3(torch.randn(1, 2, 8, 8), torch.randn(4, 3, 3, 3), None)
    with pytest.raises(ValueError, match="shuffle must be"):
        winograd_conv2d_3x3(torch.randn(1, 3, 8, 8), torch.randn(6, 3, 3, 3), None, 2)
    with pytest.raises(ValueError, match="shuffle must be"):
        conv2d_3x3_reference(torch.randn(1, 3, 8, 8), torch.randn(4, 3, 3, 3), None, 0)


def test_dispatch_picks_winograd_only_on_cpu_float32_without_autocast(monkeypatch):
    calls = []
    real = fastconv.winograd_conv2d_3x3
    monkeypatch.setattr(fastconv, "winograd_conv2d_3x3", lambda *a: calls.append(1) or real(*a))
    x, w, b = torch.randn(1, 3, 8, 8), torch.randn(4, 3, 3, 3), torch.zeros(4)
    conv2d_3x3(x, w, b)
    assert len(calls) == 1
    with use_conv_backend("direct"):
        assert torch.equal(conv2d_3x3(x, w, b), F.conv2d(x, w, b, padding=1))
    conv2d_3x3(x.double(), w.double(), b.double())
    with torch.autocast("cpu", dtype=torch.bfloat16):
        conv2d_3x3(x, w, b)
    monkeypatch.setattr(fastconv, "WINOGRAD_MAX_BYTES", 0)  # too big a product: direct
    assert torch.equal(conv2d_3x3(x, w, b), F.conv2d(x, w, b, padding=1))
    assert len(calls) == 1


@pytest.mark.parametrize("kernel, stride", [((3, 3, 3), 1), ((3, 7, 7), 1), ((3, 3, 3), 2), ((1, 1, 1), 2)])
def test_conv3d_matches_nn_conv3d_in_values_gradients_and_state(kernel, stride):
    """fastconv.Conv3d (channels-last inside on CPU) is nn.Conv3d to float rounding, with the same
    parameters and state_dict, and hands back the default layout."""
    torch.manual_seed(0)
    fast = fastconv.Conv3d(5, 7, kernel, stride, padding=tuple(k // 2 for k in kernel), bias=False)
    plain = torch.nn.Conv3d(5, 7, kernel, stride, padding=tuple(k // 2 for k in kernel), bias=False)
    plain.load_state_dict(fast.state_dict())
    assert isinstance(fast, torch.nn.Conv3d) and fast.state_dict().keys() == plain.state_dict().keys()
    x = torch.randn(2, 5, 4, 12, 10, requires_grad=True)
    outs, grads = [], []
    for conv in (fast, plain):
        out = conv(x)
        outs.append(out)
        grads.append(torch.autograd.grad(out, (x, conv.weight), torch.ones_like(out) + out.detach()))
    assert outs[0].is_contiguous() and outs[0].shape == outs[1].shape
    seen = []  # what nn.Conv3d's convolution receives inside fastconv.Conv3d: a channels-last copy
    real = torch.nn.Conv3d._conv_forward
    torch.nn.Conv3d._conv_forward = lambda self, x, w, b: seen.append(x) or real(self, x, w, b)
    try:
        fast(x)
        with use_conv_backend("direct"):
            fast(x)
    finally:
        torch.nn.Conv3d._conv_forward = real
    assert seen[0].is_contiguous(memory_format=torch.channels_last_3d) and seen[1] is x
    assert torch.allclose(outs[0], outs[1], rtol=1e-5, atol=1e-5)
    for a, b in zip(grads[0], grads[1]):
        assert torch.allclose(a, b, rtol=1e-4, atol=1e-4)


def test_bad_backend_name():
    with pytest.raises(ValueError, match="conv backend"):
        fastconv.set_conv_backend("winograd")


def test_cgm_net_step_agrees_under_both_backends(monkeypatch):
    """The smoke CGM-Net's forward and its gradients under the fast backend (Winograd CGMUL conv,
    channels-last inside the 3D convs) equal the direct backend's to float rounding (measured:
    every gradient within 6e-6 of float64's, relative to its largest entry, under both)."""
    from cgm import experiments as ex

    cfg = ex.resolve("table6/cgmul", clip_len=4)
    torch.manual_seed(0)
    model = ex.build_model(cfg).train()
    clip = torch.rand(2, 3, 4, cfg.model.size, cfg.model.size) * 2 - 1
    calls = []  # CGMUL's conv goes through Winograd under "fast" only
    real = fastconv.winograd_conv2d_3x3
    monkeypatch.setattr(fastconv, "winograd_conv2d_3x3", lambda *a: calls.append(1) or real(*a))
    results = {}
    for backend in ("direct", "fast"):
        torch.manual_seed(1)  # dropout, if any, draws the same
        with use_conv_backend(backend):
            out = model(clip)
            loss = out.hr_maps.square().mean() + out.lr_maps.square().mean()
            grads = torch.autograd.grad(loss, [p for p in model.parameters() if p.requires_grad])
        results[backend] = (out.hr_maps.detach(), grads)
    assert len(calls) == 1
    (hr_d, g_d), (hr_f, g_f) = results["direct"], results["fast"]
    assert torch.allclose(hr_f, hr_d, rtol=1e-4, atol=1e-6)
    for a, b in zip(g_f, g_d):
        assert (a - b).abs().max().item() <= 1e-4 * b.abs().max().item()
