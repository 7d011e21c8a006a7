"""Real-video data: decoding, sampling, transforms and the dataset formats, on tiny fixture
datasets written at test time (tests/conftest.py)."""

import os
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import frame_index_of, write_corrupt, write_frame_folder, write_video

from cgm.data import decode, registry, sampling, transforms
from cgm.data.datasets import (
    HMDB51,
    UCF101,
    UCF101_CLASSES,
    Kinetics,
    UCFFlow,
    UCFPred,
    VideoFolder,
    VideoList,
    ucf_subset,
)

REPO = Path(__file__).resolve().parents[1]
SMALL = dict(clip_len=4, size=24, resize=32)


def indices_of(clip: torch.Tensor) -> list[int]:
    """Fixture frame indices of a (3, T, H, W) clip in [-1, 1] taken with resize=None."""
    frames = ((clip + 1) * 127.5).permute(1, 2, 3, 0).numpy()  # (T, H, W, 3)
    return [frame_index_of(f) for f in frames]


# ------------------------------------------------------------------ decoding


def test_read_frames_any_order_after_keyframe_seek(fixture_video):
    info = decode.probe_video(fixture_video)
    assert (info.num_frames, info.fps) == (24, 25.0)
    wanted = [17, 3, 9, 9, 23, 0, 12]  # crosses keyframes (every 8 frames) both ways
    frames = decode.read_frames(fixture_video, wanted)
    assert frames.shape == (7, 32, 40, 3) and frames.dtype == torch.uint8
    assert [frame_index_of(f.numpy()) for f in frames] == wanted
    reader = decode.VideoReader(fixture_video, thread_type="AUTO")
    assert len(reader) == 24 and [frame_index_of(f.numpy()) for f in reader[[20, 21]]] == [20, 21]


@pytest.mark.parametrize("codec,ext", [("mpeg4", ".avi"), ("libvpx", ".webm"), ("libx264", ".mkv")])
def test_other_containers(tmp_path, codec, ext):
    path = write_video(tmp_path / f"v{ext}", num_frames=20, codec=codec)
    assert decode.probe_video(path).num_frames == 20
    assert [frame_index_of(f.numpy()) for f in decode.read_frames(path, [19, 2, 11])] == [19, 2, 11]


def test_frame_folder_natural_order(tmp_path):
    folder = write_frame_folder(tmp_path / "frames", num_frames=12)  # img_1.png ... img_12.png
    assert decode.probe_video(folder).num_frames == 12
    assert [frame_index_of(f.numpy()) for f in decode.read_frames(folder, [0, 1, 9, 11])] == [0, 1, 9, 11]
    with pytest.raises(decode.VideoError, match="folder has 12"):
        decode.read_frames(folder, [12])


def test_bad_videos_raise_video_error(tmp_path):
    cases = {
        "missing file": str(tmp_path / "nothing.mp4"),
        "cannot open": write_corrupt(tmp_path / "corrupt.avi"),
        "no frames": write_video(tmp_path / "empty.avi", num_frames=0, codec="mpeg4"),
    }
    for reason, path in cases.items():
        with pytest.raises(decode.VideoError, match=reason) as info:
            decode.read_frames(path, [0]) if reason == "cannot open" else decode.probe_video(path)
        assert info.value.path == path
    full = write_video(tmp_path / "full.mkv", num_frames=24)
    data = open(full, "rb").read()
    truncated = tmp_path / "truncated.mkv"
    truncated.write_bytes(data[: int(len(data) * 0.6)])
    assert decode.probe_video(str(truncated)).num_frames == 24  # the header still says 24
    with pytest.raises(decode.VideoError, match="truncated") as info:
        decode.read_frames(str(truncated), [22])
    assert 0 < info.value.available < 24
    # No frame of the traceback may keep a PyAV object alive: freed in a forked DataLoader worker
    # (e.g. via a reference cycle through this very traceback), its decoder threads deadlock.
    tb, held = info.value.__traceback__, []
    while tb is not None:
        held += [name for name, v in tb.tb_frame.f_locals.items() if type(v).__module__.startswith("av.")]
        tb = tb.tb_next
    assert held == [] and info.value.__context__ is None


