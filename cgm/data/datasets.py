"""Real video datasets: UCF101, HMDB51, Kinetics-400/600, path-label lists, unlabeled folders,
and the paper's Table 1 subsets UCF-Flow and UCF-Pred.

Each is a `VideoClipDataset`: a list of (path, label) samples plus the shared machinery that
samples a clip, decodes it, transforms it and skips bad videos. Each dataset only parses its
own annotation format. Items are dicts:

    clip     float (3, T, H, W) in [-1, 1] (T = clip_len + future), or (V, 3, T, H, W) in test
             mode when test_clips * test_crops = V > 1, views clip-major then crop
    views    V (only when V > 1)
    label    int, 0-based (absent for unlabeled datasets)
    index    the item's index (of the item actually returned, see below)
    path     the video file or frame folder
    skipped  how many videos this call found unreadable (0 almost always; each bad video is
             counted by the call that finds it), and
    skipped_paths  the bad videos this call passed over (found now or before), one per line

Bad videos never end a run. Missing files are dropped at construction and listed in `.skipped`.
A corrupt, truncated or too-short video found when read is recorded in `.skipped`, marked bad,
and the next index is returned instead (deterministic); one warning per dataset says so. More
than `max_failures` bad videos in a row raise a RuntimeError: something systematic is wrong.
A video already known bad is passed over without being counted again. With DataLoader workers,
each worker fills its own copy of `.skipped` (and may find the same bad video): the main process
sees the failures through the items' `skipped_paths`, which the Trainer unites and reports once
per epoch. Frames larger than `max_pixels` are refused as unreadable (a counted skip).
"""

from __future__ import annotations

import csv
import io
import os
import warnings
from pathlib import Path

import torch
from torch.utils.data import Dataset

from cgm.errors import DataError

from .decode import (
    MAX_PIXELS,
    VIDEO_EXTENSIONS,
    VideoError,
    correct_frame_count,
    is_frame_folder,
    natural_key,
    probe_video,
    read_frames,
    unusable,
)
from .sampling import TooShortError, sample_test_clips, sample_train_clip, sample_windows
from .seeding import ItemKey, item_generator, split_key
from .transforms import test_transform, train_transform

# classInd.txt order (1-based there, 0-based here): case-insensitive alphabetical.
UCF101_CLASSES = (
    "ApplyEyeMakeup ApplyLipstick Archery BabyCrawling BalanceBeam BandMarching BaseballPitch "
    "Basketball BasketballDunk BenchPress Biking Billiards BlowDryHair BlowingCandles "
    "BodyWeightSquats Bowling BoxingPunchingBag BoxingSpeedBag BreastStroke BrushingTeeth "
    "CleanAndJerk CliffDiving CricketBowling CricketShot CuttingInKitchen Diving Drumming Fencing "
    "FieldHockeyPenalty FloorGymnastics FrisbeeCatch FrontCrawl GolfSwing Haircut Hammering "
    "HammerThrow HandstandPushups HandstandWalking HeadMassage HighJump HorseRace HorseRiding "
    "HulaHoop IceDancing JavelinThrow JugglingBalls JumpingJack JumpRope Kayaking Knitting LongJump "
    "Lunges MilitaryParade Mixing MoppingFloor Nunchucks ParallelBars PizzaTossing PlayingCello "
    "PlayingDaf PlayingDhol PlayingFlute PlayingGuitar PlayingPiano PlayingSitar PlayingTabla "
    "PlayingViolin PoleVault PommelHorse PullUps Punch PushUps Rafting RockClimbingIndoor "
    "RopeClimbing Rowing SalsaSpin ShavingBeard Shotput SkateBoarding Skiing Skijet SkyDiving "
    "SoccerJuggling SoccerPenalty StillRings SumoWrestling Surfing Swing TableTennisShot TaiChi "
    "TennisSwing ThrowDiscus TrampolineJumping Typing UnevenBars VolleyballSpiking WalkingWithDog "
    "WallPushups WritingOnBoard YoYo"
).split()
# The most classes a dataset may have (a video list's labels name that many; Kinetics-700: 700).
MAX_CLASSES = 100_000
# The one class whose file names are spelled differently from its folder in the real UCF101.
_UCF_FILE_SPELLING = {"HandstandPushups": "HandStandPushups"}

