"""The paper profile rehearsed on CPU: tiny datasets in the official layouts, built from the fetched
footage with PyAV, a reduced paper-profile chain (unlabeled pretraining -> Kinetics-400 -> UCF101
and HMDB51, Table 5's) trained and evaluated in one process and under `torchrun --nproc_per_node 2`
(gloo), the two evaluations compared, and Table 5's notebook executed by papermill on the same run
cache with the same overrides: it must read the cached runs, not train again.

Everything is written under pytest's tmp_path (the data, the run cache CGM_RUNS_DIR, the notebook's
results CGM_RESULTS_DIR); nothing under results/ is touched.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import av
import numpy as np
import pytest
from conftest import torchrun_command

from cgm.data.datasets import UCF101_CLASSES
from cgm.data.footage import FOOTAGE_DIR

ROOT = Path(__file__).resolve().parents[1]
FRAMES, WIDTH, HEIGHT = 24, 64, 48  # per video: 2 windows of 9 frames for UCF-Flow/-Pred, 10 test clips of 8
HMDB51_CLASSES = (
    "brush_hair cartwheel catch chew clap climb climb_stairs dive draw_sword dribble drink eat fall_floor "
    "fencing flic_flac golf handstand hit hug jump kick kick_ball kiss laugh pick pour pullup punch push "
    "pushup ride_bike ride_horse run shake_hands shoot_ball shoot_bow shoot_gun sit situp smile smoke "
    "somersault stand swing_baseball sword sword_exercise talk throw turn walk wave"
).split()
# Kinetics-400 labels with spaces and an apostrophe (real ones), then numbered stand-ins up to 400.
KINETICS_LABELS = ["abseiling", "air drumming", "massaging person's head", "tai chi"]
KINETICS_LABELS += [f"stand-in action {i:03d}" for i in range(400 - len(KINETICS_LABELS))]
# The reduced paper profile: the paper's chain and protocols (30 test views) at 32 px, 8 frames,
# a narrow one-block-per-stage 3D-ResNeXt, 2 steps of 4 clips, 2 evaluation videos per set.
OVERRIDES = (
    "size=32 clip_len=8 width=0.25 depth=(1,1,1,1) steps=2 batch_size=4 eval__max_clips=2 num_workers=0"
)


# --------------------------------------------------------------------------- tiny datasets


def footage_frames(start: int, n: int = FRAMES) -> np.ndarray:
    """n consecutive Big Buck Bunny frames from `start`, resized to WIDTH x HEIGHT: (n, H, W, 3)."""
    frames = np.load(FOOTAGE_DIR / "bbb.npy", mmap_mode="r")[start : start + n]
    rows = np.linspace(0, frames.shape[1] - 1, HEIGHT).round().astype(int)
    cols = np.linspace(0, frames.shape[2] - 1, WIDTH).round().astype(int)
    return np.ascontiguousarray(frames[:, rows][:, :, cols])


def write_video(path: Path, start: int) -> None:
    """A video of real footage: MPEG-4 Part 2 in .avi (UCF101, HMDB51), H.264 in .mp4 (Kinetics)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    codec = "mpeg4" if path.suffix == ".avi" else "libx264"
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=25)
        stream.width, stream.height, stream.pix_fmt = WIDTH, HEIGHT, "yuv420p"
        for frame in footage_frames(start):
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


class Footage:
    """Start frames of successive videos, each from another part of the film."""

    def __init__(self):
        self.start = 0

    def __call__(self) -> int:
        self.start += 173
        return self.start


