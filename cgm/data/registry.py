"""One entry point for every dataset by name: `build_dataset(name, split, data_root=..., ...)`.

Embedded datasets (synthmotion, natural) need no data_root; footage and knownmotion read
data/footage/ (`make data`). Real ones take `data_root`, a folder laid out as in `LAYOUTS` (and
data/README.md). `split` is "train", "val" or "test";
UCF101/HMDB51 have no validation list, so "val" and "test" both read the test list of `fold`.
Keyword arguments go to the dataset class (stride, resize, test_clips, test_crops, seed, short, ...).
"""

from __future__ import annotations

import importlib
from pathlib import Path

from . import datasets

DATASETS = (
    "synthmotion",
    "natural",
    "footage",
    "knownmotion",
    "ucf101",
    "hmdb51",
    "kinetics400",
    "kinetics600",
    "videolist",
    "videofolder",
    "ucf_flow",
    "ucf_pred",
)
SPLITS = ("train", "val", "test")

LAYOUTS = {
    "ucf101": "<data_root>/videos/<Class>/v_<Class>_gGG_cCC.avi   (or UCF-101/ as extracted)\n"
    "<data_root>/annotations/classInd.txt, trainlist01.txt ... testlist03.txt   "
    "(or ucfTrainTestlist/)",
    "hmdb51": "<data_root>/videos/<class>/<video>.avi\n"
    "<data_root>/annotations/<class>_test_split{1,2,3}.txt   (or testTrainMulti_7030_splits/)",
    "kinetics": "<data_root>/annotations/train.csv, validate.csv (or val.csv), test.csv\n"
    "<data_root>/videos/**/<youtube_id>_<start:06d>_<end:06d>.mp4   "
    "(e.g. videos/train/<label>/...; any depth)",
    "videolist": "<data_root>/train.csv, val.csv, test.csv   ('path label' lines, PySlowFast; "
    ".txt also read)\n<data_root>/<path in list>   (or root=... for another prefix)",
    "videofolder": "<data_root>/**/*.mp4|.avi|.mkv|.webm|.mov, or frame folders of JPEG/PNG",
    "ucf_flow": "<data_root>/videos/<Class>/v_<Class>_g01_c01.avi   (or UCF-101/; only the 20 listed "
    "in data/ucf_flow.txt are needed)",
    "ucf_pred": "<data_root>/videos/<Class>/v_<Class>_g01_c01.avi   (or UCF-101/; only the 101 listed "
    "in data/ucf_pred.txt are needed)",
}


def _first(root: Path, names: tuple[str, ...]) -> Path:
    """The first of root/name that exists, else root/names[0] (whose absence the dataset reports)."""
    for name in names:
        if (root / name).exists():
            return root / name
    return root / names[0]


def _kinetics_csv(annotations: Path, split: str) -> Path:
    names = {"train": ("train.csv",), "val": ("validate.csv", "val.csv"), "test": ("test.csv",)}[split]
    return _first(annotations, names)


def build_dataset(
    name: str, split: str, *, data_root=None, clip_len: int = 16, size: int = 112, future: bool = False, **kw
):
    """The dataset `name` for `split` ("train" | "val" | "test"); see LAYOUTS for data_root."""
    if name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; valid names: {', '.join(DATASETS)}")
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; expected one of {SPLITS}")
    common = dict(clip_len=clip_len, size=size, future=future)
    if name == "synthmotion":
        return importlib.import_module("cgm.data.synthmotion").SynthMotion(split=split, **common, **kw)
    if name == "natural":
        return importlib.import_module("cgm.data.natural").NaturalClips(split=split, **common, **kw)
    if name == "footage":  # installed by `make data` under data/footage/
        return importlib.import_module("cgm.data.footage").FootageClips(split=split, **common, **kw)
    if name == "knownmotion":  # footage frames under known motion: needs data/footage/ too
        return importlib.import_module("cgm.data.knownmotion").KnownMotion(split=split, **common, **kw)

    layout = LAYOUTS["kinetics" if name.startswith("kinetics") else name]
    if data_root is None:
        raise ValueError(
            f"dataset {name!r} needs data_root, a folder laid out as:\n  " + layout.replace("\n", "\n  ")
        )
    root = Path(data_root).expanduser()
    if not root.is_dir():
        raise FileNotFoundError(
            f"data_root {root} for {name!r} is not a folder; expected layout:\n  "
            + layout.replace("\n", "\n  ")
        )
    train = split == "train"
    if name in ("ucf101", "hmdb51"):
        fold = kw.pop("fold", 1)
        video_names, annotation_names = {
            "ucf101": (("videos", "UCF-101"), ("annotations", "ucfTrainTestlist")),
            "hmdb51": (("videos", "hmdb51_org"), ("annotations", "testTrainMulti_7030_splits")),
        }[name]
        cls = datasets.UCF101 if name == "ucf101" else datasets.HMDB51
        return cls(
            _first(root, video_names), _first(root, annotation_names), split=fold, train=train, **common, **kw
        )
    if name.startswith("kinetics"):
        if kw.get("classes") is None:  # the same indices in every split
            kw["classes"] = (
                datasets.kinetics_classes([_kinetics_csv(root / "annotations", s) for s in SPLITS]) or None
            )
        return datasets.Kinetics(
            _first(root, ("videos",)), _kinetics_csv(root / "annotations", split), train=train, **common, **kw
        )
    if name == "videolist":
        list_file = kw.pop("list_file", None) or _first(root, (f"{split}.csv", f"{split}.txt"))
        return datasets.VideoList(kw.pop("root", root), list_file, train=train, **common, **kw)
    if name == "videofolder":
        return datasets.VideoFolder(root, train=train, **common, **kw)
    cls = datasets.UCFFlow if name == "ucf_flow" else datasets.UCFPred
    return cls(_first(root, ("videos", "UCF-101")), **common, **kw)
