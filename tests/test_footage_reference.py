"""Natural footage (cgm.data.footage), the motion references (cgm.reference) and the laptop
profile's model options (temporal stride, context pair, LR-flow prior, motion-weighted loss)."""

import pytest
import torch

from cgm.data import footage
from cgm.losses import photometric_loss, reconstruction_loss
from cgm.network import CGMConfig, CGMNet, set_identity_motion_
from cgm.reference import KernelPredictor, best_tap
from cgm.upsample import flow_kernel, lr_flow_prior, matching_cost
from cgm.warp import adaptive_warp, motion_to_flow


def tiny_config(**options) -> CGMConfig:
    """A CGM-Net small enough for a test: 4 frames of 32 px unless `options` say otherwise."""
    kw = dict(width=0.125, depth=(1, 1, 1, 1), clip_len=4, size=32, encoder_spatial_stride=8, heads=())
    return CGMConfig(num_classes=1, **{**kw, **options})


def needs_footage(test):
    """Reads the footage `make data` fetches: marked `footage`, skipped until it is there."""
    return pytest.mark.footage(
        pytest.mark.skipif(not footage.footage_ready(), reason="run `make data` first")(test)
    )


def test_flow_kernel_moves_by_the_flow_and_sums_to_one():
    torch.manual_seed(0)
    flow = (torch.rand(2, 2, 5, 6) * 2 - 1) * 3.9
    k = flow_kernel(flow, 9)
    assert k.shape == (2, 81, 5, 6)
    assert torch.allclose(k.sum(1), torch.ones(2, 5, 6))
    assert torch.allclose(motion_to_flow(k), flow, atol=1e-5)
    # Eq. 1 with an integer flow is a pure shift: content moves by (+dx, +dy)
    img = torch.rand(1, 3, 8, 8)
    shifted = adaptive_warp(img, flow_kernel(torch.tensor([2.0, 1.0]).view(1, 2, 1, 1).expand(1, 2, 8, 8), 9))
    assert torch.allclose(shifted[..., 1:, 2:], img[..., :-1, :-2])


def test_lr_flow_prior_peaks_at_the_scaled_lr_motion():
    m_lr = torch.zeros(1, 9, 2, 2)
    m_lr[:, 5] = 1.0  # tap (dy=0, dx=+1) at every LR pixel: 1 LR px = 4 HR px to the right
    prior = lr_flow_prior(m_lr, scale=4, k_hr=9)
    assert prior.shape == (1, 81, 8, 8)
    assert (prior.argmax(dim=1) == 4 * 9 + 8).all()  # tap (dy=0, dx=+4)


@pytest.mark.parametrize(
    "options",
    [
        dict(encoder_temporal_stride=1),
        dict(context_input="pair"),
        dict(hr_prior="lr_flow", context_input="pair"),
        dict(hr_prior="cost", context_input="pair"),
        dict(hr_prior="cost"),
        dict(hr_prior="cost_local", context_input="pair"),
        dict(hr_prior="cost_local", context_input="pair", last_cue="previous"),
    ],
)
@pytest.mark.slow
def test_laptop_model_options_give_maps_of_the_right_shape(options):
    torch.manual_seed(0)
    out = CGMNet(tiny_config(**options))(torch.rand(2, 3, 4, 32, 32) * 2 - 1)
    assert out.hr_maps.shape == (2, 4, 81, 32, 32)
    assert torch.allclose(out.hr_maps.sum(2), torch.ones(2, 4, 32, 32), atol=1e-5)


def test_last_cue_previous_gives_the_last_frame_the_cost_of_the_pair_before_it():
    torch.manual_seed(0)
    frames = torch.rand(2, 3, 3, 16, 16) * 2 - 1  # (B, T, 3, H, W)
    successors = torch.cat([frames[:, 1:], frames[:, -1:]], dim=1)
    own = CGMNet(tiny_config(hr_prior="cost"))._cost(frames, successors).view(2, 3, 81, 16, 16)
    prev = CGMNet(tiny_config(hr_prior="cost", last_cue="previous"))._cost(frames, successors)
    prev = prev.view(2, 3, 81, 16, 16)
    assert torch.equal(prev[:, :2], own[:, :2])  # real pairs: unchanged
    assert torch.equal(prev[:, 2], own[:, 1])  # the last frame: the previous pair's cost
    assert (own[:, 2, 40] == 0).all() and not (prev[:, 2, 40] == 0).all()  # "self": centre tap free
    with pytest.raises(ValueError, match="last_cue"):
        tiny_config(hr_prior="cost", last_cue="next")