UCF_LAYOUT = (
    "<root>/ApplyEyeMakeup/v_ApplyEyeMakeup_g08_c01.avi   (or a frame folder "
    "v_ApplyEyeMakeup_g08_c01/)\n<annotation_dir>/classInd.txt\n"
    "<annotation_dir>/trainlist01.txt ... testlist03.txt"
)
HMDB_LAYOUT = (
    "<root>/brush_hair/April_09_brush_hair_u_nm_np1_ba_goo_0.avi\n"
    "<annotation_dir>/brush_hair_test_split1.txt   (lines 'video.avi 1|2|0')\n"
    "<annotation_dir>/... one file per class and split (51 x 3)"
)
KINETICS_LAYOUT = (
    "<annotation_csv>: label,youtube_id,time_start,time_end,split\n"
    "<root>/<split>/<label>/<youtube_id>_<start:06d>_<end:06d>.mp4\n"
    "   or <root>/<youtube_id>_<start:06d>_<end:06d>.mp4 (any depth is searched)"
)


def _require(path, what: str, layout: str) -> Path:
    """The path, or a FileNotFoundError naming it and showing the expected layout."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(
            f"{what} not found: {path}\nexpected layout:\n  " + layout.replace("\n", "\n  ")
        )
    return path


def _text(path: Path) -> str:
    """A UTF-8 text file (a byte-order mark dropped), or a ValueError naming the file and the line
    of the first byte that is not UTF-8 (or saying that it is a folder, not a file)."""
    if Path(path).is_dir():
        raise ValueError(f"{path} is a folder; expected a text file")
    reason = unusable(path)
    if reason is not None:
        raise ValueError(f"{path}: {reason}; expected a text file")
    data = Path(path).read_bytes()
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = data[: e.start].count(b"\n") + 1
        raise ValueError(
            f"{path}:{line}: not UTF-8 text (byte 0x{data[e.start]:02x}); save the file as "
            "UTF-8 (e.g. iconv -f latin1 -t utf-8)"
        ) from None


def _lines(path: Path):
    """(line number, stripped line) of a text file, CRLF or LF, blank lines dropped."""
    for number, line in enumerate(_text(path).splitlines(), 1):
        if line.strip():
            yield number, line.strip()


def _int(text: str, where: str, what: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise ValueError(f"{where}: {what} {text!r} is not an integer") from None


class VideoClipDataset(Dataset):
    """Shared machinery: (path, label) samples -> clip dicts, skipping bad videos (module docstring).

    Indexed by an `ItemKey(seed, epoch, index)` (the Trainer) or a plain int (then
    `ItemKey(self.seed, self.epoch, index)`); the key seeds the clip's start, crop and flip
    (`cgm.data.seeding`)."""

    keyed_items = True
    source = ""  # the file or folder the samples were listed from (named in errors)

    def __init__(
        self,
        samples: list[tuple[str, int | None]],
        classes: list[str],
        *,
        clip_len: int = 16,
        stride: int = 1,
        size: int = 112,
        resize: int | None = 128,
        future: bool = False,
        train: bool = True,
        test_clips: int = 1,
        test_crops: int = 1,
        seed: int = 0,
        short: str = "skip",
        thread_type: str | None = None,
        max_failures: int = 50,
        max_pixels: int = MAX_PIXELS,
    ):
        self.classes = list(classes)
        self.clip_len, self.stride, self.future, self.train = clip_len, stride, future, train
        self.test_clips, self.short, self.seed, self.epoch = test_clips, short, seed, 0
        self.thread_type, self.max_failures, self.max_pixels = thread_type, max_failures, max_pixels
        self.transform = (
            train_transform(size, resize) if train else test_transform(size, resize, crops=test_crops)
        )
        self.views = 1 if train else test_clips * self.transform.views
        self.skipped: list[tuple[str, str]] = []
        self._bad: set[int] = set()
        self._warned = False
        self.samples = []
        for path, label in samples:
            reason = unusable(path)  # a FIFO named like a video is counted here, never opened
            if reason is None:
                self.samples.append((path, label))
            else:
                self.skipped.append((path, reason))
        if not self.samples:  # an empty set can be neither trained nor evaluated on
            what = (
                f"none of its {len(samples)} listed videos can be used, e.g. {self.skipped[0][0]}: "
                f"{self.skipped[0][1]}"
                if samples
                else "it lists no videos"
            )
            raise DataError(
                f"{type(self).__name__} ({'train' if train else 'test'} split): "
                f"{self.source or 'the sample list'}: {what}"
            )
        if self.skipped:
            reasons = {}
            for _, reason in self.skipped:
                reasons[reason.split(" (")[0]] = reasons.get(reason.split(" (")[0], 0) + 1
            warnings.warn(
                f"{type(self).__name__}: {len(self.skipped)} of {len(samples)} listed videos "
                f"are missing or unusable and were skipped ({', '.join(f'{n} {r}' for r, n in reasons.items())}; "
                "see .skipped), "
                f"e.g. {self.skipped[0][0]}",
                stacklevel=3,
            )

    def __len__(self) -> int:
        return len(self.samples)

    def set_epoch(self, epoch: int) -> None:
        """The epoch of plain-int indexing outside the Trainer (which passes ItemKeys instead)."""
        self.epoch = epoch

    def _clip_indices(self, index: int, num_frames: int, generator) -> list[list[int]]:
        if self.train:
            return [
                sample_train_clip(
                    num_frames, self.clip_len, self.stride, self.future, generator=generator, short=self.short
                )
            ]
        return sample_test_clips(
            num_frames, self.clip_len, self.stride, self.future, num_clips=self.test_clips, short=self.short
        )

    def _video(self, index: int) -> tuple[str, int | None]:
        return self.samples[index]

    def _load(self, index: int, key: ItemKey) -> dict:
        path, label = self._video(index)
        info = probe_video(path)
        generator = item_generator(key._replace(index=index))
        try:
            clips = self._clip_indices(index, info.num_frames, generator)
        except TooShortError as e:
            raise VideoError(path, str(e)) from e
        try:
            frames = read_frames(
                path,
                [i for clip in clips for i in clip],
                thread_type=self.thread_type,
                max_pixels=self.max_pixels,
            )
        except VideoError as e:
            if e.available is None or not 0 < e.available < info.num_frames:
                raise
            correct_frame_count(path, e.available)  # the probe was optimistic: sample again
            return self._load(index, key)
        per_clip = frames.split(len(clips[0]))  # each (T, H, W, 3)
        views = [self.transform(clip.permute(3, 0, 1, 2), generator) for clip in per_clip]
        if self.views == 1:
            clip = views[0]  # (3, T, size, size)
        else:
            clip = torch.cat([v if v.ndim == 5 else v[None] for v in views])  # (V, 3, T, size, size)
        item = {"clip": clip, "index": index, "path": path}
        if self.views > 1:
            item["views"] = self.views
        if label is not None:
            item["label"] = label
        return item

    def _record(self, error: VideoError, index: int) -> None:
        self.skipped.append((error.path, error.reason))
        self._bad.add(index)
        if not self._warned:
            self._warned = True
            warnings.warn(
                f"{type(self).__name__}: unreadable video skipped ({error}); further skips "
                "are recorded in .skipped and in the items' 'skipped' counts",
                stacklevel=3,
            )

    def __getitem__(self, key: int | ItemKey) -> dict:
        key = split_key(key, seed=self.seed, epoch=self.epoch)
        index = key.index
        if not -len(self) <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} items")
        index %= len(self)
        found, passed = 0, []  # videos found unreadable by this call; all bad videos passed over
        for attempt in range(min(len(self), self.max_failures + 1)):
            i = (index + attempt) % len(self)
            if i in self._bad:
                passed.append(self._video(i)[0])
                continue
            try:
                item = self._load(i, key)
            except VideoError as e:
                self._record(e, i)
                found += 1
                passed.append(self._video(i)[0])
                continue
            item["skipped"], item["skipped_paths"] = found, "\n".join(passed)
            return item
        recent = "; ".join(f"{p}: {r}" for p, r in self.skipped[-3:])
        tried = min(len(self), self.max_failures + 1)
        what = (
            f"none of its {len(self)} videos can be read"
            if tried == len(self)
            else f"{tried} videos in a row from index {index} could not be read"
        )
        raise DataError(
            f"{type(self).__name__}{f' ({self.source})' if self.source else ''}: {what}; last: {recent}. "
            "Check the decoder and the dataset layout."
        )

    def report(self) -> str:
        """Counts of skipped videos by reason (this process's copy)."""
        counts: dict[str, int] = {}
        for _, reason in self.skipped:
            key = reason.split(":")[0].split("(")[0].strip()
            counts[key] = counts.get(key, 0) + 1
        return f"{type(self).__name__}: {len(self)} items, skipped {len(self.skipped)} {counts or ''}"

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}({len(self)} items, {len(self.classes)} classes, "
            f"train={self.train}, views={self.views}, skipped={len(self.skipped)})"
        )


