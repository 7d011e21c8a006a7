"""Hostile inputs: each ends in a clear error, a counted skip, or correct behaviour.

One test (or one parametrized row) per input a careless or hostile user can give; the count of
rows is quoted in the README's Status.
"""

import errno
import os
import socket
import subprocess
import sys
import warnings

import cv2
import pytest
import torch
from conftest import fixture_frame, write_frame_folder, write_video

from cgm import checkpoints, motion_table
from cgm import experiments as ex
from cgm.__main__ import main
from cgm.data.datasets import HMDB51, UCF101, Kinetics, VideoFolder, VideoList
from cgm.data.decode import VideoError, read_frames
from cgm.errors import DataError
from cgm.network import CGMConfig, CGMNet
from cgm.protocols import evaluate_action, evaluate_motion
from cgm.train import NonFiniteLossError, TrainConfig, Trainer, read_metrics

TINY = dict(steps=2, width=0.125, size=16, clip_len=4, batch_size=2, n=8, eval__max_clips=2)
TINY_MODEL = dict(clip_len=4, size=16, width=0.125, depth=(1, 1, 1, 1), num_classes=4)


# --------------------------------------------------------------------------- decoding


def test_frame_folder_with_a_non_utf8_name_decodes(tmp_path):
    """cv2.imread crashed the process on such names; frames are now decoded from memory."""
    folder = os.path.join(os.fsencode(tmp_path), b"clip_\xff\xfe")
    os.makedirs(folder)
    for i in range(3):
        ok, png = cv2.imencode(".png", fixture_frame(i))
        with open(os.path.join(folder, b"img_\xe9%d.png" % i), "wb") as f:
            f.write(png.tobytes())
    frames = read_frames(os.fsdecode(folder), [0, 2])
    assert frames.shape == (2, 32, 40, 3)


@pytest.mark.parametrize("kind", ["video", "frames"])
def test_frames_above_max_pixels_are_refused(tmp_path, kind):
    path = (
        write_video(tmp_path / "v.mp4", num_frames=4)
        if kind == "video"
        else write_frame_folder(tmp_path / "f", num_frames=4)
    )
    with pytest.raises(VideoError, match="40x32 exceed max_pixels=1000"):
        read_frames(path, [0], max_pixels=1000)
    data = VideoFolder(tmp_path, clip_len=2, size=24, resize=None, max_pixels=1000, max_failures=0)
    with warnings.catch_warnings(), pytest.raises(RuntimeError, match="max_pixels"):
        warnings.simplefilter("ignore")
        data[0]  # a refused video is a counted skip; here every video is refused


def test_skips_are_counted_once_and_reported_once_per_epoch(tmp_path):
    for v in range(3):
        write_frame_folder(tmp_path / "videos" / f"v{v}", num_frames=6)
    for frame in (tmp_path / "videos" / "v1").iterdir():  # one bad video
        frame.write_bytes(b"not a png")
    data = VideoFolder(tmp_path / "videos", clip_len=2, future=True, size=24, resize=None)
    cfg = TrainConfig(steps=2, batch_size=3, progress=False, tensorboard=False, checkpoint_every=10)
    model = torch.nn.Conv3d(3, 9, 1)
    loss = lambda out, clip, labels: (out.mean() * 0 + clip.mean() ** 2, {})  # noqa: E731
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        trainer = Trainer(model, data, cfg, out_dir=tmp_path / "run", loss_fn=loss)
        trainer.fit()
    epochs = [str(w.message) for w in caught if "unreadable videos were skipped" in str(w.message)]
    assert epochs == [m for m in epochs if "1 unreadable" in m] and len(epochs) == 2  # once per epoch
    assert trainer.skipped == {0: {str(tmp_path / "videos" / "v1")}, 1: {str(tmp_path / "videos" / "v1")}}


# --------------------------------------------------------------------------- annotation files


def _ucf(tmp_path, class_ind: bytes, train_list: bytes):
    ann = tmp_path / "ann"
    ann.mkdir(exist_ok=True)
    (ann / "classInd.txt").write_bytes(class_ind)
    (ann / "trainlist01.txt").write_bytes(train_list)
    write_video(tmp_path / "videos" / "YoYo" / "v_YoYo_g01_c01.avi", num_frames=8, codec="mpeg4")
    return UCF101(tmp_path / "videos", ann, train=True, clip_len=2, size=24, resize=None)


@pytest.mark.parametrize(
    "class_ind, train_list, match",
    [
        (
            b"1 ApplyEyeMakeup\nYoYo\n",
            b"YoYo/v_YoYo_g01_c01.avi 2\n",
            r"classInd.txt:2: expected '2 ClassName'",
        ),
        (
            b"1 A\none YoYo\n",
            b"YoYo/v_YoYo_g01_c01.avi 2\n",
            r"classInd.txt:2: class index 'one' is not an integer",
        ),
        (
            b"1 A\n2 YoYo\n",
            b"YoYo/v_YoYo_g01_c01.avi two\n",
            r"trainlist01.txt:1: label 'two' is not an integer",
        ),
        (
            b"1 A\n2 YoYo\n",
            "YoYo/v_YoYo_g01_c01.avi 2\nA/v_Caf\xe9.avi 1\n".encode("latin-1"),
            r"trainlist01.txt:2: not UTF-8 text \(byte 0xe9\)",
        ),
    ],
)
def test_bad_ucf_annotations_name_file_and_line(tmp_path, class_ind, train_list, match):
    with pytest.raises(ValueError, match=match):
        _ucf(tmp_path, class_ind, train_list)