def build_ucf101(root: Path, next_start) -> None:
    """UCF-101/<Class>/v_<Class>_gGG_cCC.avi and ucfTrainTestlist/ (classInd.txt, train/testlist01
    with CRLF lines): 4 classes with videos (HandstandPushups' files spelled HandStandPushups, as in
    the real set), groups 8-9 train and 1-2 test, one test video listed but missing."""
    classes = ["ApplyEyeMakeup", "BandMarching", "Biking", "HandstandPushups"]
    lists = root / "ucfTrainTestlist"
    lists.mkdir(parents=True)
    crlf = "\r\n"
    (lists / "classInd.txt").write_text(
        "".join(f"{i} {c}{crlf}" for i, c in enumerate(UCF101_CLASSES, 1)), newline=""
    )
    train, test = [], []
    for c in classes:
        label = UCF101_CLASSES.index(c) + 1
        spelled = "HandStandPushups" if c == "HandstandPushups" else c
        for group, names in ((8, train), (9, train), (1, test), (2, test)):
            relative = f"{c}/v_{spelled}_g{group:02d}_c01.avi"
            write_video(root / "UCF-101" / relative, next_start())
            names.append(f"{relative} {label}" if names is train else relative)
    test.append("Biking/v_Biking_g03_c01.avi")  # listed, never downloaded
    (lists / "trainlist01.txt").write_text(crlf.join(train) + crlf, newline="")
    (lists / "testlist01.txt").write_text(crlf.join(test) + crlf, newline="")


def build_hmdb51(root: Path, next_start) -> None:
    """hmdb51_org/<class>/<video>.avi and testTrainMulti_7030_splits/ with the 51 x 3 split files
    ('video.avi 0|1|2', trailing spaces); 3 classes with videos, the others' files empty."""
    splits = root / "testTrainMulti_7030_splits"
    splits.mkdir(parents=True)
    for c in HMDB51_CLASSES:
        lines = []
        if c in ("brush_hair", "cartwheel", "catch"):
            for i, flag in enumerate((1, 1, 2, 2, 0)):
                name = f"{c.title()}_video_{i}_{c}_f_nm_np1_fr_med_{i}.avi"
                write_video(root / "hmdb51_org" / c / name, next_start())
                lines.append(f"{name} {flag} ")
        for split in (1, 2, 3):
            (splits / f"{c}_test_split{split}.txt").write_text("".join(f"{ln}\n" for ln in lines))


def build_kinetics(root: Path, next_start) -> None:
    """annotations/{train,validate}.csv with the official columns (label, youtube_id, time_start,
    time_end, split, is_cc) naming all 400 labels, and videos/<split>/<label>/<id>_<s>_<e>.mp4 for
    the first 4 labels (ids starting with '-'); the others are listed but missing, as in any real
    download. The validation CSV lacks some labels that the training CSV has."""
    (root / "annotations").mkdir(parents=True)
    header = "label,youtube_id,time_start,time_end,split,is_cc"
    for split, labels, per_label in (("train", KINETICS_LABELS, 2), ("validate", KINETICS_LABELS[::3], 1)):
        rows = [header]
        for k, label in enumerate(labels):
            for j in range(per_label if k < 4 else 1):
                yid = f"-{split[0]}{k:04d}x{j}Ab"
                rows.append(f'"{label}",{yid},{10 * j},{10 * j + 10},{split},0')
                if k < 4:
                    write_video(
                        root / "videos" / split / label / f"{yid}_{10 * j:06d}_{10 * j + 10:06d}.mp4",
                        next_start(),
                    )
        (root / "annotations" / f"{split}.csv").write_text("\n".join(rows) + "\n")


def build_videofolder(root: Path, next_start) -> None:
    """An unlabeled folder of nested mp4 files (the pretraining's YouTube-8M stand-in)."""
    for relative in ["a/one.mp4", "a/b/two.mp4", "b/three.mp4", "four.mp4", "c/d/e/five.mp4"]:
        write_video(root / relative, next_start())


def build_datasets(root: Path) -> dict[str, str]:
    """Every dataset of the chain under root; returns the environment that points the chain at them."""
    next_start = Footage()
    roots = {k: root / k for k in ("ucf101", "hmdb51", "kinetics400", "videofolder")}
    build_ucf101(roots["ucf101"], next_start)
    build_hmdb51(roots["hmdb51"], next_start)
    build_kinetics(roots["kinetics400"], next_start)
    build_videofolder(roots["videofolder"], next_start)
    return {f"CGM_{k.upper()}_ROOT": str(v) for k, v in roots.items()}


# --------------------------------------------------------------------------- the rehearsal