class _CaseInsensitivePaths:
    """Resolves a relative path under root exactly, as a frame folder (no extension), or
    case-insensitively (UCF101's HandstandPushups vs HandStandPushups)."""

    def __init__(self, root: Path):
        self.root, self._index = root, None

    def __call__(self, relative: str) -> str:
        path = self.root / relative
        if path.exists():
            return str(path)
        if path.suffix and path.with_suffix("").is_dir():
            return str(path.with_suffix(""))
        if self._index is None:
            self._index = {}
            for folder, dirs, files in os.walk(self.root):
                for name in dirs + files:
                    rel = os.path.relpath(os.path.join(folder, name), self.root)
                    self._index.setdefault(rel.lower(), rel)
        for key in (relative.lower(), os.path.splitext(relative)[0].lower()):
            if key in self._index:
                return str(self.root / self._index[key])
        return str(path)  # missing: recorded as such at construction


class UCF101(VideoClipDataset):
    """UCF101 with the official classInd.txt and trainlist/testlist 01-03 (split = 1, 2 or 3)."""

    def __init__(self, root, annotation_dir, split: int = 1, train: bool = True, **kw):
        if split not in (1, 2, 3):
            raise ValueError(f"UCF101 split={split}; expected 1, 2 or 3")
        root = _require(root, "UCF101 video root", UCF_LAYOUT)
        class_file = _require(Path(annotation_dir) / "classInd.txt", "UCF101 classInd.txt", UCF_LAYOUT)
        list_file = _require(
            Path(annotation_dir) / f"{'train' if train else 'test'}list0{split}.txt",
            "UCF101 split list",
            UCF_LAYOUT,
        )
        classes = []
        for number, line in _lines(class_file):
            tokens = line.split()
            if (
                len(tokens) != 2
                or _int(tokens[0], f"{class_file}:{number}", "class index") != len(classes) + 1
            ):
                raise ValueError(
                    f"{class_file}:{number}: expected '{len(classes) + 1} ClassName' (1-based "
                    f"index, then the class), got {line!r}"
                )
            if tokens[1].lower() in (c.lower() for c in classes):
                first = next(k for k, c in enumerate(classes) if c.lower() == tokens[1].lower()) + 1
                raise ValueError(
                    f"{class_file}:{number}: class {tokens[1]!r} is listed twice (also as class {first}); "
                    "each class name must appear once"
                )
            classes.append(tokens[1])
        lower = {name.lower(): k for k, name in enumerate(classes)}
        resolve = _CaseInsensitivePaths(root)
        samples = []
        for number, line in _lines(list_file):
            relative, *rest = line.split()
            folder = relative.replace("\\", "/").split("/")[0]
            if rest:
                label = _int(rest[0], f"{list_file}:{number}", "label") - 1
                if not 0 <= label < len(classes):
                    raise ValueError(
                        f"{list_file}:{number}: label {rest[0]} is not in {class_file} (1..{len(classes)})"
                    )
            elif folder.lower() in lower:
                label = lower[folder.lower()]
            else:
                raise ValueError(f"{list_file}:{number}: class {folder!r} is not in {class_file}")
            samples.append((resolve(relative), label))
        self.source = str(list_file)
        super().__init__(samples, classes, train=train, **kw)


