"""KnownMotion: footage frames under known motion, with exact flow in the project's convention."""

import cv2
import numpy as np
import pytest
import torch

from cgm.baselines import backward_warp
from cgm.data import build_dataset, footage
from cgm.data.knownmotion import KnownMotion


@pytest.fixture(scope="module")
def fake_footage(tmp_path_factory):
    """Textured stand-ins for data/footage/*.npy (so the tests need no `make data`)."""
    root = tmp_path_factory.mktemp("footage")
    rng = np.random.default_rng(0)
    for seq in footage.SEQUENCES:
        bbb = seq.name == "bbb"
        n, h, w = (9_700, 64, 96) if bbb else (12, 64, 84)  # bbb's test range starts at 9,600
        frames = np.lib.format.open_memmap(root / f"{seq.name}.npy", "w+", np.uint8, (n, h, w, 3))
        for i in [*range(12), *range(9_600, 9_700)] if bbb else range(n):  # the rest stays 0 (flat)
            coarse = rng.integers(0, 256, (h // 6, w // 6, 3)).astype(np.float32)  # smooth blobs
            frames[i] = np.clip(cv2.resize(coarse, (w, h), interpolation=cv2.INTER_CUBIC), 0, 255)
        frames.flush()
    return root


@pytest.fixture(scope="module")
def items(fake_footage):
    ds = KnownMotion("test", n=6, clip_len=4, size=32, footage_dir=fake_footage)
    return ds, [ds[i] for i in range(len(ds))]


def test_shapes_and_range(items):
    ds, its = items
    for it in its:
        assert it["clip"].shape == (3, 5, 32, 32) and it["clip"].dtype == torch.float32
        assert it["flow"].shape == (4, 2, 32, 32) and it["occlusion"].shape == (4, 1, 32, 32)
        assert it["occlusion"].dtype == torch.bool
        assert -1 <= it["clip"].min() and it["clip"].max() <= 1
        assert 0.01 < it["occlusion"].float().mean() < 0.6  # layers occlude, most pixels are visible
        assert it["flow"].norm(dim=1).max() <= 4.0 * 32 / 64 + 1e-4  # MAX_FLOW, scaled with size
        assert it["flow"].norm(dim=1).mean() > 0.1  # something moves


@pytest.mark.slow
def test_flow_is_exact(items):
    """Frame t+1 at p is frame t rendered at p - flow(p) on non-occluded pixels (to float
    error), and the bilinear warp of frame t by the flow is far closer to t+1 than copying."""
    ds, its = items
    for i, it in enumerate(its):
        scene, _ = ds.scene(i)
        frames = it["clip"].transpose(0, 1)  # (T+1, 3, H, W)
        p = scene.grid(ds.frames)[1:]
        source = p - it["flow"].permute(0, 2, 3, 1).reshape(ds.frames - 1, -1, 2).double()
        then, _ = scene.render(torch.arange(ds.frames - 1), source)  # (T, 3, N)
        valid = ~it["occlusion"].reshape(ds.frames - 1, 1, -1).expand(-1, 3, -1)
        now = frames[1:].reshape(ds.frames - 1, 3, -1)
        assert (then - now).abs()[valid].mean() < 2e-3
        warped = backward_warp(frames[:-1], it["flow"])
        mask = ~it["occlusion"].expand(-1, 3, -1, -1)
        warp_err = (warped - frames[1:]).abs()[mask].mean()
        copy_err = (frames[:-1] - frames[1:]).abs()[mask].mean()
        assert warp_err < 0.5 * copy_err


def test_flow_sign_follows_the_convention():
    """A pure pan by v px per frame (content at q shows at p = q + v t): the flow is +v on every
    pixel whose source stays in the frame, and frame t+1 at p is frame t at p - v."""
    from cgm.data.knownmotion import Scene

    image = torch.linspace(-1, 1, 40 * 40).reshape(1, 40, 40).expand(3, -1, -1).contiguous()
    v = np.array([1.5, -0.5])
    m = np.tile(np.eye(3), (3, 1, 1))
    m[:, :2, 2] = v * np.arange(3)[:, None] + 4  # q -> p = q + v t + 4
    clip, flow, occlusion = Scene([(image, m, None)], 24).clip(3)
    # sources x - 1.5 < 0 (columns 0, 1) and y + 0.5 > 23 (row 23) fall outside the frame
    assert not occlusion[:, 0, :23, 2:].any() and occlusion[:, 0, :, :2].all() and occlusion[:, 0, 23].all()
    assert torch.allclose(flow, torch.as_tensor(v, dtype=torch.float32)[None, :, None, None].expand_as(flow))
    # frame 1 at (x, y) = (3, 10) is frame 0 at (1.5, 10.5); the image is linear in x and y
    assert torch.allclose(clip[:, 1, 10, 3], clip[:, 0, 10:12, 1:3].mean((-2, -1)), atol=1e-5)


def test_deterministic_and_splits_differ(fake_footage, items):
    ds, its = items
    again = KnownMotion("test", n=6, clip_len=4, size=32, footage_dir=fake_footage)
    for i in (0, 5):
        b = again[i]
        assert torch.equal(its[i]["clip"], b["clip"]) and torch.equal(its[i]["flow"], b["flow"])
        assert torch.equal(its[i]["occlusion"], b["occlusion"]) and its[i]["sources"] == b["sources"]
    val = KnownMotion("val", n=1, clip_len=4, size=32, footage_dir=fake_footage)[0]
    assert not torch.equal(val["clip"], its[0]["clip"])


def test_splits_draw_from_their_footage_ranges(fake_footage, items):
    _, its = items
    for it in its:  # test content only from the footage's test ranges (never the laptop's training)
        for source in it["sources"].split(","):
            name, frame = source.split(":")
            assert name == "visp_mbt_cube" or (name == "bbb" and 9_600 <= int(frame) < 11_700)
    train = KnownMotion("train", n=3, clip_len=2, size=32, footage_dir=fake_footage)
    for i in range(3):
        for source in train[i]["sources"].split(","):
            name, frame = source.split(":")
            assert name in ("visp_mire2", "visp_cube") or (name == "bbb" and int(frame) < 9_500)


@pytest.mark.slow
def test_registry_and_evaluate_motion(fake_footage):
    from cgm.network import CGMConfig, CGMNet
    from cgm.protocols import evaluate_motion

    ds = build_dataset("knownmotion", "test", clip_len=4, size=32, future=True, n=2, footage_dir=fake_footage)
    assert isinstance(ds, KnownMotion)
    torch.manual_seed(0)
    cfg = CGMConfig(backbone="r3d18", width=0.125, depth=(1, 1, 1, 1), clip_len=4, size=32, num_classes=1)
    out = evaluate_motion(CGMNet(cfg), ds, batch_size=2)
    assert np.isfinite(out["epe"]) and out["copy_epe"] > 0.1


@pytest.mark.parametrize(
    "kwargs", [{"split": "bogus"}, {"n": 0}, {"size": 8}, {"clip_len": 1, "future": False}]
)
def test_bad_arguments(fake_footage, kwargs):
    with pytest.raises(ValueError, match="KnownMotion"):
        KnownMotion(**{"footage_dir": fake_footage, **kwargs})


@pytest.mark.footage
@pytest.mark.footage
@pytest.mark.skipif(not footage.footage_ready(), reason="run `make data` first")
def test_real_footage_item():
    it = KnownMotion("test", n=2)[1]
    assert it["clip"].shape == (3, 5, 64, 64)
    assert it["flow"].norm(dim=1).max() <= 4.0 + 1e-4
