"""Table 1's ground-truth column: EPE / outliers / ℓ1 scoring and the Fig. 4 verdict."""

import math

import pandas as pd
import pytest
import torch
import torch.nn.functional as F

from cgm import baselines, notebook, verdicts
from cgm import motion_benchmark as mb
from cgm.metrics import outlier_rate


def drifting_item(v=(1.0, -0.5), frames=4, size=24, seed=0) -> dict:
    """A smooth image moving by v px per frame (content at p in t+1 came from p - v)."""
    g = torch.Generator().manual_seed(seed)
    image = F.interpolate(torch.rand(1, 3, 6, 6, generator=g) * 2 - 1, size=(size, size), mode="bicubic")
    flow = torch.tensor(v, dtype=torch.float32)[None, :, None, None].expand(frames - 1, 2, size, size)
    clip = [image[0]]
    for t in range(frames - 1):
        clip.append(baselines.backward_warp(clip[-1][None], flow[t : t + 1])[0])
    occlusion = torch.zeros(frames - 1, 1, size, size, dtype=torch.bool)
    occlusion[..., :2, :] = occlusion[..., :, -2:] = True  # reads clamped at the border
    return {"clip": torch.stack(clip, 1), "flow": flow.clone(), "occlusion": occlusion}


def true_motion(item):
    def motion(clip):
        frames = clip.transpose(0, 1)
        flow = item["flow"][: frames.shape[0] - 1]
        return baselines.backward_warp(frames[:-1], flow), flow

    return motion


def test_outlier_rate():
    gt = torch.zeros(1, 2, 2, 2)
    flow = torch.tensor([[[[0.0, 3.5], [0.0, 2.9]], [[0.0, 0.0], [0.0, 0.0]]]])
    assert outlier_rate(flow, gt) == 0.25
    assert outlier_rate(flow, gt, torch.tensor([[[False, True], [False, False]]])) == 1.0
    with pytest.raises(ValueError, match="outlier_rate"):
        outlier_rate(flow, gt, torch.zeros(1, 2, 2, dtype=torch.bool))


def test_scores_of_the_true_flow_and_of_copying():
    item = drifting_item()
    exact = mb.score_known_motion(true_motion(item), [item])
    assert exact["epe"] < 1e-6 and exact["outliers"] == 0 and exact["l1"] < 1e-5 and exact["pairs"] == 2
    copy = mb.score_known_motion(baselines.no_motion, [item])
    assert copy["epe"] == pytest.approx(math.hypot(1.0, 0.5), rel=1e-6) and copy["l1"] > 0.01
    fast = drifting_item(v=(3.5, 0.0))
    assert mb.score_known_motion(baselines.no_motion, [fast])["outliers"] == 1.0


def test_tap_oracle_flow_is_its_tap():
    item = drifting_item(v=(2.0, -1.0))  # an integer shift: the oracle finds the exact tap
    recon, flow = mb.oracle_flow_motion(9)(item["clip"][:, :-1])
    inner = (slice(None), slice(None), slice(5, -5), slice(5, -5))  # away from the clamped border
    assert torch.allclose(flow[inner], item["flow"][:2][inner])
    assert (recon - item["clip"][:, 1:3].transpose(0, 1))[inner].abs().max() < 1e-5


def test_frame_reading_and_verdict(tmp_path):
    def scores(epe):
        return {"epe": epe, "outliers": 0.01, "l1": 0.02, "pairs": 3, "sec_per_pair": 0.1}

    def written(cgm_epe, box_epe=None):
        known = {"no_motion": scores(1.3), "tvl1": scores(0.24), "cgm": scores(cgm_epe)}
        moto = {"tvl1": scores(0.5), "cgm": scores(cgm_epe * 2)}
        if box_epe is not None:  # the second laptop CGM-Net (table1/cgm_box5)
            known[mb.OURS_BOX5], moto[mb.OURS_BOX5] = scores(box_epe), scores(box_epe * 2)
        frame = mb.benchmark_frame(known, moto, profile="laptop", resolution=64)
        notebook.write_results(frame, "table1_motion", results_dir=tmp_path, stem=mb.STEM)
        return frame

    frame = written(0.72)
    wide = mb.benchmark_wide(frame)
    assert wide.loc["CGM-Net (ours)", (mb.KNOWN, "epe")] == 0.72 and wide.shape == (3, 6)
    ratios = mb.epe_ratios(frame)
    assert ratios[mb.KNOWN][2] == pytest.approx(3.0) and ratios[mb.MOTORCYCLE][2] == pytest.approx(2.88)
    assert any("not within 1.5x" in line for line in mb.reading(frame))
    row = verdicts.verdict_table(tmp_path).set_index("table").loc["Fig. 4"]
    assert row.verdict == verdicts.NOT_REPRODUCED and "3.00x" in row.measured and row.profile == "laptop"
    only_stereo = mb.benchmark_frame({}, {"tvl1": scores(0.5)}, profile="laptop", resolution=64)
    assert set(only_stereo["dataset"]) == {mb.MOTORCYCLE}  # known motion not run (no footage)
    with pytest.raises(ValueError, match="no scores"):
        mb.benchmark_frame({}, {}, profile="laptop", resolution=64)
    written(0.3)  # 1.25x and 1.2x
    row = verdicts.verdict_table(tmp_path).set_index("table").loc["Fig. 4"]
    assert row.outcome == verdicts.REPRODUCED and row.verdict == verdicts.WITH_DEPARTURE
    frame = written(0.3, box_epe=0.72)  # the committed model within, the second at 3.0x
    assert sum("from soft block matching" in line for line in mb.reading(frame)) == 2
    row = verdicts.verdict_table(tmp_path).set_index("table").loc["Fig. 4"]
    assert row.outcome == verdicts.REPRODUCED and "CGM-Net from soft block matching 0.72" in row.measured
    written(0.72, box_epe=0.3)  # only the second model within: the committed model's maps are not motion
    row = verdicts.verdict_table(tmp_path).set_index("table").loc["Fig. 4"]
    assert row.verdict == verdicts.NOT_REPRODUCED


def test_verdict_not_measured_without_the_csv(tmp_path):
    pd.DataFrame().to_csv(tmp_path / "unrelated.csv")
    assert verdicts.verdict_table(tmp_path).set_index("table").loc["Fig. 4"].verdict == verdicts.NOT_MEASURED