class HMDB51(VideoClipDataset):
    """HMDB51 with the official `<class>_test_split{1,2,3}.txt` files (1 train, 2 test, 0 unused)."""

    def __init__(self, root, annotation_dir, split: int = 1, train: bool = True, **kw):
        if split not in (1, 2, 3):
            raise ValueError(f"HMDB51 split={split}; expected 1, 2 or 3")
        root = _require(root, "HMDB51 video root", HMDB_LAYOUT)
        annotation_dir = _require(annotation_dir, "HMDB51 split directory", HMDB_LAYOUT)
        suffix = f"_test_split{split}.txt"
        split_files = sorted(p for p in annotation_dir.iterdir() if p.name.endswith(suffix))
        if not split_files:
            _require(annotation_dir / f"<class>{suffix}", "HMDB51 split files", HMDB_LAYOUT)
        classes = [p.name[: -len(suffix)] for p in split_files]
        wanted = "1" if train else "2"
        samples = []
        for label, split_file in enumerate(split_files):
            for number, line in _lines(split_file):
                name, *flag = line.split()
                if not flag or flag[0] not in ("0", "1", "2"):
                    raise ValueError(f"{split_file}:{number}: expected 'video.avi 0|1|2', got {line!r}")
                if flag[0] == wanted:
                    samples.append((str(root / classes[label] / name), label))
        self.source = f"{annotation_dir}/*{suffix}, lines flagged {wanted}"
        super().__init__(samples, classes, train=train, **kw)


