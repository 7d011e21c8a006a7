"""`python -m cgm flow` for people: the committed model without training, whole frames at their
aspect ratio, a colour key, labelled panels, OpenCV's flow beside CGM-Net's, validated options."""

import json

import numpy as np
import pytest
import torch

from cgm import flow as cgm_flow


@pytest.fixture(scope="module")
def video(tmp_path_factory):
    """A 6-frame 3:2 mp4 of a fixed texture panning right by 1 px per frame."""
    import av

    rng = np.random.default_rng(0)
    image = np.kron(rng.integers(0, 256, (15, 30, 3)), np.ones((4, 4, 1))).astype(np.uint8)
    path = tmp_path_factory.mktemp("video") / "pan.mp4"
    with av.open(str(path), "w") as container:
        stream = container.add_stream("mpeg4", rate=10)
        stream.width, stream.height, stream.pix_fmt = 48, 32, "yuv420p"
        for t in range(6):
            frame = np.ascontiguousarray(image[10:42, 40 - t : 88 - t])  # content moves right
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


@pytest.fixture(scope="module")
def tiny_model():
    from cgm.experiments import SMOKE_MODEL
    from cgm.network import CGMConfig, CGMNet

    torch.manual_seed(0)
    return CGMNet(CGMConfig(**{**SMOKE_MODEL, "width": 0.125, "clip_len": 4, "num_classes": 1, "heads": ()}))


def test_frame_geometry_keeps_the_aspect_ratio_and_says_what_it_cropped():
    assert cgm_flow.frame_geometry(1280, 720, 128, 8)[:4] == (128, 72, 128, 72)
    rw, rh, cw, ch, note = cgm_flow.frame_geometry(640, 272, 128, 8)
    assert (rw, rh, cw, ch) == (128, 54, 128, 48) and "centre-cropped to 128x48" in note
    assert "cropped" not in cgm_flow.frame_geometry(720, 1280, 64, 4)[4]  # portrait: 36x64
    with pytest.raises(ValueError, match="--size"):
        cgm_flow.frame_geometry(1000, 50, 64, 8)  # 64x3: below one block of 8


@pytest.mark.slow
def test_flow_writes_labelled_frames_with_a_key_and_the_compared_flow(video, tiny_model, tmp_path):
    summary = cgm_flow.run_flow(video, tmp_path, model=tiny_model, size=40, compare="tvl1", progress=False)
    h, w = summary["height"], summary["width"]
    assert (h, w) == (24, 40) and "48x32 -> 40x27" in summary["note"]  # 3:2 kept, cropped to 4s
    pngs = sorted((tmp_path / "flow").glob("*.png"))
    assert len(pngs) == 5
    from PIL import Image

    panel = np.asarray(Image.open(pngs[0]))
    assert panel.shape[0] > h and panel.shape[1] > 2 * w + 48  # label strip; CGM-Net | TV-L1 | key
    arrays = np.load(tmp_path / "motion_maps.npz")
    assert arrays["compare_flow"].shape == arrays["flow"].shape == (5, 2, h, w)
    # TV-L1 sees the 1 px/frame pan to the right: its mean x-flow is near +1 away from the borders
    assert 0.6 < arrays["compare_flow"][:, 0, 4:-4, 4:-4].mean() < 1.4
    agree = summary["compare"]
    assert agree["method"] == "tvl1" and -1 <= agree["corr_x"] <= 1 and agree["compare_mean_px"] > 0.5
    check = np.asarray(Image.open(tmp_path / "prediction_check.png"))
    assert check.shape[0] > h and check.shape[1] >= 4 * w  # four labelled panels
    assert json.loads((tmp_path / "summary.json").read_text())["width"] == w


def test_legend_is_the_colour_code():
    from cgm.viz import flow_legend, flow_to_rgb

    key = flow_legend(49, 2.0)
    top = key.shape[0] - 49 - (key.shape[0] - 49) // 2  # the wheel sits between two equal strips
    wheel = key[top : top + 49]
    assert (wheel[24, 24] == 255).all()  # centre: no motion is white
    right = flow_to_rgb(np.array([[[2.0]], [[0.0]]]), max_mag=2.0)[0, 0]
    assert np.abs(wheel[24, 48].astype(int) - right).max() <= 2  # the rim on the right: +x at 2 px


@pytest.mark.parametrize(
    "args, option",
    [(["--size", "0"], "--size"), (["--max-frames", "1"], "--max-frames"), (["--size", "8"], "--size")],
)
def test_bad_options_are_one_line_errors_naming_the_option(video, tmp_path, capsys, args, option):
    from cgm.__main__ import main

    assert main(["flow", str(video), "--out", str(tmp_path), *args]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and option in err and "\n" not in err
    assert not (tmp_path / "flow").exists()  # checked before any work


@pytest.mark.parametrize("content, says", [(b"", "is empty"), (b"not a checkpoint", "cannot be read")])
def test_a_bad_checkpoint_is_a_one_line_error(video, tmp_path, capsys, content, says):
    from cgm.__main__ import main

    bad = tmp_path / "bad.pt"
    bad.write_bytes(content)
    assert main(["flow", str(video), "--out", str(tmp_path / "out"), "--checkpoint", str(bad)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and says in err and str(bad) in err and "\n" not in err


def test_compare_takes_only_known_methods(video, tmp_path):
    from cgm.__main__ import main

    with pytest.raises(SystemExit):
        main(["flow", str(video), "--out", str(tmp_path), "--compare", "raft"])


def test_no_training_without_train(monkeypatch):
    """Without cached weights `cgm flow` says how to get them instead of training."""
    import cgm.experiments.runs as runs

    monkeypatch.setattr(runs, "find_cached", lambda *a, **k: None)
    with pytest.raises(FileNotFoundError, match="--train"):
        cgm_flow.load_model()


def test_the_default_model_is_the_committed_laptop_model(monkeypatch):
    import cgm.experiments.runs as runs

    def no_training(*a, **k):
        raise AssertionError("cgm flow trained a model without --train")

    monkeypatch.setattr(runs, "_compute", no_training)
    model = cgm_flow.load_model()
    assert model.cfg.size == 64 and model.cfg.hr_prior == "cue_flow"
    assert cgm_flow.frame_multiple(model.cfg) == 8


def test_a_video_whose_maps_exceed_the_memory_budget_is_refused_before_the_network_runs():
    cgm_flow.check_maps_memory(301, 96, 128, 17)  # 300 pairs of 17x17 maps at 128x96: 2.0 GiB
    with pytest.raises(ValueError, match=r"9000 frames .* 59\.5 GiB .* --max-frames 605 "):
        cgm_flow.check_maps_memory(9000, 96, 128, 17)