def test_a_utf8_bom_is_stripped(tmp_path):
    data = _ucf(tmp_path, "\ufeff1 A\n2 YoYo\n".encode(), "\ufeffYoYo/v_YoYo_g01_c01.avi 2\n".encode())
    assert data.classes == ["A", "YoYo"] and [y for _, y in data.samples] == [1]  # first video kept


def test_kinetics_bad_time_names_file_and_line(tmp_path):
    (tmp_path / "train.csv").write_text(
        "label,youtube_id,time_start,time_end,split\na,x,0,10,train\na,y,one,10,train\n"
    )
    (tmp_path / "videos").mkdir()
    with pytest.raises(ValueError, match=r"train.csv:3: time_start 'one' is not a number"):
        Kinetics(tmp_path / "videos", tmp_path / "train.csv")


@pytest.mark.parametrize(
    "line, match",
    [
        ("a.mp4 -1", "label -1 is out of range"),
        ("a.mp4 x1", "label 'x1' is not an integer"),
        (
            "a.mp4 1000000000000",
            "label 1000000000000 is out of range; labels are 0-based class indices below 100000",
        ),
    ],
)
def test_videolist_bad_labels_are_refused_at_load(tmp_path, line, match):
    write_video(tmp_path / "a.mp4", num_frames=4)
    (tmp_path / "list.txt").write_text(line + "\n")
    with pytest.raises(ValueError, match="list.txt:1: " + match):
        VideoList(tmp_path, tmp_path / "list.txt")


# --------------------------------------------------------------------------- configs


@pytest.mark.parametrize(
    "overrides, match",
    [
        ({"lr": 1e999}, "lr=inf: not a finite number"),
        ({"steps": "abc"}, "steps must be int | None, got 'abc'"),
        ({"steps": 2.5}, "steps must be int"),
        ({"width": "abc"}, "wrong type"),
        ({"dropout": float("nan")}, "not a finite number"),
        ({"device": "foo"}, "device 'foo' is not supported"),
        ({"seed": -1}, "seed must be >= 0"),
        ({"n": "abc"}, "n .number of clips. must be an integer"),
        ({"fold": 4}, "fold must be 1, 2 or 3"),
        ({"eval__max_clips": 0}, "max_clips must be an integer >= 1"),
        ({"data_root": "/data/ucf101"}, "embedded and reads no data_root"),
        ({"data__listfile": "x"}, "data has no field 'listfile'"),
        ({"progress": "yes"}, "progress must be bool"),
    ],
)
def test_bad_config_values_are_refused_when_the_config_is_built(overrides, match):
    with pytest.raises(ValueError, match=match):
        ex.resolve("table6/cgmul", **overrides)


@pytest.mark.parametrize(
    "overrides, match",
    [
        ({"clip_len": 100000}, r"model.clip_len=100000 is out of range: allowed 1..512"),
        ({"size": 2**40}, r"model.size=1099511627776 is out of range: allowed 4..2048"),
        ({"n": 10**12}, r"data.kw.n=1000000000000 is out of range: allowed 1..10000000"),
        ({"seed": 2**70}, r"train.seed=1180591620717411303424 is out of range: allowed 0..4294967295"),
        ({"batch_size": 10**6}, r"train.batch_size=1000000 is out of range"),
        ({"steps": 10**12}, r"train.steps=1000000000000 is out of range"),
        ({"width": 1e3}, r"model.width=1000.0 is out of range: allowed \(0, 16\]"),
        ({"decay_every": 0}, r"decay_every must be >= 1"),
        ({"eval__max_clips": 10**12}, r"max_clips=1000000000000 is out of range"),
        ({"data__kw": "notadict"}, r"override data__kw='notadict': kw must be a dict"),
        ({"data__kw": {"bogus": 1}}, r"data.kw: 'synthmotion' takes no bogus; valid: camera"),
        (
            {"data__kw": {"camera_speed": [1.0, 1e9]}},
            r"data.kw.camera_speed=\[1.0, 1000000000.0\] is out of range",
        ),
        ({"fold": 2}, r"'synthmotion' takes no fold"),
    ],
)
def test_numbers_out_of_range_are_refused_at_resolve_time(overrides, match):
    with pytest.raises(ValueError, match=match):
        ex.resolve("table6/cgmul", **overrides)


# --------------------------------------------------------------------------- checkpoints


def _tiny_checkpoint(tmp_path, **model):
    cfg = CGMConfig(**{**TINY_MODEL, **model})
    path = checkpoints.save(
        {"model": CGMNet(cfg).state_dict(), "model_config": cfg.to_dict()}, tmp_path / "w.pt"
    )
    return cfg, path