@pytest.mark.slow
def test_a_huge_local_temperature_stays_finite():
    # The laptop run's NaN: a per-pixel log-temperature offset of 279 made exp() overflow.
    torch.manual_seed(0)
    model = CGMNet(tiny_config(hr_prior="cost_local", context_input="pair"))
    upsample = model.upsampler.forward

    def hot(*args, **kwargs):
        raw = upsample(*args, **kwargs)
        return torch.cat([raw[:, :-1], torch.full_like(raw[:, -1:], 300.0)], dim=1)

    model.upsampler.forward = hot
    clip = torch.rand(1, 3, 4, 32, 32) * 2 - 1
    clip[..., :8, :8] = 0.5  # a flat patch: zero cost on several taps
    maps = model(clip).hr_maps
    assert torch.isfinite(maps).all() and torch.allclose(maps.sum(2), torch.ones(()), atol=1e-5)


def test_matching_cost_is_zero_at_the_true_shift_and_its_argmin_is_the_tap_oracle():
    torch.manual_seed(0)
    img = torch.rand(2, 3, 16, 16)
    moved = adaptive_warp(
        img, flow_kernel(torch.tensor([2.0, -1.0]).view(1, 2, 1, 1).expand(2, 2, 16, 16), 9)
    )
    cost = matching_cost(img, moved, 9, patch=3)
    assert cost.shape == (2, 81, 16, 16)
    per_pixel = torch.nn.functional.pad(matching_cost(img, moved, 9, patch=1), (1, 1, 1, 1), mode="replicate")
    assert torch.allclose(cost, torch.nn.functional.avg_pool2d(per_pixel, 3, stride=1), atol=1e-6)
    tap = (-1 + 4) * 9 + (2 + 4)  # (dy=-1, dx=+2)
    assert torch.allclose(cost[:, tap, 2:-2, 3:-3], torch.zeros(()), atol=1e-6)
    assert (cost[:, :, 2:-2, 3:-3].argmin(dim=1) == tap).all()
    # patch 1, tau -> 0: a one-hot map on the cheapest tap reconstructs as the tap oracle does
    nxt = torch.rand(2, 3, 16, 16)
    one_hot = torch.nn.functional.one_hot(matching_cost(img, nxt, 5, patch=1).argmin(1), 25)
    recon = adaptive_warp(img, one_hot.permute(0, 3, 1, 2).float())
    oracle, _ = best_tap(img, nxt, 5)
    assert torch.allclose((recon - nxt).abs().mean(), (oracle - nxt).abs().mean(), atol=1e-6)
    for bad in (dict(k=4), dict(patch=2)):
        with pytest.raises(ValueError, match="odd"):
            matching_cost(img, nxt, **{"k": 5, **bad})
    with pytest.raises(ValueError, match="one shape"):
        matching_cost(img, nxt[..., :8], 5)


@pytest.mark.slow
def test_cost_prior_starts_as_soft_block_matching_and_learns_its_temperature():
    torch.manual_seed(0)
    model = CGMNet(tiny_config(clip_len=3, hr_prior="cost"))
    with torch.no_grad():
        model.upsampler.conv.weight.zero_()  # CGMUL adds nothing: the map is the prior alone
    clip = torch.rand(1, 3, 3, 32, 32) * 2 - 1
    out = model(clip)
    frames = clip[0].transpose(0, 1)  # (T, 3, H, W)
    successors = torch.cat([frames[1:], frames[-1:]])
    expected = torch.softmax(-model.cost_scale.exp() * matching_cost(frames, successors, 9), dim=1)
    assert torch.allclose(out.hr_maps[0], expected, atol=1e-5)
    (out.hr_maps * torch.randn_like(out.hr_maps)).sum().backward()
    assert model.cost_scale.grad is not None and model.cost_scale.grad.abs() > 0


def test_temporal_stride_one_keeps_one_feature_per_frame():
    f_v = CGMNet(tiny_config(encoder_temporal_stride=1)).encoder(torch.zeros(1, 3, 4, 32, 32))
    assert f_v.shape[2] == 4


def test_new_options_at_their_default_leave_the_config_dict_and_so_the_hash_unchanged():
    d = CGMConfig().to_dict()
    assert not {"encoder_temporal_stride", "hr_prior", "context_input"} & set(d)
    assert CGMConfig(hr_prior="lr_flow").to_dict()["hr_prior"] == "lr_flow"
    with pytest.raises(ValueError, match="hr_prior"):
        CGMConfig(hr_prior="lr_flow", upsampler="bilinear")


def test_motion_weighting_favours_moving_pixels():
    frames = torch.zeros(1, 3, 1, 4, 4)
    targets = frames.clone()
    targets[..., 0, 0] = 1.0  # one pixel changes
    pred = targets.clone()
    pred[..., 3, 3] = 0.5  # an error where nothing moves
    uniform = photometric_loss(pred, targets, frames, "uniform")
    motion = photometric_loss(pred, targets, frames, "motion")
    assert motion < uniform  # the static pixel's error counts less
    with pytest.raises(ValueError, match="weighting"):
        photometric_loss(pred, targets, frames, "sideways")