CHAIN = (
    "table5/hmdb51"  # pretrain/rx3d101 (videofolder; UCF-Flow/-Pred) -> table3/rx3d101 (Kinetics) -> HMDB51
)


def cli(*args: str) -> list[str]:
    sets = [a for kv in OVERRIDES.split() for a in ("--set", kv)]
    return [*args, "--experiment", CHAIN, "--profile", "paper", "--device", "cpu", *sets, "--json"]


def run_cli(command: list[str], env: dict, timeout: int = 600) -> subprocess.CompletedProcess:
    done = subprocess.run(command, env=env, cwd=ROOT, capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, f"{' '.join(command)}\n{done.stderr[-4000:]}"
    return done


def chain_results(runs: Path) -> dict[str, dict]:
    """{experiment: result.json} of every run in a run cache."""
    return {
        f"{p.parent.parent.parent.name}/{p.parent.parent.name}": json.loads(p.read_text())
        for p in runs.glob("*/*/*/result.json")
    }


class Stopwatch:
    """Wall and CPU seconds (this process and its finished children) of each stage, printed at the end."""

    def __init__(self):
        self.stages: list[tuple[str, float, float]] = []
        self.wall, self.cpu = time.perf_counter(), self._cpu()

    @staticmethod
    def _cpu() -> float:
        return sum(
            getattr(resource.getrusage(who), f)
            for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)
            for f in ("ru_utime", "ru_stime")
        )

    def __call__(self, stage: str) -> None:
        wall, cpu = time.perf_counter(), self._cpu()
        self.stages.append((stage, wall - self.wall, cpu - self.cpu))
        self.wall, self.cpu = wall, cpu

    def report(self) -> str:
        rows = [f"  {stage:32s} {wall:6.1f} s wall {cpu:6.1f} s CPU" for stage, wall, cpu in self.stages]
        total = f"  {'total':32s} {sum(r[1] for r in self.stages):6.1f} s wall {sum(r[2] for r in self.stages):6.1f} s CPU"
        return "\n".join(["rehearsal:", *rows, total])


def evaluate_in_one_process(run: Path) -> dict[str, float]:
    """The metrics of a cached run's checkpoint evaluated again here, in one process."""
    import torch

    from cgm import experiments as ex

    cfg = ex.ExperimentConfig.from_dict(json.loads((run / "config.json").read_text()))
    model = ex.model_from_checkpoint(cfg.model, run / "checkpoint.pt")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as the ranks ran
    try:
        return ex.evaluate_config(model, cfg, device="cpu", workers=0)
    finally:
        torch.set_num_threads(threads)