def test_eval_refuses_a_checkpoint_of_another_model_config(tmp_path):
    _, path = _tiny_checkpoint(tmp_path, upsampler="nearest")
    with pytest.raises(checkpoints.CheckpointError, match="upsampler: 'nearest' -> 'bilinear'"):
        ex.model_from_checkpoint(CGMConfig(**TINY_MODEL, upsampler="bilinear"), path)


def test_init_from_another_width_fails_listing_what_does_not_fit(tmp_path):
    _, path = _tiny_checkpoint(tmp_path, heads=())
    model = CGMNet(CGMConfig(**{**TINY_MODEL, "width": 0.25}))
    with pytest.raises(checkpoints.CheckpointError, match="shape mismatch: encoder"):
        ex.init_from_checkpoint(model, path)
    loaded, fresh = ex.init_from_checkpoint(CGMNet(CGMConfig(**TINY_MODEL)), path)  # heads named fresh
    assert fresh and all(k.split(".")[0] in ("backbone_head", "lr_head", "hr_head") for k in fresh)


def _trainer(tmp_path, model_config, resume=True):
    cfg = TrainConfig(steps=1, batch_size=2, progress=False, tensorboard=False)
    data = [{"clip": torch.zeros(3, 3, 8, 8)}] * 2
    return Trainer(
        torch.nn.Conv3d(3, 9, 1),
        data,
        cfg,
        out_dir=tmp_path,
        model_config=model_config,
        loss_fn=lambda out, clip, labels: (out.mean(), {}),
        resume=resume,
    )


def test_resume_refuses_another_model_config(tmp_path):
    _trainer(tmp_path, {"upsampler": "nearest"}, resume=False).fit()
    with pytest.raises(checkpoints.CheckpointError, match="model config: upsampler: 'nearest' -> 'bilinear'"):
        _trainer(tmp_path, {"upsampler": "bilinear"})


@pytest.mark.parametrize(
    "content, match",
    [(b"", "is empty"), (b"PK\x03\x04trunc", "cannot be read"), (None, "holds weights only")],
)
def test_resume_from_a_bad_checkpoint_is_refused(tmp_path, content, match):
    path = tmp_path / "checkpoint.pt"
    if content is None:
        checkpoints.save({"model": torch.nn.Conv3d(3, 9, 1).state_dict()}, path)
    else:
        path.write_bytes(content)
    with pytest.raises(checkpoints.CheckpointError, match=match):
        _trainer(tmp_path, {})


@pytest.mark.parametrize(
    "tamper, match",
    [
        (lambda s: s.update(step="3"), "its step is '3', expected an integer >= 0"),
        (lambda s: s["optimizer"].pop("state"), r"its optimizer state is malformed \(KeyError"),
        (lambda s: s.update(scheduler=[1]), "its scheduler state is malformed"),
        (lambda s: s.update(rng={}), "its rng state is malformed"),
    ],
)
def test_resume_from_a_malformed_training_checkpoint_is_refused(tmp_path, tamper, match):
    _trainer(tmp_path, {}, resume=False).fit()
    state = checkpoints.load(tmp_path / "checkpoint.pt")
    tamper(state)
    checkpoints.save(state, tmp_path / "checkpoint.pt")
    with pytest.raises(checkpoints.CheckpointError, match=match):
        _trainer(tmp_path, {})


def test_non_finite_weights_are_never_checkpointed(tmp_path):
    trainer = _trainer(tmp_path, {}, resume=False)
    with torch.no_grad():
        trainer.model.weight[0] = float("nan")
    with pytest.raises(NonFiniteLossError, match="not finite at step 0.*before writing a checkpoint"):
        trainer.save()
    assert not (tmp_path / "checkpoint.pt").exists()


@pytest.mark.slow
def test_nan_in_evaluation_raises():
    class NaNClips(torch.utils.data.Dataset):
        def __len__(self):
            return 2

        def __getitem__(self, i):
            return {"clip": torch.full((3, 5, 16, 16), float("nan") if i else 0.0), "label": 0, "index": i}

    torch.manual_seed(0)
    model = CGMNet(CGMConfig(**TINY_MODEL))
    with pytest.raises(ValueError, match=r"clips \[1\] of NaNClips hold NaN"):
        evaluate_motion(model, NaNClips())
    with torch.no_grad():
        model.encoder.stem[0].weight.fill_(float("nan"))
    clean = [{"clip": torch.zeros(3, 5, 16, 16), "label": 0, "index": 0}]
    with pytest.raises(FloatingPointError, match="not finite"):
        evaluate_action(model, clean)


# --------------------------------------------------------------------------- the run cache


@pytest.mark.slow
def test_an_interrupted_recompute_keeps_the_cached_run(tmp_path, monkeypatch):
    first = ex.run("table6/cgmul", runs_dir=tmp_path, **TINY)
    before = (first.path / "result.json").read_text()

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(ex.runs, "train_experiment", interrupted)
    with pytest.raises(KeyboardInterrupt):
        ex.run("table6/cgmul", runs_dir=tmp_path, force=True, **TINY)
    assert (first.path / "result.json").read_text() == before
    assert ex.run("table6/cgmul", runs_dir=tmp_path, **TINY).source == "cache"
    assert not list(first.path.parent.glob(".*.lock"))  # the lock went with the interruption