def test_tap_oracle_is_exact_on_a_shift_and_never_worse_than_copy():
    torch.manual_seed(0)
    img = torch.rand(2, 3, 16, 16)
    moved = torch.roll(img, shifts=(1, -2), dims=(2, 3))
    recon, err = best_tap(img, moved, 9)
    assert err[..., 2:-2, 2:-2].max() < 1e-6
    copy = (img - moved).abs().mean(1, keepdim=True)
    assert (err <= copy + 1e-7).all()


def test_kernel_predictor_starts_as_the_uniform_blur():
    model = KernelPredictor(9)
    maps = model(torch.rand(1, 3, 16, 16), torch.rand(1, 3, 16, 16))
    assert torch.allclose(maps, torch.full_like(maps, 1 / 81))


@needs_footage
def test_footage_splits_are_disjoint_and_clips_are_in_range():
    train = footage.FootageClips("train", clip_len=4, size=64, n=8)
    test = footage.FootageClips("test", clip_len=4, size=64, n=8)
    item = train[0]
    assert item["clip"].shape == (3, 5, 64, 64)
    assert item["clip"].min() >= -1 and item["clip"].max() <= 1
    train_frames = {(v, s + i) for v, s in train.starts for i in range(5)}
    test_frames = {(v, s + i) for v, s in test.starts for i in range(5)}
    assert not train_frames & test_frames
    assert torch.equal(test[3]["clip"], test[3]["clip"])  # test items are fixed
    with pytest.raises(ValueError, match="size"):
        footage.FootageClips("train", size=200)


@pytest.mark.slow
def test_motorcycle_pair_ground_truth_agrees_with_tvl1_not_with_zero_flow():
    from cgm import baselines, motion_table

    clip, pair, flow, valid = motion_table.motorcycle_clip(4)
    assert clip.shape[:2] == (3, 5) and pair == 1 and valid.float().mean() > 0.8
    assert torch.equal(clip[:, 0], clip[:, 1]) and torch.equal(clip[:, 2], clip[:, 4])
    tvl1 = motion_table.score_motorcycle(baselines.flow_motion("tvl1"), 4)
    zero = motion_table.score_motorcycle(baselines.no_motion, 4)
    assert tvl1["epe"] < 0.5 * zero["epe"]


@pytest.mark.slow
def test_table1_reading_follows_the_numbers():
    from cgm import motion_table

    scores = {
        m: {"l1": v, "epe": float("nan"), "pairs": 3, "sec_per_pair": 0.0}
        for m, v in {
            "no_motion": 0.03,
            "tvl1": 0.014,
            "dis_fast": 0.016,
            "deepflow": 0.018,
            "tap_oracle": 0.007,
            "cgm": 0.02,
        }.items()
    }
    motion = motion_table.table1_frame(
        "table1_motion", scores, dataset="footage", profile="laptop", resolution=64
    )
    pred = motion_table.table1_frame(
        "table1_prediction",
        {
            m: {"psnr": p, "ssim": 0.5, "clips": 2, "sec_per_pair": 0}
            for m, p in (("cgm", 30.0), ("repeat_last", 29.0), ("constant_velocity_tvl1", 31.0))
        },
        dataset="footage",
        profile="laptop",
        resolution=64,
    )
    text = " ".join(motion_table.table1_reading(motion, pred))
    assert "33% below copying" in text and "disagrees with the paper" in text
    assert "the same order" in text and "(above) and constant velocity (TV-L1) 31.00 dB (not above)" in text
    assert "block matching" not in text and "matching flow" not in text  # not scored: no line
    scores["cgm"]["l1"] = 0.01
    scores["matching_flow"] = {**scores["cgm"], "l1": 0.0125}
    motion = motion_table.table1_frame(
        "table1_motion", scores, dataset="footage", profile="laptop", resolution=64
    )
    text = " ".join(motion_table.table1_reading(motion, pred))
    assert "at or below TV-L1, as in the paper, by less than the paper's margin (0.71 vs 0.49)" in text
    assert "CGM-Net (ours) is 20% below it: what training adds" in text
    scores["block_matching"] = {**scores["cgm"], "l1": 0.008}
    motion = motion_table.table1_frame(
        "table1_motion", scores, dataset="footage", profile="laptop", resolution=64
    )
    text = " ".join(motion_table.table1_reading(motion, pred))
    assert "block matching alone" not in text  # its model (table1/cgm_box5) not scored: no line
    scores[motion_table.OURS_BOX5] = {**scores["cgm"], "l1": 0.01}
    motion = motion_table.table1_frame(
        "table1_motion", scores, dataset="footage", profile="laptop", resolution=64
    )
    text = " ".join(motion_table.table1_reading(motion, pred))
    assert (
        "Soft block matching alone" in text and "cgm_box5) is 25% above it: training did not improve" in text
    )