def _csv_rows(path: Path) -> list[dict]:
    return list(csv.DictReader(io.StringIO(_text(path), newline="")))


def kinetics_classes(annotation_csvs) -> list[str]:
    """The sorted union of the labels of the Kinetics annotation CSVs that exist (train, validate,
    test; a CSV without a label column adds none): class indices that agree between the splits
    even when one split lacks a class."""
    labels = set()
    for path in annotation_csvs:
        if Path(path).is_file():
            labels |= {row["label"] for row in _csv_rows(Path(path)) if row.get("label") is not None}
    return sorted(labels)


class Kinetics(VideoClipDataset):
    """Kinetics-400/600 from the official CSV; classes = sorted labels of the CSV unless given
    (`build_dataset` gives the union of every split's CSV, `kinetics_classes`).
    Files are found by name (`<youtube_id>_<start:06d>_<end:06d>` or `<youtube_id>`, any video
    extension, or a frame folder of that name) anywhere under root."""

    def __init__(self, root, annotation_csv, train: bool = True, classes: list[str] | None = None, **kw):
        root = _require(root, "Kinetics video root", KINETICS_LAYOUT)
        annotation_csv = _require(annotation_csv, "Kinetics annotation CSV", KINETICS_LAYOUT)
        rows = _csv_rows(annotation_csv)
        missing = {"youtube_id", "time_start", "time_end"} - set(rows[0] if rows else ())
        if missing:
            raise ValueError(
                f"{annotation_csv}: missing columns {sorted(missing)}; expected header "
                "label,youtube_id,time_start,time_end,split"
            )
        labeled = "label" in rows[0]
        if classes is None:
            classes = sorted({row["label"] for row in rows}) if labeled else []
        lookup = {name: k for k, name in enumerate(classes)}
        files = self._index(root)
        samples = []
        for number, row in enumerate(rows, 2):
            times = []
            for column in ("time_start", "time_end"):
                try:
                    times.append(int(float(row[column])))
                except (TypeError, ValueError, OverflowError):  # not a number, nan, inf
                    raise ValueError(
                        f"{annotation_csv}:{number}: {column} {row[column]!r} is not a number of seconds"
                    ) from None
            stem = f"{row['youtube_id']}_{times[0]:06d}_{times[1]:06d}"
            path = files.get(stem) or files.get(row["youtube_id"]) or str(root / (stem + ".mp4"))
            label = None
            if labeled:
                if row["label"] not in lookup:
                    raise ValueError(
                        f"{annotation_csv}:{number}: label {row['label']!r} is not in the classes given"
                    )
                label = lookup[row["label"]]
            samples.append((path, label))
        self.source = str(annotation_csv)
        super().__init__(samples, classes, train=train, **kw)

    @staticmethod
    def _index(root: Path) -> dict[str, str]:
        """Video stem -> path for every video file and frame folder under root."""
        index = {}
        for folder, dirs, names in os.walk(root):
            for name in names:
                stem, ext = os.path.splitext(name)
                if ext.lower() in VIDEO_EXTENSIONS:
                    index.setdefault(stem, os.path.join(folder, name))
            for name in dirs:
                index.setdefault(name, os.path.join(folder, name))
        return index


