"""Table 1 baselines: OpenCV flow recovers known shifts, backward_warp's sign matches Eq. 1."""

import numpy as np
import pytest
import skimage.data
import torch

from cgm import baselines, motion_table, tables
from cgm.baselines import (
    FLOW_METHODS,
    PAPER_ONLY_METHODS,
    PREDICTION_METHODS,
    backward_warp,
    flow_between,
    load_raft,
    predict_next,
    raft_weights_path,
)
from cgm.paper import paper_value
from cgm.warp import adaptive_warp, motion_to_flow

OPENCV_METHODS = ("dis_fast", "deepflow", "tvl1")


def camera(size: int = 128) -> torch.Tensor:
    """skimage's camera image, (3, size, size) in [-1, 1]: textured, with some flat sky."""
    step = 512 // size
    gray = torch.from_numpy(skimage.data.camera()[::step, ::step].astype(np.float32) / 127.5 - 1)
    return gray[None].repeat(3, 1, 1)


def shifted(image: torch.Tensor, dx: int, dy: int) -> torch.Tensor:
    """Content moved by (+dx, +dy) (wraps at the border; tests look at the interior only)."""
    return torch.roll(image, shifts=(dy, dx), dims=(-2, -1))


def one_hot_map(k: int, dx: int, dy: int, h: int, w: int) -> torch.Tensor:
    """(1, K*K, H, W) map, one-hot at tap (dy, dx) everywhere."""
    r = k // 2
    m = torch.zeros(1, k * k, h, w)
    m[:, (dy + r) * k + (dx + r)] = 1
    return m


@pytest.mark.parametrize("method", OPENCV_METHODS)
@pytest.mark.parametrize("dx, dy", [(2, -1), (-1, 3)])
def test_opencv_flow_recovers_integer_translation(method, dx, dy):
    a = camera()
    b = shifted(a, dx, dy)
    flow = flow_between(method, a, b)
    assert flow.shape == (2, 128, 128) and flow.dtype == torch.float32
    inner = flow[:, 16:-16, 16:-16]
    end_point_error = ((inner[0] - dx) ** 2 + (inner[1] - dy) ** 2).sqrt()
    assert end_point_error.mean() < 0.5, f"{method}: mean EPE {end_point_error.mean():.3f} px"
    # The flow predicts b from a by backward warping.
    pred = backward_warp(a[None], flow[None])[0]
    l1_flow = (pred - b)[:, 16:-16, 16:-16].abs().mean()
    l1_still = (a - b)[:, 16:-16, 16:-16].abs().mean()
    assert l1_flow < 0.25 * l1_still


@pytest.mark.parametrize("dx, dy", [(1, 0), (0, 1), (-2, 1), (3, -4)])
def test_backward_warp_matches_adaptive_warp_for_integer_shifts(dx, dy):
    torch.manual_seed(0)
    frame = torch.rand(2, 3, 20, 24) * 2 - 1
    m = one_hot_map(9, dx, dy, 20, 24).expand(2, -1, -1, -1).contiguous()
    flow = motion_to_flow(m)
    assert torch.equal(flow[:, 0], torch.full_like(flow[:, 0], dx))
    assert torch.equal(flow[:, 1], torch.full_like(flow[:, 1], dy))
    torch.testing.assert_close(
        backward_warp(frame, flow), adaptive_warp(frame, m, padding="border"), atol=1e-5, rtol=0
    )


def test_backward_warp_sign_moves_content_by_flow():
    frame = torch.zeros(1, 1, 9, 9)
    frame[0, 0, 4, 4] = 1
    flow = torch.zeros(1, 2, 9, 9)
    flow[:, 0], flow[:, 1] = 2, -1  # content moves right 2, up 1
    out = backward_warp(frame, flow)
    assert out[0, 0, 3, 6] == 1 and out.sum() == 1


