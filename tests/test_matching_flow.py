"""The matching flow (`cgm.upsample.matching_flow`) and CGM-Net's `hr_prior="cue_flow"`."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from cgm.network import CUE_FLOOR, CGMConfig, CGMNet
from cgm.upsample import box_mean, flow_kernel, matching_flow, median_filter, min_filter
from cgm.warp import adaptive_warp, motion_to_flow


def smooth_texture(n: int, size: int, seed: int = 0) -> torch.Tensor:
    """(n, 3, size, size) images in [-1, 1] with structure at several scales (sub-pixel shifts of
    white noise are not defined well enough to test against)."""
    g = torch.Generator().manual_seed(seed)
    noise = torch.rand(n, 3, size // 4, size // 4, generator=g) * 2 - 1
    coarse = F.interpolate(noise, size=(size, size), mode="bicubic", align_corners=False)
    fine = F.interpolate(
        torch.rand(n, 3, size // 2, size // 2, generator=g) * 2 - 1, size=(size, size), mode="bilinear"
    )
    return (0.7 * coarse + 0.3 * fine).clamp(-1, 1)


def shifted(img: torch.Tensor, dx: float, dy: float) -> torch.Tensor:
    """img moved by (dx, dy) px (content at p comes from p - (dx, dy)), bilinear, border held."""
    n, _, h, w = img.shape
    ys, xs = torch.meshgrid(torch.arange(h).float(), torch.arange(w).float(), indexing="ij")
    grid = torch.stack([2 * (xs - dx) / (w - 1) - 1, 2 * (ys - dy) / (h - 1) - 1], dim=-1)
    return F.grid_sample(
        img, grid.expand(n, h, w, 2), mode="bilinear", padding_mode="border", align_corners=True
    )


def test_box_mean_and_median_filter_match_pooling_on_the_interior():
    torch.manual_seed(0)
    x = torch.rand(2, 4, 12, 12)
    assert torch.allclose(box_mean(x, 5)[..., 2:-2, 2:-2], F.avg_pool2d(x, 5, stride=1), atol=1e-6)
    assert torch.equal(box_mean(x, 1), x)
    windows = x.unfold(2, 3, 1).unfold(3, 3, 1).flatten(-2)  # (2, 4, 10, 10, 9)
    assert torch.equal(median_filter(x, 3)[..., 1:-1, 1:-1], windows.median(-1).values)


@pytest.mark.parametrize("dx, dy", [(2.0, -1.0), (-3.0, 0.0), (0.0, 3.0)])
def test_matching_flow_reads_an_integer_shift_to_a_tenth_of_a_pixel(dx, dy):
    img = smooth_texture(2, 48)
    flow = matching_flow(img, shifted(img, dx, dy), 9)
    inner = flow[..., 8:-8, 8:-8]  # away from the held border
    # the best tap is the shift; the V fit moves it by what its neighbours' costs differ (texture)
    assert torch.equal(inner.round(), torch.tensor([dx, dy]).view(1, 2, 1, 1).expand_as(inner))
    assert (inner - torch.tensor([dx, dy]).view(1, 2, 1, 1)).abs().max() < 0.1


@pytest.mark.parametrize("dx, dy", [(1.5, 0.25), (-2.3, 1.7), (0.4, -0.6)])
def test_matching_flow_reads_a_sub_pixel_shift_to_a_fifth_of_a_pixel(dx, dy):
    img = smooth_texture(2, 48, seed=1)
    inner = matching_flow(img, shifted(img, dx, dy), 9)[..., 8:-8, 8:-8]
    err = (inner - torch.tensor([dx, dy]).view(1, 2, 1, 1)).norm(dim=1)
    # the integer argmin alone is off by up to 0.5 px per axis; the V fit brings it well under that
    assert err.mean() < 0.2, err.mean()


def test_a_shift_at_the_window_edge_reads_at_or_beyond_the_edge():
    img = smooth_texture(1, 48, seed=3)
    inner = matching_flow(img, shifted(img, 4.0, 0.0), 9, coarse=False)[..., 8:-8, 8:-8]
    # the edge tap has no outer neighbour: the fit cannot tell 4 from beyond and says up to 4.5
    assert inner[:, 0].min() >= 4.0 and inner[:, 0].max() <= 4.5
    assert inner[:, 1].abs().max() < 0.1


def test_the_coarse_level_reads_a_shift_beyond_the_window():
    img = smooth_texture(1, 64, seed=4)
    moved = shifted(img, 6.0, -2.0)
    inner = (slice(None), slice(None), slice(12, -12), slice(12, -12))
    wide = matching_flow(img, moved, 9)[inner]
    assert (wide - torch.tensor([6.0, -2.0]).view(1, 2, 1, 1)).norm(dim=1).mean() < 0.3
    window = matching_flow(img, moved, 9, coarse=False)[inner]
    assert window[:, 0].max() <= 4.5  # one level cannot see past its window


def test_matching_flow_refuses_frames_of_two_shapes():
    with pytest.raises(ValueError, match="frames of one shape"):
        matching_flow(torch.zeros(1, 3, 8, 8), torch.zeros(1, 3, 8, 9), 5)


def tiny(**options) -> CGMConfig:
    kw = dict(width=0.125, depth=(1, 1, 1, 1), clip_len=3, size=32, encoder_spatial_stride=8, heads=())
    return CGMConfig(num_classes=1, context_input="pair", **{**kw, **options})


def test_cue_flow_starts_both_levels_at_the_matching_flow():
    torch.manual_seed(0)
    img = smooth_texture(1, 32, seed=2)
    frames = [img, shifted(img, 2.0, -1.0), shifted(img, 4.0, -2.0)]  # constant velocity (2, -1)
    clip = torch.stack(frames, dim=2)  # (1, 3, T, H, W)
    net = CGMNet(tiny(hr_prior="cue_flow", last_cue="previous"))
    with torch.no_grad():  # CGMUL and the LR head silenced: the maps are the prior alone
        net.upsampler.conv.weight.zero_()
        net.lr_motion.weight.zero_()
        net.lr_motion.bias.zero_()
        out = net(clip)
    cue = net._cue_flow(clip)  # (T, 2, H, W)
    prior = torch.softmax(torch.log(flow_kernel(cue, 9) + CUE_FLOOR), dim=1)
    assert torch.allclose(out.hr_maps[0], prior, atol=1e-5)
    hr_flow = motion_to_flow(out.hr_maps[0])[..., 8:-8, 8:-8]  # (T, 2, 16, 16)
    want = torch.tensor([2.0, -1.0]).view(1, 2, 1, 1)
    # the floor spreads a little weight over the 81 taps, pulling the mean towards the centre
    assert (hr_flow - want).norm(dim=1).mean() < 0.1, (hr_flow - want).norm(dim=1).mean()
    lr_flow = motion_to_flow(out.lr_maps[0])[..., 2:-2, 2:-2] * 4  # LR taps are 4 HR px apart
    assert (lr_flow - want).norm(dim=1).mean() < 0.1, (lr_flow - want).norm(dim=1).mean()
    # the last frame has no successor: with last_cue="previous" it keeps the pair before's flow
    assert torch.equal(cue[2], cue[1])
    recon = adaptive_warp(clip[0, :, 0][None], out.hr_maps[0, :1])
    assert (recon - clip[:, :, 1])[..., 8:-8, 8:-8].abs().mean() < 0.05


def test_cue_flow_needs_cgmul_and_softmax():
    with pytest.raises(ValueError, match="hr_prior"):
        tiny(hr_prior="cue_flow", upsampler="bilinear")
    with pytest.raises(ValueError, match="hr_prior"):
        CGMConfig(hr_prior="cue_flows")


def test_cue_coarse_switches_the_coarse_level_and_leaves_cached_hashes_alone():
    img = smooth_texture(1, 64, seed=5)
    clip = torch.stack([img, shifted(img, 6.0, 0.0)], dim=2)  # (1, 3, 2, H, W): beyond the window
    inner = (slice(None), slice(None), slice(12, -12), slice(12, -12))
    wide = CGMNet(tiny(size=64, clip_len=2, hr_prior="cue_flow"))._cue_flow(clip)[:1][inner]
    window = CGMNet(tiny(size=64, clip_len=2, hr_prior="cue_flow", cue_coarse=False))._cue_flow(clip)[:1][
        inner
    ]
    assert wide[:, 0].mean() > 5.5 and window[:, 0].max() <= 4.5
    assert "cue_coarse" not in tiny().to_dict() and tiny(cue_coarse=False).to_dict()["cue_coarse"] is False
    with pytest.raises(ValueError, match="cue_coarse"):
        tiny(cue_coarse="no")


def test_min_filter_matches_max_pooling_in_values_and_gradients():
    torch.manual_seed(0)
    x = torch.rand(2, 5, 13, 11, dtype=torch.float64, requires_grad=True)
    fast = min_filter(x, 5)
    plain = -F.max_pool2d(-F.pad(x, (2, 2, 2, 2), mode="replicate"), 5, stride=1)
    assert torch.equal(fast, plain)
    g = torch.rand_like(fast)
    (grad_fast,) = torch.autograd.grad(fast, x, g)
    (grad_plain,) = torch.autograd.grad(plain, x, g)
    assert torch.allclose(grad_fast, grad_plain)
    assert torch.equal(min_filter(x, 1), x)
    with pytest.raises(ValueError, match="odd"):
        min_filter(x, 4)


def two_motions(size: int = 64, dx: float = 3.0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """A textured background that stays and a textured left half moving by dx: frames t, t+1 and
    the true flow's x (N, H, W). Pixels the moving half uncovers or covers are in neither."""
    back, front = smooth_texture(1, size, seed=7), smooth_texture(1, size, seed=8)
    mask = torch.zeros(1, 1, size, size)
    mask[..., : size // 2] = 1
    prev = mask * front + (1 - mask) * back
    moved_mask = shifted(mask, dx, 0.0).round()
    nxt = moved_mask * shifted(front, dx, 0.0) + (1 - moved_mask) * back
    return prev, nxt, dx * moved_mask[:, 0]


def test_shiftable_windows_keep_a_motion_boundary_where_it_is():
    prev, nxt, true_x = two_motions()
    edge = 64 // 2 + 3  # the moving half's edge in frame t+1
    band = (slice(None), slice(8, -8), slice(edge - 8, edge + 8))  # rows away from the border
    errs = {}
    for shift in (False, True):
        flow = matching_flow(prev, nxt, 9, coarse=False, shift=shift)
        errs[shift] = (flow[:, 0] - true_x)[band].abs().mean().item()
    # centred 7 and 15 px boxes straddle both motions near the edge and smear it (fattening)
    assert errs[True] < 0.7 * errs[False]
    with pytest.raises(ValueError, match="shift slides the boxes"):
        matching_flow(prev, nxt, 9, patches=(3, 7), shift=True)


def test_cue_shift_switches_shiftable_windows_and_leaves_cached_hashes_alone():
    prev, nxt, _ = two_motions()
    clip = torch.stack([prev, nxt], dim=2)  # (1, 3, 2, H, W)
    for cue_shift in (False, True):
        net = CGMNet(tiny(size=64, clip_len=2, hr_prior="cue_flow", cue_coarse=False, cue_shift=cue_shift))
        want = matching_flow(prev, nxt, 9, coarse=False, shift=cue_shift)
        assert torch.equal(net._cue_flow(clip)[:1], want)
    assert "cue_shift" not in tiny().to_dict() and tiny(cue_shift=True).to_dict()["cue_shift"] is True
    with pytest.raises(ValueError, match="cue_shift"):
        tiny(cue_shift=1)


def test_still_keeps_a_still_scene_exactly_still():
    img = smooth_texture(1, 48, seed=9)
    noisy = img + 0.01 * torch.randn(img.shape, generator=torch.Generator().manual_seed(0))
    loose = matching_flow(img, noisy, 9, coarse=False)
    exact = matching_flow(img, noisy, 9, coarse=False, still=True)
    # the V fit reads sensor-noise-sized sub-pixel offsets where nothing moves; `still` reads none
    assert loose.abs().amax() > 0.05 and torch.equal(exact, torch.zeros_like(exact))
    flat = torch.zeros(1, 3, 32, 32)  # every tap ties: the centre wins, not the first tap
    assert matching_flow(flat, flat, 9, coarse=False, still=True).abs().max() == 0
    # a moving scene still reads its motion (the best tap is not the centre)
    moved = matching_flow(img, shifted(img, 2.0, -1.0), 9, coarse=False, still=True)[..., 8:-8, 8:-8]
    assert (moved - torch.tensor([2.0, -1.0]).view(1, 2, 1, 1)).abs().max() < 0.1