# ------------------------------------------------------------------ sampling


def test_train_clip_stride_future_and_reproducibility():
    for generator in (lambda: torch.Generator().manual_seed(3), lambda: np.random.default_rng(3)):
        clips = [sampling.sample_train_clip(50, 8, 3, True, generator=generator()) for _ in range(2)]
        assert clips[0] == clips[1] and len(clips[0]) == 9
        assert np.all(np.diff(clips[0]) == 3) and 0 <= clips[0][0] and clips[0][-1] < 50
    starts = {
        sampling.sample_train_clip(20, 4, generator=torch.Generator().manual_seed(s))[0] for s in range(200)
    }
    assert starts == set(range(17))  # every valid start, none beyond


def test_short_video_policies():
    assert sampling.clip_span(16, 2, True) == 33
    with pytest.raises(sampling.TooShortError, match="10 frames, a clip needs 16"):
        sampling.sample_train_clip(10, 16)
    assert sampling.sample_test_clips(5, 4, 2, short="loop") == [[0, 2, 4, 1]]
    assert sampling.sample_test_clips(5, 4, 2, short="repeat") == [[0, 2, 4, 4]]
    with pytest.raises(ValueError, match="short="):
        sampling.sample_train_clip(10, 4, short="pad")


def test_test_clips_evenly_spaced_and_windows_cover_every_pair():
    assert sampling.sample_test_clips(40, 16, num_clips=1) == [list(range(12, 28))]
    clips = sampling.sample_test_clips(40, 16, num_clips=3)
    assert [c[0] for c in clips] == [0, 12, 24] and clips[-1][-1] == 39
    windows = sampling.sample_windows(40, 8, 1, future=True)
    pairs = [(w[t], w[t + 1]) for w in windows for t in range(8)]
    assert all(len(w) == 9 for w in windows) and len(set(pairs)) == len(pairs)
    assert pairs == [(i, i + 1) for i in range(32)]  # 40 frames: 4 full windows, tail dropped


# ------------------------------------------------------------------ transforms


def test_train_crop_is_one_of_five_and_same_for_all_frames():
    clip = torch.arange(3 * 2 * 6 * 8, dtype=torch.float32).reshape(3, 2, 6, 8)
    clip[:, 1] = clip[:, 0]  # identical frames must stay identical after crop and flip
    origins = transforms.five_crop_origins(6, 8, 4)
    seen = set()
    for seed in range(40):
        out = transforms.ClipTransform(size=4, resize=None)(clip, torch.Generator().manual_seed(seed))
        assert out.shape == (3, 2, 4, 4) and torch.equal(out[:, 0], out[:, 1])
        unscaled = (out + 1) * 127.5
        for k, (top, left) in enumerate(origins):
            crop = clip[:, :, top : top + 4, left : left + 4]
            if torch.allclose(unscaled, crop, atol=1e-3):
                seen.add((k, False))
            if torch.allclose(unscaled, crop.flip(-1), atol=1e-3):
                seen.add((k, True))
    assert {k for k, _ in seen} == set(range(5)) and {f for _, f in seen} == {False, True}


def test_test_crops_and_range():
    clip = torch.randint(0, 256, (3, 4, 60, 90), dtype=torch.uint8)
    centre = transforms.test_transform(32, 40)(clip)
    assert centre.shape == (3, 4, 32, 32) and centre.min() >= -1 and centre.max() <= 1
    three = transforms.test_transform(32, 40, crops=3)(clip)
    assert three.shape == (3, 3, 4, 32, 32) and torch.equal(three[1], centre)
    assert not torch.equal(three[0], three[2])
    full = transforms.ClipTransform(size=60, resize=None, crop="center", flip=False)(clip)
    assert torch.allclose(full, clip[:, :, :, 15:75].float() / 127.5 - 1)
    with pytest.raises(ValueError, match="smaller than the crop"):
        transforms.ClipTransform(size=112, resize=100)