def test_a_run_folder_is_locked_and_stale_locks_are_taken_over(tmp_path):
    lock = tmp_path / ".abc.lock"
    with ex.run_lock(lock, "run x"):
        assert f'"pid": {os.getpid()}' in lock.read_text()
        with pytest.raises(
            ex.RunLockedError, match=f"run x is being computed by pid {os.getpid()} on {socket.gethostname()}"
        ):
            with ex.run_lock(lock, "run x"):
                pass
    assert not lock.exists()
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    lock.write_text(f'{{"pid": {dead.pid}, "host": "{socket.gethostname()}", "started": "then"}}')
    with ex.run_lock(lock, "run x"):  # its process is gone: taken over
        assert f'"pid": {os.getpid()}' in lock.read_text()


# --------------------------------------------------------------------------- the CLI


@pytest.mark.parametrize(
    "argv, message",
    [
        (["run", "--experiment", "table6/cgmul", "--set", "steps=abc"], "steps must be int | None"),
        (["run", "--experiment", "table6/cgmul", "--set", "name=ucf999"], "unknown dataset 'ucf999'"),
        (["run", "--experiment", "table6/cgmul", "--device", "foo"], "device 'foo' is not supported"),
        (["run", "--experiment", "table6/cgmul", "--data-root", "/data"], "embedded and reads no data_root"),
        (["run", "--experiment", "table6/cgmul", "--set", "lr=1e999"], "not a finite number"),
        (["run", "--experiment", "table6/cgmul", "--set", "data__kw='notadict'"], "kw must be a dict"),
        (["run", "--experiment", "table6/cgmul", "--set", "seed=2**70"], "seed must be int"),
        (
            ["run", "--experiment", "table6/cgmul", "--set", "seed=1180591620717411303424"],
            "train.seed=1180591620717411303424 is out of range",
        ),
        (
            ["run", "--experiment", "table6/cgmul", "--set", "clip_len=100000"],
            "clip_len=100000 is out of range",
        ),
    ],
)
def test_cli_bad_input_is_a_one_line_message(argv, message, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and err.startswith("error: ") and "Traceback" not in err


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message on a machine without CUDA")
@pytest.mark.parametrize("command", ["eval", "train", "run"])
def test_cli_cuda_without_cuda_fails_before_work(command, capsys, tmp_path):
    extra = {
        "eval": ["--checkpoint", str(tmp_path / "c.pt")],
        "train": ["--out", str(tmp_path / "o")],
        "run": [],
    }
    assert main([command, "--experiment", "table6/cgmul", "--device", "cuda", *extra[command]]) == 2
    assert "CUDA is not available" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize(
    "content, message",
    [(b"", "is empty"), (b"PK\x03\x04trunc", "cannot be read"), (None, "holds weights only")],
)
def test_cli_resume_from_a_bad_checkpoint(tmp_path, capsys, content, message):
    out = tmp_path / "o"
    out.mkdir()
    if content is None:
        checkpoints.save({"model": {"w": torch.zeros(1)}}, out / "checkpoint.pt")
    else:
        (out / "checkpoint.pt").write_bytes(content)
    argv = ["train", "--experiment", "table6/cgmul", "--out", str(out), "--resume", "--steps", "1"]
    assert main(argv) == 2
    assert message in capsys.readouterr().err


def test_cli_train_passes_model_overrides_to_the_pretraining(tmp_path, monkeypatch):
    seen = {}

    def fake_run(name, profile, **kw):
        seen.update(kw, name=name)
        raise ValueError("stop here")

    monkeypatch.setattr(ex, "run", fake_run)
    assert (
        main(
            [
                "train",
                "--experiment",
                "table7/cgmul",
                "--out",
                str(tmp_path),
                "--set",
                "width=0.5",
                "--set",
                "num_classes=4",
                "--steps",
                "1",
            ]
        )
        == 2
    )
    assert seen["name"] == "table6/cgmul" and seen["width"] == 0.5 and seen["steps"] == 1
    assert "num_classes" not in seen  # a head size, not the architecture the weights need


# --------------------------------------------------------------------------- committed runs


def _commit(folder):
    """Make `folder` a git work tree with everything in it committed."""
    git = ["git", "-C", str(folder), "-c", "user.email=t@t", "-c", "user.name=t"]
    subprocess.run([*git[:3], "init", "-q"], check=True)
    subprocess.run([*git, "add", "-A"], check=True)
    subprocess.run([*git, "commit", "-qm", "runs"], check=True)


@pytest.mark.slow
def test_a_committed_run_is_never_replaced(tmp_path):
    runs = tmp_path / "runs"
    first = ex.run("table6/cgmul", runs_dir=runs, **TINY)
    (first.path / "checkpoint.pt").unlink()  # committed without its weights
    _commit(runs)
    before = {p.name: p.read_bytes() for p in first.path.iterdir()}
    again = ex.run("table6/cgmul", runs_dir=runs, need_checkpoint=True, **TINY)
    assert again.source == "computed" and again.path == runs / "local-runs" / "table6/cgmul" / first.hash
    assert again.checkpoint is not None
    assert {p.name: p.read_bytes() for p in first.path.iterdir()} == before
    ex.run("table6/cgmul", runs_dir=runs, force=True, **TINY)  # a forced recompute too
    assert {p.name: p.read_bytes() for p in first.path.iterdir()} == before
    assert ex.run("table6/cgmul", runs_dir=runs, **TINY).source == "cache"  # the committed numbers
    local = ex.run("table6/cgmul", runs_dir=runs, need_checkpoint=True, **TINY)
    assert local.source == "cache:table6/cgmul (local)" and local.checkpoint is not None
    status = subprocess.run(["git", "-C", str(runs), "status", "--porcelain"], capture_output=True, text=True)
    assert status.stdout.strip() == "?? local-runs/"


def test_motion_notebook_parameters_are_checked_before_any_training(monkeypatch):
    def no_training(*args, **kwargs):
        raise AssertionError("trained before checking the parameters")

    monkeypatch.setattr(ex.models, "run", no_training)
    for call in (
        lambda: motion_table.figure_inputs(
            "motion", dataset="ucf101", profile="smoke", num_clips=1, data_root="/no/ucf"
        ),
        lambda: ex.trained_model("table1/cgm", "smoke", data_root="/no/ucf"),
    ):
        with pytest.raises(ValueError, match="data_root '/no/ucf' is not a folder"):
            call()
    with pytest.raises(ValueError, match="data_root is not given; dataset='ucf101'"):
        motion_table.figure_inputs("motion", dataset="ucf101", profile="smoke", num_clips=1)


# --------------------------------------------------------------------------- the cache's integrity


@pytest.fixture(scope="module")
def cached_run(tmp_path_factory):
    """A finished run (with its checkpoint) in a runs folder of its own; tests copy it."""
    runs = tmp_path_factory.mktemp("cached") / "runs"
    return runs, ex.run("table6/cgmul", runs_dir=runs, **TINY)


def _copy_run(cached_run, tmp_path):
    import shutil

    runs, first = cached_run
    shutil.copytree(runs, tmp_path / "runs")
    return tmp_path / "runs", tmp_path / "runs" / first.path.relative_to(runs)


def _edit(path, change):
    import json

    r = json.loads(path.read_text())
    change(r)
    path.write_text(json.dumps(r))


@pytest.mark.parametrize(
    "tamper, match",
    [
        (lambda r: r.update(metrics="0.5"), r"result.json: 'metrics' is a str, expected a dict"),
        (
            lambda r: r["metrics"].update(x=float("nan")),
            r"result.json: metrics must be finite numbers, got x=nan",
        ),
        (lambda r: r.update(train=[1]), r"result.json: 'train' is a list, expected a dict"),
        (lambda r: r.update(hash="0" * 12), r"the config hash does not match"),
        (lambda r: r.pop("metrics"), r"result.json: no 'metrics' field"),
        (b"{garbage", r"result.json: not valid JSON"),
        (b"", r"result.json: is empty"),
        (b"[]", r"result.json: holds a JSON list"),
    ],
)
@pytest.mark.slow
def test_a_tampered_result_is_never_reported_as_valid(cached_run, tmp_path, tamper, match):
    runs, folder = _copy_run(cached_run, tmp_path)
    if isinstance(tamper, bytes):
        (folder / "result.json").write_bytes(tamper)
    else:
        _edit(folder / "result.json", tamper)
    with pytest.raises(ex.CacheError, match=match) as caught:
        ex.run("table6/cgmul", runs_dir=runs, **TINY)
    assert str(folder) in str(caught.value) and "force=True" in str(caught.value)


@pytest.mark.slow
def test_a_changed_config_is_caught_by_the_hash(cached_run, tmp_path):
    runs, folder = _copy_run(cached_run, tmp_path)
    _edit(folder / "config.json", lambda c: c["train"].update(lr=0.5))
    with pytest.raises(ex.CacheError, match="config.json hashes to"):
        ex.run("table6/cgmul", runs_dir=runs, **TINY)


@pytest.mark.parametrize("recorded", [True, False])
@pytest.mark.slow
def test_a_truncated_checkpoint_is_refused_when_used(cached_run, tmp_path, recorded):
    runs, folder = _copy_run(cached_run, tmp_path)
    if not recorded:  # a run cached before the digest was recorded
        _edit(folder / "result.json", lambda r: r.pop("checkpoint_sha256"))
    data = (folder / "checkpoint.pt").read_bytes()
    (folder / "checkpoint.pt").write_bytes(data[:500])
    with pytest.raises(ex.CacheError, match="SHA-256" if recorded else "cannot be read"):
        ex.run("table6/cgmul", runs_dir=runs, need_checkpoint=True, **TINY)
    r = ex.run("table6/cgmul", runs_dir=runs, **TINY)  # the numbers need no weights
    with pytest.raises(ex.CacheError, match=str(folder / "checkpoint.pt")):
        r.load_model()
    r = ex.run("table6/cgmul", runs_dir=runs, force=True, **TINY)  # recomputed in place: not committed
    assert r.path == folder and len(r.checkpoint_sha256) == 64 and r.load_model() is not None


# --------------------------------------------------------------------------- one error boundary


def _unreadable(kind, path):
    """A file named like a video that no decoder reads as one."""
    if kind == "one frame":
        write_video(path, num_frames=1)
    elif kind == "png":
        ok, png = cv2.imencode(".png", fixture_frame(0))
        path.write_bytes(png.tobytes())
    else:
        path.write_bytes({"random": os.urandom(5000), "empty": b"", "text": b"hello\n" * 100}[kind])


@pytest.mark.parametrize("kind", ["random", "empty", "text", "png", "one frame"])
def test_a_folder_whose_only_video_is_unreadable_is_a_data_error(tmp_path, kind):
    _unreadable(kind, tmp_path / "a.mp4")
    data = VideoFolder(tmp_path, clip_len=4, size=16, resize=None)
    with (
        warnings.catch_warnings(),
        pytest.raises(DataError, match=r"VideoFolder \(.*\): none of its 1 videos"),
    ):
        warnings.simplefilter("ignore")
        data[0]


TRAIN_TINY = ["--set", "steps=2", "--set", "width=0.125", "--set", "size=16", "--set", "clip_len=4"]


def _train_on_folder(folder, out, *extra):
    return main(
        [
            "train",
            "--experiment",
            "table6/cgmul",
            "--out",
            str(out),
            "--set",
            "name=videofolder",
            "--set",
            "data__kw={}",
            "--data-root",
            str(folder),
            *TRAIN_TINY,
            "--set",
            "batch_size=2",
            *extra,
        ]
    )


def test_cli_train_on_unreadable_videos_is_one_line(tmp_path, capsys):
    for name in ("a.mp4", "b.mp4"):
        _unreadable("random", tmp_path / "v" / name) if (tmp_path / "v").mkdir(
            exist_ok=True
        ) is None else None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert _train_on_folder(tmp_path / "v", tmp_path / "o") == 2
    err = capsys.readouterr().err.splitlines()[-1]
    assert err.startswith("error: VideoFolder (") and "none of its 2 videos can be read" in err


def _ucf_empty(tmp_path, train_list: bytes):
    ann = tmp_path / "ann"
    ann.mkdir()
    (ann / "classInd.txt").write_text("1 A\n2 YoYo\n")
    (ann / "trainlist01.txt").write_bytes(train_list)
    (tmp_path / "videos").mkdir()
    return lambda: UCF101(tmp_path / "videos", ann, train=True, clip_len=2, size=24, resize=None)


def _hmdb_no_train_lines(tmp_path):
    (tmp_path / "splits").mkdir()
    (tmp_path / "videos").mkdir()
    (tmp_path / "splits" / "run_test_split1.txt").write_text("a.avi 2\nb.avi 0\n")
    return lambda: HMDB51(tmp_path / "videos", tmp_path / "splits", train=True, clip_len=2, size=24)


def _videolist(tmp_path, text):
    (tmp_path / "list.txt").write_text(text)
    return lambda: VideoList(tmp_path, tmp_path / "list.txt", clip_len=2, size=24)


@pytest.mark.parametrize(
    "build, match",
    [
        (lambda t: _ucf_empty(t, b""), r"UCF101 \(train split\): .*trainlist01.txt: it lists no videos"),
        (lambda t: _ucf_empty(t, b"  \n\t\n"), r"trainlist01.txt: it lists no videos"),
        (
            _hmdb_no_train_lines,
            r"HMDB51 \(train split\): .*_test_split1.txt, lines flagged 1: it lists no videos",
        ),
        (lambda t: _videolist(t, ""), r"VideoList \(train split\): .*list.txt: it lists no videos"),
        (
            lambda t: _videolist(t, "gone.mp4 0\n"),
            r"list.txt: none of its 1 listed videos can be used, e.g. .*gone.mp4: missing file",
        ),
    ],
)
def test_an_empty_set_names_its_list_file_and_split(tmp_path, build, match):
    with warnings.catch_warnings(), pytest.raises(DataError, match=match):
        warnings.simplefilter("ignore")
        build(tmp_path)()


@pytest.mark.parametrize(
    "error, message",
    [
        (
            OSError(errno.ENOSPC, "No space left on device", "/x/checkpoint.pt"),
            "the disk is full writing /x/checkpoint.pt",
        ),
        (MemoryError(), "out of memory; lower batch_size"),
        (
            IsADirectoryError(errno.EISDIR, "Is a directory", "/a/classInd.txt"),
            "Is a directory: '/a/classInd.txt'",
        ),
        (DataError("VideoFolder (/v): none of its 1 videos can be read"), "VideoFolder (/v): none of its"),
    ],
)
def test_cli_anticipated_failures_are_one_line_with_exit_code_2(monkeypatch, capsys, error, message):
    def fail(*args, **kwargs):
        raise error

    monkeypatch.setattr(ex, "run", fail)
    assert main(["run", "--experiment", "table6/cgmul", *TRAIN_TINY]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1


def test_cli_a_bug_keeps_its_traceback(monkeypatch):
    def bug(*args, **kwargs):
        raise KeyError("a bug")

    monkeypatch.setattr(ex, "run", bug)
    with pytest.raises(KeyError):
        main(["run", "--experiment", "table6/cgmul", *TRAIN_TINY])


@pytest.mark.parametrize(
    "error, message",
    [
        (MemoryError(), "out of memory"),
        (OSError(errno.ENOSPC, "No space left on device", "/r"), "disk is full"),
    ],
)
def test_notebook_helpers_say_what_ran_out(monkeypatch, error, message):
    from cgm import cache
    from cgm.errors import UserError

    def fail(*args, **kwargs):
        raise error

    monkeypatch.setattr(ex.models, "run", fail)
    monkeypatch.setattr(cache, "run_pinned", fail)
    for call in (
        lambda: ex.trained_model("table1/cgm", "smoke"),
        lambda: cache.run_all({"a": "table6/cgmul"}, "smoke"),
    ):
        with pytest.raises(UserError, match=message) as caught:
            call()
        assert caught.value.__suppress_context__  # the message, not the allocator's traceback


# --------------------------------------------------------------------------- outputs


def _train(out, *extra):
    argv = ["train", "--experiment", "table6/cgmul", "--out", str(out), *TRAIN_TINY, "--set", "batch_size=2"]
    return main([*argv, "--set", "n=8", *extra])


@pytest.mark.slow
def test_train_into_a_folder_with_a_checkpoint_needs_resume_or_overwrite(tmp_path, capsys):
    out = tmp_path / "o"
    assert _train(out) == 0
    first = (out / "checkpoint.pt").read_bytes()
    assert _train(out, "--set", "seed=1") == 2
    assert "holds the checkpoint.pt of an earlier run; continue it with --resume" in capsys.readouterr().err
    assert (out / "checkpoint.pt").read_bytes() == first
    assert _train(out, "--resume", "--overwrite") == 2
    assert "give one" in capsys.readouterr().err
    assert _train(out, "--set", "seed=1", "--overwrite") == 0
    assert (out / "checkpoint.pt").read_bytes() != first
    steps = [r["step"] for r in read_metrics(out)]
    assert steps == sorted(set(steps))  # one run's rows, not two runs' interleaved
    assert not list(out.glob(".*.lock"))


@pytest.mark.parametrize(
    "out, message",
    [
        ("", "--out is empty"),
        ("FILE", "is a file, not a folder"),
        ("with\0nul", "contains a NUL byte"),
        ("x" * 300, "is 300 bytes long; file and folder names may be at most 255 bytes"),
        ("/".join(["y" * 200] * 25), "paths may be at most 4096 bytes"),
    ],
)
def test_train_out_must_be_a_folder_path(tmp_path, monkeypatch, capsys, out, message):
    (tmp_path / "FILE").write_text("mine")
    monkeypatch.chdir(tmp_path)
    assert _train(out) == 2
    assert message in capsys.readouterr().err
    assert (
        sorted(p.name for p in tmp_path.iterdir()) == ["FILE"] and (tmp_path / "FILE").read_text() == "mine"
    )


def test_train_takes_the_run_lock(tmp_path, capsys):
    out = tmp_path / "o"
    with ex.run_lock(out / ".train.lock", "another train"):
        assert _train(out) == 2
    assert f"train into {out} is being computed by pid {os.getpid()}" in capsys.readouterr().err
    assert not (out / "checkpoint.pt").exists()


def test_temporary_files_of_a_killed_save_are_cleaned_at_start(tmp_path):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    stale = [tmp_path / f".checkpoint.pt.{pid}.abc{pid}.tmp" for pid in (dead.pid, os.getpid())]
    for tmp in stale:
        tmp.write_bytes(b"")
    _trainer(tmp_path, {}, resume=False)
    assert not any(tmp.exists() for tmp in stale)


def test_a_full_disk_keeps_the_previous_checkpoint_and_says_so(tmp_path, monkeypatch):
    trainer = _trainer(tmp_path, {}, resume=False)
    trainer.fit()
    before = (tmp_path / "checkpoint.pt").read_bytes()
    save = torch.save

    def full_disk(state, f):
        with open("/dev/full", "wb") as full:  # every write: ENOSPC
            save(state, full)

    monkeypatch.setattr(torch, "save", full_disk)
    with pytest.raises(
        checkpoints.CheckpointWriteError, match=r"No space left on device.*the previous .* is untouched"
    ):
        trainer.save()
    assert (tmp_path / "checkpoint.pt").read_bytes() == before
    assert not list(tmp_path.glob(".*.tmp"))


# --------------------------------------------------------------------------- odd files and names


@pytest.fixture
def no_hang():
    """Fail a test that blocks (a FIFO opened for reading waits for a writer forever)."""
    import signal

    def hung(*args):
        raise TimeoutError("blocked: a FIFO was opened")

    old = signal.signal(signal.SIGALRM, hung)
    signal.alarm(20)
    yield
    signal.alarm(0)
    signal.signal(signal.SIGALRM, old)


def test_a_fifo_named_like_a_video_is_skipped_and_counted_never_opened(tmp_path, no_hang):
    write_video(tmp_path / "good.mp4", num_frames=8)
    os.mkfifo(tmp_path / "x.mp4")
    with pytest.warns(
        UserWarning, match=r"1 of 2 listed videos are missing or unusable .*1 not a regular file"
    ):
        data = VideoFolder(tmp_path, clip_len=2, size=16, resize=None)
    assert len(data) == 1 and data.skipped == [
        (str(tmp_path / "x.mp4"), "not a regular file (a FIFO); never opened")
    ]
    assert data[0]["clip"].shape == (3, 2, 16, 16)
    with pytest.raises(VideoError, match="not a regular file"):
        read_frames(str(tmp_path / "x.mp4"), [0])
    (tmp_path / "good.mp4").unlink()
    with warnings.catch_warnings(), pytest.raises(DataError, match=r"x.mp4: not a regular file \(a FIFO\)"):
        warnings.simplefilter("ignore")
        VideoFolder(tmp_path, clip_len=2, size=16, resize=None)


def test_a_device_in_a_video_list_is_skipped(tmp_path, no_hang):
    write_video(tmp_path / "a.mp4", num_frames=8)
    (tmp_path / "list.txt").write_text("a.mp4 0\n/dev/zero 0\n")
    with pytest.warns(UserWarning, match="1 not a regular file"):
        data = VideoList(tmp_path, tmp_path / "list.txt", clip_len=2, size=16, resize=None)
    assert len(data) == 1 and data.skipped[0] == ("/dev/zero", "not a regular file (a device); never opened")


def test_duplicate_class_names_are_refused(tmp_path):
    with pytest.raises(ValueError, match=r"classInd.txt:3: class 'yoyo' is listed twice \(also as class 2\)"):
        _ucf(tmp_path, b"1 A\n2 YoYo\n3 yoyo\n", b"YoYo/v_YoYo_g01_c01.avi 2\n")


def test_class_ind_that_is_a_folder_is_named(tmp_path):
    (tmp_path / "ann" / "classInd.txt").mkdir(parents=True)
    (tmp_path / "ann" / "trainlist01.txt").write_text("YoYo/v_YoYo_g01_c01.avi 1\n")
    (tmp_path / "videos").mkdir()
    with pytest.raises(ValueError, match=r"classInd.txt is a folder; expected a text file"):
        UCF101(tmp_path / "videos", tmp_path / "ann", clip_len=2, size=16)


@pytest.mark.parametrize("value", ["inf", "-inf", "nan", "1e400"])
def test_kinetics_infinite_time_names_file_and_line(tmp_path, value):
    (tmp_path / "train.csv").write_text(
        f"label,youtube_id,time_start,time_end,split\na,x,0,10,train\na,y,{value},10,train\n"
    )
    (tmp_path / "videos").mkdir()
    with pytest.raises(ValueError, match=rf"train.csv:3: time_start '{value}' is not a number of seconds"):
        Kinetics(tmp_path / "videos", tmp_path / "train.csv")


def test_a_nul_byte_in_a_listed_path_is_a_counted_skip(tmp_path):
    write_video(tmp_path / "a.mp4", num_frames=8)
    (tmp_path / "list.txt").write_text("a.mp4 0\nb\0.mp4 0\n")
    with pytest.warns(UserWarning, match="1 cannot be read"):
        data = VideoList(tmp_path, tmp_path / "list.txt", clip_len=2, size=16, resize=None)
    assert len(data) == 1 and "null byte" in data.skipped[0][1]


@pytest.mark.parametrize(
    "root, message", [("/data/a\0b", "contains a NUL byte"), ("/" + "d" * 300, "is 300 bytes long")]
)
def test_cli_a_data_root_no_file_system_holds_is_named(capsys, root, message):
    assert main(["run", "--experiment", "table6/cgmul", "--profile", "paper", "--data-root", root]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: dataset 'ucf101': data root") and message in err


def test_a_video_beyond_the_path_length_limit_is_reported(tmp_path):
    fd = os.open(tmp_path, os.O_RDONLY)
    try:
        for _ in range(23):  # 23 x 201 bytes: past Linux's 4096-byte PATH_MAX
            os.mkdir("d" * 200, dir_fd=fd)
            inner = os.open("d" * 200, os.O_RDONLY, dir_fd=fd)
            os.close(fd)
            fd = inner
        video = os.open("v.mp4", os.O_WRONLY | os.O_CREAT, dir_fd=fd)
        os.write(video, b"0" * 100)
        os.close(video)
    finally:
        os.close(fd)
    with (
        warnings.catch_warnings(),
        pytest.raises(FileNotFoundError, match="could not be listed, e.g. .*too long"),
    ):
        warnings.simplefilter("ignore")
        VideoFolder(tmp_path, clip_len=2, size=16)


@pytest.mark.slow
def test_an_action_set_with_more_classes_than_the_model_is_refused():
    cfg = ex.resolve("table7/cgmul", **TINY, num_classes=2)
    with pytest.raises(
        ValueError, match=r"'synthmotion' \(synthmotion\) has 4 classes but the model scores num_classes=2"
    ):
        ex.evaluate_config(ex.build_model(cfg), cfg)