def test_backward_warp_half_pixel_is_bilinear():
    frame = torch.arange(6.0).view(1, 1, 1, 6)
    flow = torch.zeros(1, 2, 1, 6)
    flow[:, 0] = 0.5
    out = backward_warp(frame, flow)[0, 0, 0]
    torch.testing.assert_close(out, torch.tensor([0.0, 0.5, 1.5, 2.5, 3.5, 4.5]))  # border-clamped at x=0


def test_backward_warp_rejects_bad_shapes():
    with pytest.raises(ValueError, match="flow must be"):
        backward_warp(torch.zeros(1, 3, 8, 8), torch.zeros(1, 3, 8, 8))
    with pytest.raises(ValueError, match="expected frame"):
        backward_warp(torch.zeros(3, 8, 8), torch.zeros(2, 8, 8))


def test_flow_between_rejects_unknown_and_paper_only_methods():
    a = camera(64)
    with pytest.raises(ValueError, match="paper-only"):
        flow_between("pwcnet", a, a)
    with pytest.raises(ValueError, match=r"\(3,H,W\)"):
        flow_between("tvl1", a, a[:, :32])


@pytest.mark.parametrize("method", list(PREDICTION_METHODS))
def test_prediction_baselines_shapes_and_values(method):
    a = camera(64)
    clip = torch.stack([a, shifted(a, 1, 0), shifted(a, 2, 0)], dim=1)  # (3, T=3, H, W), 1 px/frame
    pred = predict_next(method, clip)
    assert pred.shape == (3, 64, 64) and pred.dtype == clip.dtype and torch.isfinite(pred).all()
    target = shifted(a, 3, 0)[:, 8:-8, 8:-8]
    err = (pred[:, 8:-8, 8:-8] - target).abs().mean()
    if method == "repeat_last":
        assert torch.equal(pred, clip[:, -1])
    else:  # constant velocity predicts the third shift far better than repeating the frame
        assert err < 0.25 * (clip[:, -1, 8:-8, 8:-8] - target).abs().mean()


def test_prediction_rejects_bad_input():
    with pytest.raises(ValueError, match="unknown prediction method"):
        predict_next("dvf", torch.zeros(3, 2, 16, 16))
    with pytest.raises(ValueError, match="at least 2 frames"):
        predict_next("constant_velocity_tvl1", torch.zeros(3, 1, 16, 16))
    with pytest.raises(ValueError, match=r"\(3,T,H,W\)"):
        predict_next("repeat_last", torch.zeros(2, 3, 16, 16))


def test_raft_without_weights_names_the_file_and_where_to_get_it(tmp_path, monkeypatch):
    monkeypatch.setenv(baselines.RAFT_WEIGHTS_ENV, str(tmp_path))
    expected = raft_weights_path("raft_small")
    assert expected == tmp_path / "raft_small_C_T_V2-01064c6d.pth"
    with pytest.raises(FileNotFoundError, match="raft_small_C_T_V2-01064c6d.pth") as info:
        flow_between("raft_small", camera(64), camera(64))
    assert "download.pytorch.org" in str(info.value) and str(tmp_path) in str(info.value)
    with pytest.raises(FileNotFoundError, match="nope.pth"):
        load_raft("raft_large", tmp_path / "nope.pth")


@pytest.mark.slow
def test_raft_runs_from_a_local_weights_file(tmp_path):
    """A (random) state dict saved locally loads with weights_only=True and gives a (2,H,W) flow."""
    from torchvision.models.optical_flow import raft_small

    torch.manual_seed(0)
    path = tmp_path / "raft_small.pth"
    torch.save(raft_small(weights=None).state_dict(), path)
    a = camera(256)[:, :136, :100]  # not multiples of 8, one side < 128: padded inside
    flow = flow_between("raft_small", a, a, weights=path)
    assert flow.shape == (2, 136, 100) and torch.isfinite(flow).all()