# ------------------------------------------------------------------ fixture datasets

UCF_CLASSES = ["ApplyEyeMakeup", "HandstandPushups", "YoYo"]  # classInd numbers 1, 37, 101 renumbered


@pytest.fixture(scope="module")
def ucf(tmp_path_factory):
    """UCF101 layout: 3 classes x 2 groups; CRLF lists; real HandStandPushups file spelling."""
    root = tmp_path_factory.mktemp("ucf")
    videos, annotations = root / "videos", root / "annotations"
    annotations.mkdir()
    (annotations / "classInd.txt").write_bytes(
        "".join(f"{k} {c}\r\n" for k, c in enumerate(UCF_CLASSES, 1)).encode()
    )
    train, test = [], []
    for k, c in enumerate(UCF_CLASSES, 1):
        file_class = "HandStandPushups" if c == "HandstandPushups" else c
        for g in (1, 2):
            name = f"{c}/v_{file_class}_g0{g}_c01.avi"
            write_video(videos / name, num_frames=10 + 4 * k + g, codec="mpeg4")
            (train if g == 2 else test).append(name)
    # list entries as in the official files, plus the lower-case variant some copies have
    train_lines = [f"{p} {UCF_CLASSES.index(p.split('/')[0]) + 1}" for p in train]
    train_lines[1] = train_lines[1].replace("v_HandStandPushups", "v_HandstandPushups")
    write_corrupt(videos / "YoYo/v_YoYo_g03_c01.avi")
    write_video(videos / "YoYo/v_YoYo_g04_c01.avi", num_frames=0, codec="mpeg4")
    write_video(videos / "YoYo/v_YoYo_g05_c01.avi", num_frames=3, codec="mpeg4")
    train_lines += [
        "YoYo/v_YoYo_g03_c01.avi 3",
        "YoYo/v_YoYo_g04_c01.avi 3",
        "YoYo/v_YoYo_g05_c01.avi 3",
        "YoYo/v_YoYo_g06_c01.avi 3",
    ]  # corrupt, zero frames, too short, missing
    (annotations / "trainlist01.txt").write_bytes(("\r\n".join(train_lines) + "\r\n").encode())
    (annotations / "testlist01.txt").write_bytes(("\r\n".join(test) + "\r\n").encode())
    return root


def test_ucf101_labels_spelling_and_skips(ucf):
    with pytest.warns(UserWarning, match="1 of 7 listed videos are missing"):
        data = UCF101(ucf / "videos", ucf / "annotations", split=1, train=True, **SMALL)
    assert data.classes == UCF_CLASSES and len(data) == 6
    assert [label for _, label in data.samples] == [0, 1, 2, 2, 2, 2]
    assert all(os.path.exists(p) for p, _ in data.samples)  # HandStand/Handstand resolved
    assert data.skipped == [(str(ucf / "videos/YoYo/v_YoYo_g06_c01.avi"), "missing file")]
    with pytest.warns(UserWarning, match="unreadable video skipped"):
        items = [data[i] for i in range(len(data))]
    # items 3, 4, 5 are corrupt, empty and too short: each falls through to the next readable one
    assert [it["index"] for it in items] == [0, 1, 2, 0, 0, 0]
    assert [it["skipped"] for it in items] == [0, 0, 0, 3, 0, 0]  # each bad video counted once
    reasons = [r for _, r in data.skipped[1:]]
    assert [r.split(" ")[0] for r in reasons] == ["cannot", "no", "too"]
    for it in items:
        assert it["clip"].shape == (3, 4, 24, 24) and it["clip"].dtype == torch.float32
        assert -1 <= it["clip"].min() and it["clip"].max() <= 1 and it["clip"].std() > 0.1
    test = UCF101(ucf / "videos", ucf / "annotations", split=1, train=False, **SMALL)
    assert [label for _, label in test.samples] == [0, 1, 2] and "label" in test[1]