@pytest.mark.slow
@pytest.mark.footage
def test_the_paper_chain_rehearsed_in_one_process_on_two_ranks_and_in_its_notebook(
    tmp_path, tmp_path_factory, monkeypatch
):
    watch = Stopwatch()
    roots = build_datasets(tmp_path / "data")
    for name, root in roots.items():  # the chain's data, for the in-process checks below too
        monkeypatch.setenv(name, root)
    from cgm.data import build_dataset

    for name in ("ucf101", "hmdb51", "kinetics400"):  # every dataset loads in every split
        for split in ("train", "test" if name != "kinetics400" else "val"):
            data = build_dataset(
                name, split, data_root=roots[f"CGM_{name.upper()}_ROOT"], clip_len=8, size=32
            )
            assert len(data) > 0 and len(data.classes) == {"ucf101": 101, "hmdb51": 51}.get(name, 400)
    assert len(build_dataset("videofolder", "train", data_root=roots["CGM_VIDEOFOLDER_ROOT"])) == 5
    watch("datasets built and loaded")

    # One thread per process, and one bytecode cache for all of them: where PYTHONDONTWRITEBYTECODE
    # is set, each process would otherwise compile torch's modules again (~13 s of CPU each).
    base = {**os.environ, **roots, "CGM_THREADS": "1", "OMP_NUM_THREADS": "1"}
    base.pop("PYTHONDONTWRITEBYTECODE", None)
    base["PYTHONPYCACHEPREFIX"] = str(tmp_path_factory.getbasetemp() / "pycache")
    one, two = tmp_path / "runs-one", tmp_path / "runs-two"

    # 1. The chain in one process: three runs trained and evaluated, the result printed once.
    done = run_cli(cli(sys.executable, "-m", "cgm", "run"), {**base, "CGM_RUNS_DIR": str(one)})
    printed = json.loads(done.stdout)
    single = chain_results(one)
    assert sorted(single) == ["pretrain/rx3d101", "table3/rx3d101", CHAIN]
    assert printed["source"] == "computed" and printed["metrics"] == single[CHAIN]["metrics"]
    watch("chain in one process")

    # 2. The same chain on 2 gloo ranks: the same runs (hashes), the result and warnings once. Its
    # numbers differ from one process's: BatchNorm normalises each rank's half of the batch.
    done = run_cli(
        cli(*torchrun_command(2), "-m", "cgm", "run"),
        {**base, "CGM_RUNS_DIR": str(two)},
    )
    printed = json.loads(done.stdout)  # one JSON document: rank 1 printed nothing
    assert done.stderr.count("UCFFlow: 17 of 20 listed videos are missing") == 1
    ranks = chain_results(two)
    assert sorted(ranks) == sorted(single)
    for name, result in ranks.items():
        assert result["hash"] == single[name]["hash"] and result["train"]["world_size"] == 2
        assert sorted(result["metrics"]) == sorted(single[name]["metrics"])
    watch("chain on 2 ranks")

    # 3. The two evaluations agree: the chain's checkpoint evaluated by `cgm eval` on 2 ranks (each
    # scores its share of the videos, rank 0 prints the gathered metrics) and in one process gives
    # the same 30-view top-k per pipeline (motion ℓ1 alike: tests/test_evaluation.py).
    run = next(two.glob(f"{CHAIN}/*/result.json")).parent
    command = cli(*torchrun_command(2), "-m", "cgm", "eval")
    done = run_cli([*command, "--checkpoint", str(run / "checkpoint.pt")], base)
    assert json.loads(done.stdout)["metrics"] == evaluate_in_one_process(run)
    assert "ucf_flow/l1_hr" in ranks["pretrain/rx3d101"]["metrics"]
    watch("checkpoint: 2-rank eval vs 1")

    # 4. Table 5's notebook with the same overrides reads the cached chain: nothing trains again.
    import nbformat
    import papermill

    from cgm.reproduce import kernel_manager_class

    before = {p: p.stat().st_mtime_ns for p in one.rglob("*") if p.is_file()}
    monkeypatch.setenv("CGM_RUNS_DIR", str(one))
    monkeypatch.setenv("CGM_RESULTS_DIR", str(tmp_path / "results"))
    monkeypatch.setenv("CGM_THREADS", "1")
    out = tmp_path / "table5.ipynb"
    papermill.execute_notebook(
        str(ROOT / "notebooks" / "table5_ucf_hmdb.ipynb"),
        str(out),
        parameters={
            "profile": "paper",
            "device": "cpu",
            "dataset": "hmdb51",
            "folds": "[1]",
            "overrides": OVERRIDES,
        },
        cwd=str(ROOT / "notebooks"),
        progress_bar=False,
        kernel_name="python3",
        kernel_manager_class=kernel_manager_class(),  # IPC, as `make reproduce` runs the notebooks
        start_timeout=300,
    )
    text = "\n".join(
        o.get("text", "") for c in nbformat.read(str(out), as_version=4).cells for o in c.get("outputs", [])
    )
    assert "computed" not in text and f"{CHAIN:30s} cache" in text
    assert {p: p.stat().st_mtime_ns for p in one.rglob("*") if p.is_file()} == before
    (written,) = (tmp_path / "results").glob("table5_ucf_hmdb*.csv")
    import pandas as pd

    frame = pd.read_csv(written)
    ours = frame[frame.pipeline == "lr+hr"].measured.item()
    assert ours == pytest.approx(single[CHAIN]["metrics"]["hmdb51/lr+hr/top1"])
    watch("notebook reads the cache")
    print(watch.report())
