"""Long runs that survive: checkpoints by wall time, run locks left by an earlier start of the same
pid, Kinetics class indices that agree between the splits."""

import json
import os
import socket
import subprocess
import sys
import time

import pytest
from test_train import make_trainer

from cgm import experiments as ex
from cgm import train as T
from cgm.data import build_dataset
from cgm.experiments import lock

# --------------------------------------------------------------------------- checkpoints by time


class _Clock:
    """The `time` module with a monotonic clock that the test moves."""

    def __init__(self):
        self.now = 1000.0

    def monotonic(self):
        return self.now

    def __getattr__(self, name):
        return getattr(time, name)


@pytest.mark.parametrize("minutes, saved", [(1.0, [2, 3, 5, 6]), (0.0, [3, 6])])
@pytest.mark.slow
def test_checkpoints_by_wall_time(tmp_path, monkeypatch, minutes, saved):
    """Steps of 35 s, checkpoint_every=3: also a checkpoint once a minute has passed since the last
    one (after steps 2 and 5); checkpoint_minutes=0 turns that off."""
    clock = _Clock()
    monkeypatch.setattr(T, "time", clock)
    trainer = make_trainer(tmp_path, steps=6, checkpoint_minutes=minutes)
    steps, step, save = [], trainer.train_step, trainer.save

    def slow_step(batch):
        clock.now += 35.0
        return step(batch)

    def record():
        steps.append(trainer.step)
        return save()

    monkeypatch.setattr(trainer, "train_step", slow_step)
    monkeypatch.setattr(trainer, "save", record)
    trainer.fit()
    assert steps == saved


def test_checkpoint_minutes_leave_the_hash_and_may_change_on_resume(tmp_path):
    assert ex.config_hash(ex.resolve("table6/cgmul", checkpoint_minutes=5.0)) == ex.config_hash(
        ex.resolve("table6/cgmul")
    )
    assert "checkpoint_minutes" in T.RESUMABLE_CHANGES
    with pytest.raises(ValueError, match="checkpoint_minutes must be >= 0"):
        T.TrainConfig(steps=1, checkpoint_minutes=-1.0)


# --------------------------------------------------------------------------- run locks


def _write(path, **holder):
    path.write_text(json.dumps({"host": socket.gethostname(), "started": "then", **holder}))


def test_a_lock_with_this_pid_from_an_earlier_process_start_is_stale(tmp_path):
    """A restarted container starts its processes at the same small pids: the lock its previous
    start left names this very pid, but not this process's token."""
    path = tmp_path / ".h.lock"
    _write(path, pid=os.getpid(), token="an-earlier-start")
    with ex.run_lock(path, "run x"):  # taken over
        held = json.loads(path.read_text())
        assert held["pid"] == os.getpid() and held["token"] != "an-earlier-start"
        with pytest.raises(ex.RunLockedError, match="run x is being computed by pid"):
            with ex.run_lock(path, "run x"):  # this process start holds it: not stale
                pass


def test_a_live_pid_that_is_another_process_is_stale(tmp_path):
    """A live pid whose start time (or boot) differs from the recorded one is another process."""
    path = tmp_path / ".h.lock"
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        started = lock.process_start(other.pid)
        if started is None:
            pytest.skip("no /proc here: process start times cannot be read")
        _write(path, pid=other.pid, token="t", process_start=started, boot_id=lock.boot_id())
        with pytest.raises(ex.RunLockedError, match=f"pid {other.pid}"):  # the holder runs
            with ex.run_lock(path, "run x"):
                pass
        _write(path, pid=other.pid, token="t", process_start=str(int(started) - 1), boot_id=lock.boot_id())
        with ex.run_lock(path, "run x"):  # the pid was reused by another process
            pass
        _write(path, pid=other.pid, token="t", process_start=started, boot_id="another-boot")
        with ex.run_lock(path, "run x"):  # written before a reboot
            pass
        _write(path, pid=other.pid)  # an old lock without start time: the live pid holds it
        with pytest.raises(ex.RunLockedError):
            with ex.run_lock(path, "run x"):
                pass
    finally:
        other.kill()
        other.wait()


# --------------------------------------------------------------------------- Kinetics classes


def _kinetics(root, split_labels: dict[str, list[str]]):
    """A Kinetics root: one CSV per split (official columns) and one empty 'video' file per row."""
    (root / "annotations").mkdir(parents=True)
    (root / "videos").mkdir()
    for split, labels in split_labels.items():
        lines = ["label,youtube_id,time_start,time_end,split,is_cc"]
        for i, label in enumerate(labels):
            yid = f"-{split[:2]}{i:08d}"
            lines.append(f'"{label}",{yid},10,20,{split},0')
            (root / "videos" / f"{yid}_000010_000020.mp4").write_bytes(b"")
        (root / "annotations" / f"{split}.csv").write_text("\n".join(lines) + "\n")


def test_kinetics_classes_are_the_union_of_the_splits(tmp_path):
    """The validation CSV lacks 'bowling': its indices still agree with the training set's."""
    _kinetics(tmp_path, {"train": ["abseiling", "bowling", "zumba"], "validate": ["abseiling", "zumba"]})
    train = build_dataset("kinetics400", "train", data_root=tmp_path)
    val = build_dataset("kinetics400", "val", data_root=tmp_path)
    assert train.classes == val.classes == ["abseiling", "bowling", "zumba"]
    assert [label for _, label in val.samples] == [0, 2]
    # a label only the validation CSV has is a class too (the union), at its sorted place
    (tmp_path / "annotations" / "validate.csv").write_text(
        'label,youtube_id,time_start,time_end,split,is_cc\n"applauding",-va00000000,10,20,validate,0\n'
    )
    union = ["abseiling", "applauding", "bowling", "zumba"]
    assert build_dataset("kinetics400", "train", data_root=tmp_path).classes == union
