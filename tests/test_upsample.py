"""Eqs. 2-5: similarity map, CGMUL, and the nearest/bilinear baselines."""

import pytest
import torch

from cgm.upsample import CGMUL, BilinearMotionUpsampler, NearestMotionUpsampler, similarity_map
from cgm.warp import identity_motion, upsample_motion

pytestmark = pytest.mark.usefixtures("seeded_one_thread")


def features(n=2, c=4, h=5, w=6, k=3, dtype=torch.float32):
    return (
        torch.randn(n, c, h, w, dtype=dtype),
        torch.randn(n, k * k, h, w, dtype=dtype),
        torch.randn(n, c, h, w, dtype=dtype),
    )


def similarity_by_loops(f_context, m_lr, f_motion):
    """Eq. 2 written out: S(y,x) = 1/C sum_c sum_(dy,dx) M(tap,y,x) F_motion(c,y,x) F_context(c,y-dy,x-dx),
    with reads clamped to the frame (border padding)."""
    n_, c_, h_, w_ = f_context.shape
    k = int(m_lr.shape[1] ** 0.5)
    r = k // 2
    s = torch.zeros(n_, 1, h_, w_, dtype=f_context.dtype)
    for n in range(n_):
        for y in range(h_):
            for x in range(w_):
                total = 0.0
                for c in range(c_):
                    for dy in range(-r, r + 1):
                        for dx in range(-r, r + 1):
                            yy = min(max(y - dy, 0), h_ - 1)
                            xx = min(max(x - dx, 0), w_ - 1)
                            tap = (dy + r) * k + (dx + r)
                            total += m_lr[n, tap, y, x] * f_motion[n, c, y, x] * f_context[n, c, yy, xx]
                s[n, 0, y, x] = total / c_
    return s


@pytest.mark.parametrize("k", [1, 3])
def test_similarity_map_is_eq2(k):
    f_context, m_lr, f_motion = features(n=2, c=3, h=4, w=5, k=k, dtype=torch.float64)
    s = similarity_map(f_context, m_lr, f_motion)
    assert s.shape == (2, 1, 4, 5)
    torch.testing.assert_close(s, similarity_by_loops(f_context, m_lr, f_motion))


def test_similarity_map_with_identity_motion_is_channel_mean_product():
    f_context, _, f_motion = features()
    s = similarity_map(f_context, identity_motion(2, 3, 5, 6), f_motion)
    torch.testing.assert_close(s, (f_context * f_motion).mean(1, keepdim=True))


@pytest.mark.parametrize("scale", [1, 2, 4])
def test_cgmul_shapes_and_gradients_reach_all_inputs(scale):
    k_lr, k_hr, c = 3, (3 - 1) * scale + 1, 4
    layer = CGMUL(channels=c, k_lr=k_lr, k_hr=k_hr, scale=scale)
    assert layer.k_hr == k_hr
    assert layer.conv.in_channels == 4 * c + 1 and layer.conv.out_channels == scale**2 * k_hr**2
    f_context, m_lr, f_motion = (t.requires_grad_(True) for t in features(c=c, k=k_lr))
    m_hr = layer(f_context, m_lr, f_motion)
    assert m_hr.shape == (2, k_hr * k_hr, 5 * scale, 6 * scale)
    assert torch.isfinite(m_hr).all()
    m_hr.square().sum().backward()
    for name, t in [
        ("f_context", f_context),
        ("m_lr", m_lr),
        ("f_motion", f_motion),
        ("conv.weight", layer.conv.weight),
        ("conv.bias", layer.conv.bias),
    ]:
        assert t.grad is not None and t.grad.abs().sum() > 0, name


def test_cgmul_output_is_small_at_init():
    layer = CGMUL(channels=8, k_lr=3, k_hr=9, scale=4)
    m_hr = layer(*features(c=8))
    assert 0 < m_hr.std().item() < 1.0


def test_cgmul_pixel_shuffle_layout():
    # Conv channel c*r*r + r*oy + ox lands at HR tap c, pixel (r*y + oy, r*x + ox).
    scale, k_hr = 2, 3
    layer = CGMUL(channels=2, k_lr=3, k_hr=k_hr, scale=scale)
    with torch.no_grad():
        layer.conv.weight.zero_()
        layer.conv.bias.copy_(torch.arange(float(scale * scale * k_hr * k_hr)))
    m_hr = layer(*features(n=1, c=2, h=2, w=3))
    tap, oy, ox = 4, 1, 0
    assert torch.all(m_hr[0, tap, oy::scale, ox::scale] == tap * scale * scale + scale * oy + ox)


@pytest.mark.parametrize(
    "cls,mode", [(NearestMotionUpsampler, "nearest"), (BilinearMotionUpsampler, "bilinear")]
)
@pytest.mark.parametrize("scale", [1, 2, 4])
def test_fixed_upsamplers(cls, mode, scale):
    up = cls(k_lr=3, scale=scale)
    assert up.k_hr == 2 * scale + 1 and len(list(up.parameters())) == 0
    f_context, m_lr, f_motion = features()
    m_hr = up(f_context, m_lr, f_motion)
    assert m_hr.shape == (2, up.k_hr**2, 5 * scale, 6 * scale)
    torch.testing.assert_close(m_hr, upsample_motion(m_lr, scale, mode=mode))
    torch.testing.assert_close(up(None, m_lr, None), m_hr)


def test_invalid_upsampler_input():
    with pytest.raises(ValueError, match="k_lr must be a positive odd"):
        CGMUL(channels=4, k_lr=2, k_hr=5, scale=2)
    with pytest.raises(ValueError, match="k_hr must be a positive odd"):
        CGMUL(channels=4, k_lr=3, k_hr=4, scale=2)
    with pytest.raises(ValueError, match="scale must be an integer >= 1"):
        NearestMotionUpsampler(k_lr=3, scale=0)
    with pytest.raises(ValueError, match="channels must be a positive integer"):
        CGMUL(channels=0, k_lr=3, k_hr=5, scale=2)
    layer = CGMUL(channels=4, k_lr=3, k_hr=5, scale=2)
    f_context, m_lr, f_motion = features(c=4)
    with pytest.raises(ValueError, match="must have 4 channels"):
        layer(f_context[:, :3], m_lr, f_motion[:, :3])
    with pytest.raises(ValueError, match="same shape"):
        layer(f_context, m_lr, f_motion[:, :, :4])
    with pytest.raises(ValueError, match="k_lr\\*\\*2 = 9 channels"):
        layer(f_context, torch.zeros(2, 25, 5, 6), f_motion)
    with pytest.raises(ValueError, match="must agree with the features"):
        layer(f_context, m_lr[:, :, :4], f_motion)
    with pytest.raises(ValueError, match="4-D"):
        similarity_map(f_context[0], m_lr, f_motion)
    with pytest.raises(ValueError, match="padding must be one of"):
        similarity_map(f_context, m_lr, f_motion, padding="wrap")
    with pytest.raises(ValueError, match="k_lr\\*\\*2 = 9"):
        BilinearMotionUpsampler(k_lr=3, scale=2)(None, torch.zeros(1, 25, 2, 2), None)