def test_registry_rows_exist_in_the_paper():
    for method in [*FLOW_METHODS.values(), *PAPER_ONLY_METHODS.values()]:
        if method.paper_row is not None:
            column = "l1" if method.paper_table == "table1_motion" else "psnr"
            assert paper_value(method.paper_table, method.paper_row, column) is not None
    assert not set(FLOW_METHODS) & set(PAPER_ONLY_METHODS)
    assert len(PAPER_ONLY_METHODS) == 8


def translating_clip(frames: int = 4, size: int = 64, dx: int = 1, dy: int = 0) -> torch.Tensor:
    """(3, frames, H, W): camera content moving (+dx, +dy) per frame."""
    a = camera(size)
    return torch.stack([shifted(a, dx * t, dy * t) for t in range(frames)], dim=1)


def test_score_motion_same_pairs_l1_and_epe():
    clips = [translating_clip(4), translating_clip(4, dx=0, dy=1)]  # T = 3 inputs: 2 pairs each
    gt = [
        torch.tensor([1.0, 0.0]).view(1, 2, 1, 1).expand(3, 2, 64, 64),
        torch.tensor([0.0, 1.0]).view(1, 2, 1, 1).expand(3, 2, 64, 64),
    ]
    occ = [torch.zeros(3, 1, 64, 64, dtype=torch.bool) for _ in clips]
    tvl1 = motion_table.score_motion(baselines.flow_motion("tvl1"), clips, flows=gt, occlusions=occ)
    assert tvl1["pairs"] == 4 and tvl1["sec_per_pair"] > 0
    assert tvl1["epe"] < 0.5

    still = baselines.no_motion  # frame t reconstructs frame t+1
    zero = motion_table.score_motion(still, clips, flows=gt, occlusions=occ)
    expected = torch.cat([(c[:, 1:3] - c[:, 0:2]).abs().flatten() for c in clips]).mean().item()
    assert zero["l1"] == pytest.approx(expected, rel=1e-6)
    assert zero["epe"] == pytest.approx(1.0, abs=1e-6)
    assert tvl1["l1"] < 0.5 * zero["l1"]
    assert np.isnan(motion_table.score_motion(still, clips)["epe"])


def test_score_prediction_uses_the_unseen_last_frame():
    clips = [translating_clip(4)]
    seen = []

    def spy(clip):
        seen.append(clip.shape)
        return clip[:, -1]

    scores = motion_table.score_prediction(spy, clips)
    assert seen == [(3, 3, 64, 64)]  # frame T is never shown to the method
    cv = motion_table.score_prediction(lambda c: predict_next("constant_velocity_tvl1", c), clips)
    assert scores["clips"] == 1 and np.isfinite(scores["psnr"]) and 0 < scores["ssim"] < 1
    assert cv["psnr"] > scores["psnr"] + 3 and cv["ssim"] > scores["ssim"]
    with pytest.raises(ValueError, match="T >= 2"):
        motion_table.score_prediction(spy, [torch.zeros(3, 2, 16, 16)])


@pytest.mark.slow
def test_cgm_motion_and_prediction_with_identity_maps_repeat_frames():
    """A CGM-Net forced to identity maps scores exactly like 'repeat the frame' on the same clips."""
    from cgm.network import CGMConfig, CGMNet, set_identity_motion_

    torch.manual_seed(0)
    cfg = CGMConfig(clip_len=4, size=32, width=0.125, num_classes=3, heads=())
    model = set_identity_motion_(CGMNet(cfg))
    clips = [translating_clip(5, size=32)]  # 4 inputs + the unseen frame

    def still(clip):
        return clip[:, :-1].transpose(0, 1), torch.zeros(clip.shape[1] - 1, 2, 32, 32)

    ours, zero = (
        motion_table.score_motion(motion_table.cgm_motion(model), clips),
        motion_table.score_motion(still, clips),
    )
    assert ours["pairs"] == 3
    assert ours["l1"] == pytest.approx(zero["l1"], abs=1e-5)
    pred = motion_table.score_prediction(motion_table.cgm_prediction(model), clips)
    repeat = motion_table.score_prediction(lambda c: predict_next("repeat_last", c), clips)
    assert pred["psnr"] == pytest.approx(repeat["psnr"], abs=1e-3)


