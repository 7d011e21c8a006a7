"""cgm.losses: Charbonnier, per-frame warping, Eq. 7 and its metrics."""

from types import SimpleNamespace

import pytest
import torch
import torch.nn.functional as F

from cgm.losses import cgm_loss, charbonnier, reconstruction_loss, warp_frames
from cgm.warp import adaptive_warp_reference, identity_motion


def _one_hot(b, t, k, h, w, dy, dx):
    """Motion maps (B,T,K*K,H,W) that are one-hot at tap (dy, dx)."""
    m = torch.zeros(b, t, k * k, h, w)
    m[:, :, (dy + k // 2) * k + (dx + k // 2)] = 1.0
    return m


def _output(hr_maps, lr_maps, logits=None):
    return SimpleNamespace(hr_maps=hr_maps, lr_maps=lr_maps, logits=logits or {})


def test_charbonnier_values():
    x = torch.tensor([0.0, 3.0, -4.0])
    assert torch.allclose(charbonnier(x), torch.tensor([1e-6, 3.0, 4.0]))
    assert torch.allclose(charbonnier(torch.zeros(1), eps=0.5), torch.tensor([0.5]))


def test_warp_frames_matches_reference_per_frame():
    g = torch.Generator().manual_seed(0)
    frames = torch.rand(2, 3, 4, 8, 10, generator=g)
    maps = torch.rand(2, 4, 25, 8, 10, generator=g).softmax(dim=2)
    out = warp_frames(frames, maps, padding="zeros")
    for b in range(2):
        for t in range(4):
            ref = adaptive_warp_reference(frames[b : b + 1, :, t], maps[b : b + 1, t], padding="zeros")
            assert torch.allclose(out[b : b + 1, :, t], ref, atol=1e-6)


def test_shift_map_reconstructs_shifted_frames_exactly():
    """Tap (dy=0, dx=+1) moves content one pixel right (border padding at x = 0)."""
    g = torch.Generator().manual_seed(1)
    first = torch.rand(1, 3, 1, 16, 16, generator=g) * 2 - 1
    frames = [first]
    for _ in range(3):  # each frame is the previous one moved right by 1, border-clamped
        prev = frames[-1]
        frames.append(torch.cat([prev[..., :1], prev[..., :-1]], dim=-1))
    clip = torch.cat(frames, dim=2)  # (1, 3, T+1=4, 16, 16)
    hr, lr = _one_hot(1, 3, 9, 16, 16, 0, 1), _one_hot(1, 3, 3, 4, 4, 0, 0)
    loss, metrics = cgm_loss(_output(hr, lr), clip, lambda_lr=0.0)
    assert metrics["l1_hr"] == pytest.approx(0.0, abs=1e-7)
    assert metrics["l_hr"] == pytest.approx(1e-6, abs=1e-7)
    wrong, wrong_metrics = cgm_loss(_output(_one_hot(1, 3, 9, 16, 16, 0, -1), lr), clip, lambda_lr=0.0)
    assert wrong_metrics["l1_hr"] > 0.05


def test_identity_on_static_clip_and_lr_term():
    clip = torch.rand(2, 3, 5, 16, 16, generator=torch.Generator().manual_seed(4)) * 2 - 1
    clip[:, :, 1:] = clip[:, :, :1]  # static clip: every frame equals frame 0
    hr = identity_motion(8, 9, 16, 16).view(2, 4, 81, 16, 16)
    lr = identity_motion(8, 3, 4, 4).view(2, 4, 9, 4, 4)
    loss, metrics = cgm_loss(_output(hr, lr), clip)
    assert set(metrics) == {"loss", "l_hr", "l_lr", "l_cls", "l1_hr"}
    assert all(isinstance(v, float) for v in metrics.values())
    assert metrics["l_lr"] == pytest.approx(1e-6, abs=1e-7)
    assert metrics["l_cls"] == 0.0
    # A blurring LR map on a non-constant frame gives a positive L_LR, weighted by lambda_lr.
    blur = torch.full_like(lr, 1 / 9)
    loss1, m1 = cgm_loss(_output(hr, blur), clip, lambda_lr=1.0)
    loss3, m3 = cgm_loss(_output(hr, blur), clip, lambda_lr=3.0)
    assert m1["l_lr"] > 1e-3
    assert loss3.item() == pytest.approx(m1["l_hr"] + 3 * m1["l_lr"], rel=1e-6)


def test_lr_targets_are_area_downsampled_frames():
    g = torch.Generator().manual_seed(2)
    clip = torch.rand(1, 3, 3, 8, 8, generator=g)
    hr = _one_hot(1, 2, 3, 8, 8, 0, 0)
    lr = torch.rand(1, 2, 9, 2, 2, generator=g).softmax(dim=2)
    _, metrics = cgm_loss(_output(hr, lr), clip)
    down = F.avg_pool3d(clip, (1, 4, 4))  # area = 4x4 mean
    expected = reconstruction_loss(down[:, :, :2], lr, down[:, :, 1:])
    assert metrics["l_lr"] == pytest.approx(expected.item(), rel=1e-6)


def test_classification_term_and_lambda_cls_zero():
    g = torch.Generator().manual_seed(3)
    clip = torch.rand(2, 3, 3, 8, 8, generator=g)
    hr = torch.rand(2, 2, 9, 8, 8, generator=g).softmax(dim=2).requires_grad_()
    lr = torch.rand(2, 2, 9, 2, 2, generator=g).softmax(dim=2)
    logits = {
        "backbone": torch.randn(2, 5, generator=g, requires_grad=True),
        "lr": torch.randn(2, 5, generator=g, requires_grad=True),
    }
    labels = torch.tensor([1, 4])
    ce = sum(F.cross_entropy(v, labels) for v in logits.values()).item()
    loss0, m0 = cgm_loss(_output(hr, lr, logits), clip, labels, lambda_cls=0.0)
    assert m0["l_cls"] == pytest.approx(ce, rel=1e-6)  # reported ...
    assert loss0.item() == pytest.approx(m0["l_hr"] + m0["l_lr"], rel=1e-6)  # ... but not in the loss
    loss0.backward()
    assert logits["backbone"].grad is None and hr.grad is not None and hr.grad.abs().sum() > 0
    loss2, m2 = cgm_loss(_output(hr, lr, logits), clip, labels, lambda_cls=2.0)
    assert loss2.item() == pytest.approx(m2["l_hr"] + m2["l_lr"] + 2 * ce, rel=1e-5)
    loss2.backward()
    assert logits["backbone"].grad.abs().sum() > 0


def test_bad_inputs():
    hr, lr = _one_hot(1, 2, 3, 8, 8, 0, 0), _one_hot(1, 2, 3, 2, 2, 0, 0)
    with pytest.raises(ValueError, match="T\\+1"):
        cgm_loss(_output(hr, lr), torch.zeros(1, 3, 2, 8, 8))
    with pytest.raises(ValueError, match="needs labels"):
        cgm_loss(_output(hr, lr), torch.zeros(1, 3, 3, 8, 8), lambda_cls=1.0)
    with pytest.raises(ValueError, match="labels"):
        cgm_loss(_output(hr, lr), torch.zeros(1, 3, 3, 8, 8), torch.zeros(2, dtype=torch.long))
    with pytest.raises(ValueError, match="do not match"):
        warp_frames(torch.zeros(1, 3, 2, 8, 8), torch.zeros(1, 2, 9, 4, 4))


def test_filter_spread_zero_for_one_hot_and_one_pixel_shift_positive_for_two_far_taps():
    from cgm.losses import filter_spread
    from cgm.upsample import flow_kernel

    one_hot = _one_hot(1, 1, 9, 6, 6, 3, -2)[0]  # (1, 81, 6, 6)
    assert filter_spread(one_hot).item() == pytest.approx(0.0, abs=1e-6)
    bilinear = flow_kernel(torch.full((1, 2, 6, 6), 0.5), 9)  # half-way between taps: var 0.25 + 0.25
    assert filter_spread(bilinear).item() == pytest.approx(0.5, abs=1e-5)
    two = (_one_hot(1, 1, 9, 6, 6, 0, -4)[0] + _one_hot(1, 1, 9, 6, 6, 0, 4)[0]) / 2  # mean 0, var 16
    assert filter_spread(two).item() == pytest.approx(16.0, abs=1e-4)


def test_edge_aware_smoothness_zero_for_constant_flow_and_discounted_at_edges():
    from cgm.losses import edge_aware_smoothness

    flat = torch.zeros(1, 3, 8, 8)
    assert edge_aware_smoothness(torch.full((1, 2, 8, 8), 2.5), flat).item() == 0.0
    step = torch.zeros(1, 2, 8, 8)
    step[..., 4:] = 3.0  # a flow edge at x = 4
    image_edge = torch.zeros(1, 3, 8, 8)
    image_edge[..., 4:] = 1.0  # an image edge at the same place
    on_flat = edge_aware_smoothness(step, flat).item()
    assert on_flat > 0.1
    assert edge_aware_smoothness(step, image_edge).item() < 0.01 * on_flat
    with pytest.raises(ValueError, match="flow"):
        edge_aware_smoothness(torch.zeros(1, 3, 8, 8), flat)


def test_census_loss_zero_for_equal_images_and_blind_to_brightness_offset():
    from cgm.losses import census_loss

    g = torch.Generator().manual_seed(5)
    img = torch.rand(1, 3, 12, 12, generator=g) * 2 - 1
    assert census_loss(img, img).item() == 0.0
    assert census_loss(img + 0.3, img).item() < 1e-6  # census compares neighbours with the centre
    assert census_loss(torch.rand(1, 3, 12, 12, generator=g), img).item() > 0.1


def test_cgm_loss_regularisers_add_their_terms():
    g = torch.Generator().manual_seed(6)
    clip = torch.rand(1, 3, 3, 16, 16, generator=g) * 2 - 1
    hr = torch.rand(1, 2, 81, 16, 16, generator=g).softmax(dim=2)
    lr = torch.rand(1, 2, 9, 4, 4, generator=g).softmax(dim=2)
    base, m0 = cgm_loss(_output(hr, lr), clip)
    assert not {"l_smooth", "l_spread", "l_census"} & set(m0)
    loss, m = cgm_loss(_output(hr, lr), clip, smoothness=0.1, compactness=0.01, census=0.5)
    expected = base + 0.1 * m["l_smooth"] + 0.01 * m["l_spread"] + 0.5 * m["l_census"]
    assert loss.item() == pytest.approx(expected.item(), rel=1e-5)
    assert min(m["l_smooth"], m["l_spread"], m["l_census"]) > 0
    with pytest.raises(ValueError, match="regulariser"):
        cgm_loss(_output(hr, lr), clip, census=-1.0)