def test_ucf101_determinism_and_epochs(ucf):
    kw = dict(clip_len=4, size=32, resize=None, train=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        a = UCF101(ucf / "videos", ucf / "annotations", seed=5, **kw)
        b = UCF101(ucf / "videos", ucf / "annotations", seed=5, **kw)
        c = UCF101(ucf / "videos", ucf / "annotations", seed=6, **kw)
    for i in range(3):
        assert torch.equal(a[i]["clip"], b[i]["clip"])
    starts = [[indices_of(d[i]["clip"])[0] for i in range(3)] for d in (a, c)]
    assert np.all(np.diff(indices_of(a[2]["clip"])) == 1)
    b.set_epoch(1)
    starts.append([indices_of(b[i]["clip"])[0] for i in range(3)])
    assert starts[0] != starts[1] or starts[0] != starts[2]  # seeds and epochs move the clips


def test_test_mode_multi_view(ucf):
    data = UCF101(
        ucf / "videos",
        ucf / "annotations",
        train=False,
        test_clips=2,
        test_crops=3,
        future=True,
        clip_len=4,
        size=24,
        resize=32,
    )
    item = data[0]
    assert item["clip"].shape == (6, 3, 5, 24, 24) and item["views"] == 6 and item["label"] == 0
    single = UCF101(ucf / "videos", ucf / "annotations", train=False, clip_len=4, size=32, resize=None)[2]
    n = 10 + 4 * 3 + 1  # YoYo g01 frames
    assert "views" not in single and indices_of(single["clip"]) == list(range((n - 4) // 2, (n - 4) // 2 + 4))


def test_dataloader_workers_and_skip_counts(ucf):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        data = UCF101(ucf / "videos", ucf / "annotations", **SMALL)
    loader = torch.utils.data.DataLoader(data, batch_size=3, num_workers=2)
    batches = list(loader)
    assert [tuple(b["clip"].shape) for b in batches] == [(3, 3, 4, 24, 24)] * 2
    assert int(sum(b["skipped"].sum() for b in batches)) == 3 and data.skipped[1:] == []  # 3 bad videos


def test_ucf101_bad_annotations(tmp_path, ucf):
    with pytest.raises(FileNotFoundError, match="(?s)UCF101 video root not found.*classInd.txt"):
        UCF101(tmp_path / "nowhere", ucf / "annotations")
    with pytest.raises(FileNotFoundError, match="testlist02.txt"):
        UCF101(ucf / "videos", ucf / "annotations", split=2, train=False)
    bad = tmp_path / "ann"
    bad.mkdir()
    (bad / "classInd.txt").write_text("1 ApplyEyeMakeup\n2 YoYo\n")
    (bad / "testlist01.txt").write_text(
        "ApplyEyeMakeup/v_ApplyEyeMakeup_g01_c01.avi\nSurfing/v_Surfing_g01_c01.avi\n"
    )
    with pytest.raises(ValueError, match=r"testlist01.txt:2: class 'Surfing' is not in .*classInd.txt"):
        UCF101(ucf / "videos", bad, train=False)
    (bad / "trainlist01.txt").write_text("YoYo/v_YoYo_g01_c01.avi 3\n")
    with pytest.raises(ValueError, match=r"trainlist01.txt:1: label 3"):
        UCF101(ucf / "videos", bad, train=True)


def test_consecutive_failures_raise(tmp_path):
    for i in range(4):
        write_corrupt(tmp_path / f"v{i}.mp4", seed=i)
    data = VideoFolder(tmp_path, clip_len=4, size=24, resize=32, max_failures=2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(RuntimeError, match="3 videos in a row"):
            data[0]


def test_hmdb51_flags(tmp_path):
    videos, splits = tmp_path / "videos", tmp_path / "splits"
    splits.mkdir()
    for c in ("wave", "brush_hair"):
        names = [f"{c}_{k}.avi" for k in range(3)]
        for n in names:
            write_video(videos / c / n, num_frames=8, codec="mpeg4")
        (splits / f"{c}_test_split1.txt").write_text("".join(f"{n} {f} \n" for n, f in zip(names, "120")))
    train = HMDB51(videos, splits, split=1, train=True, **SMALL)
    test = HMDB51(videos, splits, split=1, train=False, **SMALL)
    assert train.classes == ["brush_hair", "wave"]
    assert [(Path(p).name, y) for p, y in train.samples] == [("brush_hair_0.avi", 0), ("wave_0.avi", 1)]
    assert [(Path(p).name, y) for p, y in test.samples] == [("brush_hair_1.avi", 0), ("wave_1.avi", 1)]
    assert test[1]["label"] == 1 and test[1]["clip"].shape == (3, 4, 24, 24)
    with pytest.raises(FileNotFoundError, match="_test_split2.txt"):
        HMDB51(videos, splits, split=2)


def test_kinetics_csv_labels_with_spaces_and_dash_ids(tmp_path):
    rows = [
        ("passing American football (in game)", "-abc_123", 10, 20, "train"),
        ('playing "bass" guitar', "xyz", 0, 10, "train"),
        ("abseiling", "--q", 5, 15, "train"),
        ("abseiling", "gone", 1, 11, "train"),
    ]  # no file: skipped
    csv_path = tmp_path / "train.csv"  # as the official files: labels with spaces quoted
    csv_path.write_text(
        "label,youtube_id,time_start,time_end,split\n"
        + "".join(
            f'"{label.replace(chr(34), 2 * chr(34))}",{yid},{start},{end},{split}\n'
            if " " in label
            else f"{label},{yid},{start},{end},{split}\n"
            for label, yid, start, end, split in rows
        )
    )
    root = tmp_path / "videos"
    write_video(root / "train" / rows[0][0] / "-abc_123_000010_000020.mp4", num_frames=8)
    write_video(root / "train" / "playing_bass_guitar" / "xyz_000000_000010.mp4", num_frames=8)
    write_frame_folder(root / "--q_000005_000015", num_frames=8)  # flat, and a frame folder
    with pytest.warns(UserWarning, match="1 of 4"):
        data = Kinetics(root, csv_path, train=True, **SMALL)
    assert data.classes == sorted({r[0] for r in rows})
    assert [y for _, y in data.samples] == [data.classes.index(r[0]) for r in rows[:3]]
    assert all(data[i]["clip"].shape == (3, 4, 24, 24) for i in range(3))


def test_video_list_and_folder(tmp_path):
    root = tmp_path / "v"
    write_video(root / "a b.mp4", num_frames=8)
    write_video(root / "sub" / "c.avi", num_frames=8, codec="mpeg4")
    write_frame_folder(root / "sub" / "frames10", num_frames=8)
    write_frame_folder(root / "sub" / "frames9", num_frames=8)
    (tmp_path / "space.txt").write_text("a b.mp4 1\nsub/c.avi 0\nsub/frames10 8 2\n")
    (tmp_path / "comma.csv").write_text("a b.mp4,1\nsub/c.avi,0\n")
    spaced = VideoList(root, tmp_path / "space.txt", **SMALL)
    assert [y for _, y in spaced.samples] == [1, 0, 2] and spaced.classes == ["0", "1", "2"]
    assert spaced[2]["label"] == 2 and spaced[0]["clip"].shape == (3, 4, 24, 24)
    assert [y for _, y in VideoList(root, tmp_path / "comma.csv", **SMALL).samples] == [1, 0]
    (tmp_path / "bad.txt").write_text("a b.mp4 one\n")
    with pytest.raises(ValueError, match="bad.txt:1: label 'one'"):
        VideoList(root, tmp_path / "bad.txt")
    folder = VideoFolder(root, **SMALL)
    assert [os.path.relpath(p, root) for p, _ in folder.samples] == [
        "a b.mp4",
        "sub/c.avi",
        "sub/frames9",
        "sub/frames10",
    ]
    assert folder.classes == [] and "label" not in folder[3]


# ------------------------------------------------------------------ UCF-Flow / UCF-Pred


def test_ucf101_class_list():
    assert len(UCF101_CLASSES) == 101 == len(set(UCF101_CLASSES))
    assert list(UCF101_CLASSES) == sorted(UCF101_CLASSES, key=str.lower)
    assert UCF101_CLASSES[36:38] == ["HandstandPushups", "HandstandWalking"]
    assert (UCF101_CLASSES[0], UCF101_CLASSES[-1]) == ("ApplyEyeMakeup", "YoYo")


def test_subset_list_files_follow_the_rule():
    for name, count in (("ucf_flow", 20), ("ucf_pred", 101)):
        lines = (REPO / "data" / f"{name}.txt").read_text().split()
        assert lines == ucf_subset(name) and len(set(lines)) == count
        assert all(line.endswith("_g01_c01.avi") for line in lines)
    assert "HandstandPushups/v_HandStandPushups_g01_c01.avi" in ucf_subset("ucf_pred")


def test_ucf_subsets_read_windows(ucf):
    with pytest.warns(UserWarning, match="19 of 20"):
        flow = UCFFlow(ucf / "videos", clip_len=4, size=32, resize=None)  # only ApplyEyeMakeup exists
    n = 10 + 4 + 1  # frames of v_ApplyEyeMakeup_g01_c01
    assert len(flow) == (n - 1) // 4
    starts = [indices_of(flow[i]["clip"]) for i in range(len(flow))]
    assert starts == [list(range(4 * w, 4 * w + 5)) for w in range(len(flow))]
    with pytest.warns(UserWarning, match="98 of 101"):
        pred = UCFPred(ucf / "videos", clip_len=4, size=24, resize=32)
    assert sorted({pred[i]["label"] for i in range(len(pred))}) == [0, 36, 100]


# ------------------------------------------------------------------ registry


def test_registry_names_and_errors(ucf, tmp_path):
    assert set(registry.DATASETS) >= {
        "ucf101",
        "hmdb51",
        "kinetics400",
        "kinetics600",
        "videolist",
        "videofolder",
        "ucf_flow",
        "ucf_pred",
        "synthmotion",
        "natural",
    }
    with pytest.raises(ValueError, match="unknown dataset 'ucf'; valid names: synthmotion"):
        registry.build_dataset("ucf", "train")
    with pytest.raises(ValueError, match="(?s)needs data_root.*classInd.txt"):
        registry.build_dataset("ucf101", "train")
    with pytest.raises(FileNotFoundError, match="validate.csv"):
        (tmp_path / "k" / "videos").mkdir(parents=True)
        registry.build_dataset("kinetics400", "val", data_root=tmp_path / "k")
    data = registry.build_dataset("ucf101", "test", data_root=ucf, clip_len=4, size=24, resize=32, fold=1)
    assert isinstance(data, UCF101) and len(data) == 3 and not data.train


def test_truncated_video_is_resampled_within_its_real_length(tmp_path):
    full = write_video(tmp_path / "src" / "full.mkv", num_frames=24)
    data = open(full, "rb").read()
    (tmp_path / "v").mkdir()
    (tmp_path / "v" / "truncated.mkv").write_bytes(data[: int(len(data) * 0.6)])
    dataset = VideoFolder(tmp_path / "v", train=False, clip_len=4, size=32, resize=None)
    item = dataset[0]  # the centre clip of the 24 frames the header promises is past the end
    available = decode.probe_video(str(tmp_path / "v" / "truncated.mkv")).num_frames
    assert 4 <= available < 24 and item["skipped"] == 0 and dataset.skipped == []
    start = (available - 4) // 2
    assert indices_of(item["clip"]) == list(range(start, start + 4))