def test_evaluation_clips_spreads_over_the_dataset():
    data = [{"clip": torch.zeros(3, 5, 8, 8), "index": i} for i in range(10)]  # 3 pairs per clip
    picked = motion_table.evaluation_clips(data, max_pairs=9)
    assert [d["index"] for d in picked] == [0, 4, 9]
    assert [d["index"] for d in motion_table.evaluation_clips(data, max_pairs=1)] == [0]
    assert len(motion_table.evaluation_clips(data, max_pairs=1000)) == 10
    with pytest.raises(ValueError, match="T\\+1 >= 3"):
        motion_table.evaluation_clips([{"clip": torch.zeros(3, 2, 8, 8)}], max_pairs=4)


def test_table1_frame_puts_paper_values_only_in_paper_column():
    motion = {
        "no_motion": {"l1": 0.02, "epe": float("nan"), "pairs": 6, "sec_per_pair": 0.0},
        "tvl1": {"l1": 0.01, "epe": 0.3, "pairs": 6, "sec_per_pair": 1.0},
        "raft_small": "not run: weights file missing",
        "cgm": {"l1": 0.015, "epe": 0.4, "pairs": 6, "sec_per_pair": 0.5},
    }
    frame = motion_table.table1_frame(
        "table1_motion", motion, dataset="synthmotion", profile="smoke", resolution=112
    )
    assert list(frame.columns) == list(motion_table.TABLE_COLUMNS)
    assert list(frame.columns[: len(tables.COLUMNS)]) == list(tables.COLUMNS)  # the one results layout
    assert (frame["table"] == "table1_motion").all()
    assert frame.set_index("method").loc["tvl1", "row"].iloc[0] == "TV-L1"
    line = frame.set_index(["method", "column"])
    assert line.loc[("tvl1", "l1"), "paper"] == paper_value("table1_motion", "TV-L1", "l1")
    assert line.loc[("cgm", "l1"), "paper"] == paper_value("table1_motion", "Ours (CGM-Net)", "l1")
    assert np.isnan(line.loc[("cgm", "epe"), "paper"])  # the paper reports no EPE
    assert ("no_motion", "epe") not in line.index  # nan EPE: no line
    assert np.isnan(line.loc[("raft_small", "l1"), "measured"])
    quoted = frame[frame["source"] == motion_table.QUOTED]
    assert set(quoted["method"]) == {"flownet2", "pwcnet", "tvnet"}
    assert quoted["measured"].isna().all() and quoted["paper"].notna().all()
    assert (quoted["dataset"] == "UCF-Flow (paper)").all()
    measured = frame[frame["source"] == motion_table.MEASURED]
    assert (measured["dataset"] == "synthmotion").all() and (measured["profile"] == "smoke").all()

    pred = motion_table.table1_frame(
        "table1_prediction",
        {"cgm": {"psnr": 30.0, "ssim": 0.9, "clips": 2, "sec_per_pair": 0.1}},
        dataset="natural",
        profile="smoke",
        resolution=256,
    )
    line = pred.set_index(["method", "column"])
    assert line.loc[("cgm", "psnr"), "paper"] == paper_value("table1_prediction", "Ours (256 px)", "psnr")
    assert len(pred[pred["source"] == motion_table.QUOTED]) == 10  # 5 methods x (psnr, ssim)
    with pytest.raises(ValueError, match="unknown Table 1 method"):
        motion_table.table1_frame(
            "table1_motion", {"flownet3": "x"}, dataset="d", profile="p", resolution=112
        )