class VideoList(VideoClipDataset):
    """A PySlowFast / MMAction2 list: 'path label' per line (space or comma separated; MMAction2's
    'path num_frames label' for frame folders too); paths relative to root or absolute.
    Lines with only a path make an unlabeled dataset. classes: names for labels 0..N-1."""

    def __init__(self, root, list_file, train: bool = True, classes: list[str] | None = None, **kw):
        root = _require(root, "video root", "<root>/<path in list>\n<list_file>: 'path label' lines")
        list_file = _require(
            list_file,
            "list file",
            "<list_file>: 'path label' lines, e.g.\n  abseiling/abc_000010_000020.mp4 0",
        )
        samples = []
        for number, line in _lines(list_file):
            tokens = line.split()
            if len(tokens) == 3 and tokens[1].isdigit():  # MMAction2 frames: path num_frames label
                path, label = tokens[0], tokens[2]
            else:  # the label follows the last comma or whitespace; paths may hold spaces
                cut = max(line.rfind(","), *(line.rfind(c) for c in " \t"))
                path, label = (line[:cut].strip(" \t,"), line[cut + 1 :]) if cut > 0 else (line, None)
            if label is not None:
                label = _int(label, f"{list_file}:{number}", "label")
                below = len(classes) if classes is not None else MAX_CLASSES
                if not 0 <= label < below:
                    raise ValueError(
                        f"{list_file}:{number}: label {label} is out of range; labels are "
                        f"0-based class indices below {below}"
                        + ("" if classes is not None else " (the most classes a list may name)")
                    )
            samples.append((str(root / path), label))
        self.source = str(list_file)
        labels = {label for _, label in samples}
        if None in labels and len(labels) > 1:
            raise ValueError(f"{list_file}: some lines have a label and some do not")
        if classes is None:
            classes = [] if None in labels else [str(k) for k in range(max(labels, default=-1) + 1)]
        super().__init__(samples, classes, train=train, **kw)


class VideoFolder(VideoClipDataset):
    """Every video file and frame folder under root, in natural order, unlabeled (e.g. the
    YouTube-8M subset of the paper's self-supervised pretraining)."""

    def __init__(self, root, train: bool = True, **kw):
        root = _require(
            root,
            "video folder",
            "<root>/**/<name>.mp4|.avi|.mkv|.webm|.mov\n   or <root>/**/<name>/00001.jpg ... (frame folders)",
        )
        samples, unlisted = [], []
        for folder, dirs, names in os.walk(root, onerror=unlisted.append):
            if folder != str(root) and is_frame_folder(folder):
                samples.append(folder)
                dirs.clear()
                continue
            samples += [os.path.join(folder, n) for n in names if n.lower().endswith(VIDEO_EXTENSIONS)]
        if unlisted:  # e.g. a path beyond the system's length limit
            e = unlisted[0]
            warnings.warn(
                f"VideoFolder: {len(unlisted)} folders under {root} could not be listed and were "
                f"skipped, e.g. {e.filename}: {e.strerror}",
                stacklevel=2,
            )
        if not samples:
            why = (
                f"; {len(unlisted)} folders could not be listed, e.g. {str(unlisted[0].filename)[:200]}...: "
                f"{unlisted[0].strerror}"
                if unlisted
                else ""
            )
            raise FileNotFoundError(f"no videos or frame folders under {root}{why}")
        samples.sort(key=lambda p: natural_key(os.path.relpath(p, root)))
        self.source = str(root)
        super().__init__([(p, None) for p in samples], [], train=train, **kw)


