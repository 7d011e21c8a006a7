"""Evaluation that fits and scales: forward passes bounded by a memory budget whatever the number
of views, the measured bytes per clip, DataLoader workers, and 2 gloo ranks equal to one process."""

import json
import os
import subprocess
import textwrap
from pathlib import Path

import pytest
import torch
from conftest import torchrun_command

from cgm.memory import GIB, LiveTensorBytes, clips_per_forward, forward_bytes, forward_peak_bytes
from cgm.metrics import average_views, topk_accuracy
from cgm.network import PIPELINE_HEADS, CGMConfig, CGMNet, fuse
from cgm.protocols import PIPELINES, evaluate_action, evaluate_motion

ROOT = Path(__file__).resolve().parents[1]
MODEL = dict(clip_len=4, size=16, width=0.125, depth=(1, 1, 1, 1), num_classes=6)


class Views(torch.utils.data.Dataset):
    """`n` labelled videos of `views` random test views (3, T, 16, 16) each, seeded by index."""

    def __init__(self, n: int, views: int, *, t: int = 4, classes: int = 6):
        self.n, self.views, self.t, self.classes = n, views, t, classes

    def __len__(self):
        return self.n

    def __getitem__(self, i):
        g = torch.Generator().manual_seed(1000 + i)
        clip = torch.rand((self.views, 3, self.t, 16, 16), generator=g) * 2 - 1
        item = {"clip": clip if self.views > 1 else clip[0], "label": (i * 5) % self.classes, "index": i}
        return {**item, "views": self.views} if self.views > 1 else item


def model_of(seed: int = 0) -> CGMNet:
    torch.manual_seed(seed)
    return CGMNet(CGMConfig(**MODEL)).eval()


@torch.no_grad()
def reference_action(model, dataset, pipelines=PIPELINES) -> dict[str, float]:
    """The plain protocol: each video's views in one forward pass, averaged, ranked."""
    scores, labels = {p: [] for p in pipelines}, []
    for i in range(len(dataset)):
        item = dataset[i]
        clip = item["clip"] if item["clip"].ndim == 5 else item["clip"][None]
        logits = model(clip).logits
        for p in pipelines:
            scores[p].append(average_views(fuse(logits, p), len(clip)))
        labels.append(item["label"])
    labels = torch.tensor(labels)
    return {
        f"{p}/{k}": v
        for p in pipelines
        for k, v in topk_accuracy(torch.cat(scores[p]), labels, (1, 5)).items()
    }


def test_live_tensor_bytes_sees_allocations_and_frees():
    x = torch.zeros(1000, 1000)  # 4 MB before the block: not counted
    with LiveTensorBytes() as live:
        a = x + 1  # 4 MB
        view = a.view(-1)  # an alias: nothing new
        b = a * 2  # 8 MB held
        del a, view
        c = b + 1  # a freed: still 8 MB
        del b, c
    assert live.peak == 8_000_000 and live.live == 0


def test_the_bytes_of_a_forward_pass_grow_linearly_with_its_clips(seeded_one_thread):
    model = model_of()
    peaks = [forward_peak_bytes(model, torch.rand(n, 3, 4, 16, 16)) for n in (1, 2, 4)]
    fixed, per_clip = forward_bytes(model, torch.rand(3, 4, 16, 16), "cpu")
    assert per_clip > 16 * 16 * 4 * 3 * 4  # more than the input clip itself
    assert peaks == pytest.approx([fixed + n * per_clip for n in (1, 2, 4)], rel=0.01)


@pytest.mark.parametrize("views, videos", [(1, 6), (30, 3)])
@pytest.mark.slow
def test_no_forward_pass_grows_with_the_views(views, videos, seeded_one_thread):
    """With a budget of 4 clips, 1 view or 30 views per video: every pass sees at most 4 clips, and
    the view-averaged top-k equal the plain protocol's (all of a video's views in one pass)."""
    model = model_of()
    fixed, per_clip = forward_bytes(model, torch.rand(3, 4, 16, 16), "cpu")
    budget = (fixed + 4.5 * per_clip) / GIB
    assert clips_per_forward(model, torch.rand(3, 4, 16, 16), device="cpu", memory_gib=budget) == 4
    sizes = []
    hook = model.register_forward_pre_hook(lambda m, args: sizes.append(args[0].shape[0]))
    data = Views(videos, views)
    got = evaluate_action(model, data, batch_size=8, memory_gib=budget)
    hook.remove()
    assert max(sizes) == 4  # not 8 videos x 30 views = 240
    assert sizes[:2] == [1, 2] and sum(sizes[2:]) == videos * views  # the probes, then every view once
    want = reference_action(model, data)
    assert {k: got[k] for k in want} == pytest.approx(want, abs=1e-9)
    assert got["clips"] == videos


def test_workers_decode_the_same_numbers(seeded_one_thread):
    model = model_of()
    data = Views(6, 3)
    assert evaluate_action(model, data, workers=2, batch_size=2) == evaluate_action(model, data, batch_size=2)


def test_bad_runtime_settings_fail_before_work():
    model = model_of()
    with pytest.raises(ValueError, match="memory budget must be a positive number of GiB"):
        evaluate_action(model, Views(2, 1), memory_gib=0)
    with pytest.raises(ValueError, match="workers must be an integer >= 0"):
        evaluate_action(model, Views(2, 1), workers=-1)
    assert set(PIPELINE_HEADS) == set(PIPELINES)


# --------------------------------------------------------------------------- 2 gloo ranks

DDP_EVAL = textwrap.dedent("""
    import json, sys
    sys.path.insert(0, {tests!r})
    import torch.distributed as dist
    from test_evaluation import Views, model_of
    from cgm import distributed
    from cgm.data import build_dataset
    from cgm.protocols import evaluate_action, evaluate_motion
    info = distributed.init_distributed("cpu")
    model = model_of()
    motion = build_dataset("synthmotion", "test", clip_len=4, size=16, future=True, n=5)
    out = {{"world": dist.get_world_size(), "action": evaluate_action(model, Views(7, 3), batch_size=2),
            "motion": evaluate_motion(model, motion, batch_size=2)}}
    if info.is_main:
        json.dump(out, open({res!r}, "w"))
    distributed.cleanup()
""")


@pytest.mark.slow
def test_two_gloo_ranks_evaluate_like_one_process(tmp_path, tmp_path_factory, seeded_one_thread):
    """7 videos of 3 views and 5 motion clips split over 2 ranks in blocks of one batch: the
    gathered metrics are exactly those of one process (each forward pass holds the same clips)."""
    from cgm.data import build_dataset

    script = tmp_path / "ddp_eval.py"
    script.write_text(DDP_EVAL.format(tests=str(ROOT / "tests"), res=str(tmp_path / "res.json")))
    command = [*torchrun_command(2), str(script)]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    env.pop("PYTHONDONTWRITEBYTECODE", None)  # else each rank compiles torch's modules again
    env["PYTHONPYCACHEPREFIX"] = str(tmp_path_factory.getbasetemp() / "pycache")
    done = subprocess.run(command, env=env, cwd=ROOT, timeout=300, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]
    ddp = json.loads((tmp_path / "res.json").read_text())
    model = model_of()
    motion = build_dataset("synthmotion", "test", clip_len=4, size=16, future=True, n=5)
    assert ddp["world"] == 2
    assert ddp["action"] == evaluate_action(model, Views(7, 3), batch_size=2)
    assert ddp["motion"] == evaluate_motion(model, motion, batch_size=2)
    assert ddp["motion"]["clips"] == 5 and "epe" in ddp["motion"]