def test_psnr_of_a_held_frame_is_capped_in_the_protocols():
    from cgm.metrics import PSNR_CAP, psnr

    frame = torch.rand(2, 3, 8, 8)
    assert psnr(frame, frame, max_db=PSNR_CAP) == PSNR_CAP
    assert psnr(frame, frame + 0.1, max_db=PSNR_CAP) == psnr(frame, frame + 0.1)


@pytest.mark.slow
def test_block_matching_recovers_a_shift_and_its_flow():
    from cgm.reference import block_matching_motion

    torch.manual_seed(0)
    img = torch.rand(3, 1, 24, 24) * 2 - 1
    shift = torch.tensor([1.0, 2.0]).view(1, 2, 1, 1).expand(1, 2, 24, 24)  # x +1, y +2 px per frame
    frames = [img]
    for _ in range(2):
        frames.append(adaptive_warp(frames[-1][None, :, 0], flow_kernel(shift, 9))[0][:, None])
    clip = torch.cat(frames, dim=1)  # (3, T=3, H, W)
    recon, flow = block_matching_motion(9, tau=0.001)(clip)
    inner = (slice(None), slice(None), slice(6, -6), slice(6, -6))
    assert torch.allclose(recon[inner], clip[:, 1:].transpose(0, 1)[inner], atol=1e-4)
    assert torch.allclose(flow[inner], shift.expand(2, 2, 24, 24)[inner], atol=1e-3)
    with pytest.raises(ValueError, match="tau"):
        block_matching_motion(9, tau=0)


@pytest.mark.slow
def test_local_cost_temperature_is_one_more_cgmul_map_that_starts_neutral():
    torch.manual_seed(0)
    model = CGMNet(tiny_config(clip_len=3, hr_prior="cost_local"))
    assert model.upsampler.conv.out_channels == 16 * (81 + 1)
    clip = torch.rand(1, 3, 3, 32, 32) * 2 - 1
    with torch.no_grad():
        model.upsampler.conv.weight.zero_()  # offset 0 and CGMUL's taps 0: the global prior alone
    out = model(clip)
    frames = clip[0].transpose(0, 1)
    successors = torch.cat([frames[1:], frames[-1:]])
    prior = torch.softmax(-model.cost_scale.exp() * matching_cost(frames, successors, 9), dim=1)
    assert torch.allclose(out.hr_maps[0], prior, atol=1e-5)
    with torch.no_grad():  # a per-pixel offset of log 4 sharpens the prior there by 4
        model.upsampler.conv.bias[81 * 16 :] = torch.log(torch.tensor(4.0))
    sharper = torch.softmax(-4 * model.cost_scale.exp() * matching_cost(frames, successors, 9), dim=1)
    assert torch.allclose(model(clip).hr_maps[0], sharper, atol=1e-5)
    set_identity_motion_(model)
    centre = model(clip).hr_maps[0, :, 40]
    assert (centre > 0.5).float().mean() > 0.9  # the centre tap's logit outweighs most of the prior


@pytest.mark.parametrize(
    "options", [dict(), dict(hr_prior="cost_local", context_input="pair", last_cue="previous")]
)
@pytest.mark.slow
def test_bf16_autocast_gives_float32_maps_close_to_float32(options):
    """The laptop trains under CPU bf16 autocast: its convs run in bf16, but the motion maps stay
    float32 (Eq. 1 warps float32 frames) and close to the float32 model's; gradients flow."""
    torch.manual_seed(0)
    model = CGMNet(tiny_config(**options))
    clip = torch.rand(2, 3, 5, 32, 32) * 2 - 1
    with torch.no_grad():
        ref = model(clip[:, :, :-1])
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = model(clip[:, :, :-1])
        loss = reconstruction_loss(clip[:, :, :-1], out.hr_maps, clip[:, :, 1:])
    assert out.hr_maps.dtype == out.lr_maps.dtype == torch.float32
    assert loss.dtype == torch.float32
    torch.testing.assert_close(out.hr_maps.sum(2), torch.ones_like(out.hr_maps.sum(2)))
    # bf16 keeps 8 bits: the taps move by a few per mille of their size, not more
    assert (out.hr_maps - ref.hr_maps).abs().max() < 0.02
    assert (out.lr_maps - ref.lr_maps).abs().max() < 0.02
    loss.backward()
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    assert grads and all(torch.isfinite(g).all() for g in grads)
    assert model.upsampler.conv.weight.grad.abs().sum() > 0