# ------------------------------------------------------------------ UCF-Flow / UCF-Pred (Table 1)


def ucf_subset(name: str) -> list[str]:
    """The rule behind data/ucf_flow.txt and data/ucf_pred.txt: clip c01 of group g01 (in the test
    set of split 1) of every class (UCF-Pred, 101 videos) or of every 5th class in classInd order
    from the first (UCF-Flow, 20 videos). Returns testlist-style relative paths."""
    if name not in ("ucf_flow", "ucf_pred"):
        raise ValueError(f"name={name!r}; expected 'ucf_flow' or 'ucf_pred'")
    classes = UCF101_CLASSES[:100:5] if name == "ucf_flow" else UCF101_CLASSES
    return [f"{c}/v_{_UCF_FILE_SPELLING.get(c, c)}_g01_c01.avi" for c in classes]


class _UCFSubset(VideoClipDataset):
    """A fixed list of UCF101 videos, read whole: items are the consecutive windows of
    clip_len (+1 with future) frames that tile each video (`sampling.sample_windows`)."""

    subset = ""

    def __init__(
        self,
        root,
        clip_len: int = 16,
        stride: int = 1,
        size: int = 112,
        resize: int | None = 128,
        future: bool = True,
        **kw,
    ):
        root = _require(root, f"UCF101 video root for {self.subset}", UCF_LAYOUT)
        resolve = _CaseInsensitivePaths(root)
        classes = {c.lower(): k for k, c in enumerate(UCF101_CLASSES)}
        samples = [(resolve(p), classes[p.split("/")[0].lower()]) for p in ucf_subset(self.subset)]
        self.source = f"{self.subset} under {root}"
        super().__init__(
            samples,
            list(UCF101_CLASSES),
            clip_len=clip_len,
            stride=stride,
            size=size,
            resize=resize,
            future=future,
            train=False,
            **kw,
        )
        self.windows = []  # (video, frame indices)
        for video, (path, _) in enumerate(self.samples):
            try:
                windows = sample_windows(probe_video(path).num_frames, clip_len, stride, future)
            except (VideoError, TooShortError) as e:
                self.skipped.append((path, getattr(e, "reason", str(e))))
                continue
            if not windows:
                self.skipped.append((path, f"too short for one clip of {clip_len + future} frames"))
            self.windows += [(video, w) for w in windows]
        if not self.windows:
            raise DataError(
                f"{type(self).__name__} ({self.source}): no video gives a clip of {clip_len + future} "
                f"frames; e.g. {self.skipped[0][0] if self.skipped else ''}: "
                f"{self.skipped[0][1] if self.skipped else ''}"
            )

    def __len__(self) -> int:
        return len(self.windows)

    def _video(self, index: int):
        return self.samples[self.windows[index][0]]

    def _clip_indices(self, index, num_frames, generator):
        return [self.windows[index][1]]

    def _load(self, index: int, key: ItemKey) -> dict:
        item = super()._load(index, key)
        item["video"], item["start"] = self.windows[index][0], self.windows[index][1][0]
        return item


class UCFFlow(_UCFSubset):
    """UCF-Flow: 20 UCF101 videos for motion estimation (Table 1 left); rule in `ucf_subset`."""

    subset = "ucf_flow"


class UCFPred(_UCFSubset):
    """UCF-Pred: 101 UCF101 videos, one per class, for frame prediction (Table 1 right)."""

    subset = "ucf_pred"
