"""Clip sampling: which frame indices of a video form a clip.

A clip is `clip_len` frames `stride` apart, plus the next frame at the same stride when
`future=True` (the self-supervised target: CGM-Net predicts the frame after the clip), so it spans
`(clip_len + future - 1) * stride + 1` frames. Videos shorter than that are skipped by default,
as the paper "discard[s] the too short clips" (§4.1); `short="loop"` wraps around instead and
`short="repeat"` repeats the last frame.
"""

from __future__ import annotations

import numpy as np
import torch

SHORT_POLICIES = ("skip", "loop", "repeat")


class TooShortError(ValueError):
    """The video has fewer frames than one clip spans (and `short="skip"`)."""


def clip_span(clip_len: int, stride: int = 1, future: bool = False) -> int:
    """Number of video frames one clip covers."""
    return (clip_len + int(future) - 1) * stride + 1


def _check(num_frames: int, clip_len: int, stride: int, short: str) -> None:
    if clip_len < 1 or stride < 1:
        raise ValueError(f"clip_len and stride must be >= 1, got clip_len={clip_len}, stride={stride}")
    if short not in SHORT_POLICIES:
        raise ValueError(f"short={short!r}; expected one of {SHORT_POLICIES}")
    if num_frames < 1:
        raise TooShortError("video has no frames")


def _clip_at(start: int, num_frames: int, clip_len: int, stride: int, future: bool, short: str) -> list[int]:
    """Indices of the clip starting at `start`, applying the short-video policy."""
    span = clip_span(clip_len, stride, future)
    if num_frames < span and short == "skip":
        raise TooShortError(
            f"too short: {num_frames} frames, a clip needs {span} "
            f"(clip_len={clip_len}, stride={stride}, future={future})"
        )
    indices = [start + t * stride for t in range(clip_len + int(future))]
    if short == "loop":
        return [i % num_frames for i in indices]
    return [min(i, num_frames - 1) for i in indices]


def _randint(high: int, generator) -> int:
    """Uniform integer in [0, high) from a torch.Generator, a numpy Generator, or None (torch global)."""
    if isinstance(generator, np.random.Generator):
        return int(generator.integers(high))
    return int(torch.randint(high, (), generator=generator))


def sample_train_clip(
    num_frames: int,
    clip_len: int,
    stride: int = 1,
    future: bool = False,
    *,
    generator: torch.Generator | np.random.Generator | None = None,
    short: str = "skip",
) -> list[int]:
    """One clip at a uniformly random start -> list of clip_len (+1 if future) frame indices."""
    _check(num_frames, clip_len, stride, short)
    span = clip_span(clip_len, stride, future)
    start = _randint(max(num_frames - span, 0) + 1, generator)
    return _clip_at(start, num_frames, clip_len, stride, future, short)


def sample_test_clips(
    num_frames: int,
    clip_len: int,
    stride: int = 1,
    future: bool = False,
    *,
    num_clips: int = 1,
    short: str = "skip",
) -> list[list[int]]:
    """`num_clips` evenly spaced clips, first at frame 0 and last at the end (one clip: centred)."""
    _check(num_frames, clip_len, stride, short)
    if num_clips < 1:
        raise ValueError(f"num_clips must be >= 1, got {num_clips}")
    last_start = max(num_frames - clip_span(clip_len, stride, future), 0)
    if num_clips == 1:
        starts = [last_start // 2]
    else:
        starts = [int(round(last_start * k / (num_clips - 1))) for k in range(num_clips)]
    return [_clip_at(s, num_frames, clip_len, stride, future, short) for s in starts]


def sample_windows(num_frames: int, clip_len: int, stride: int = 1, future: bool = True) -> list[list[int]]:
    """Clips tiling the whole video, windows starting every clip_len*stride frames; an incomplete
    tail is dropped. With future=True consecutive windows share one frame, so every consecutive
    frame pair (at this stride) appears in exactly one clip: the Table 1 evaluation protocol."""
    _check(num_frames, clip_len, stride, "skip")
    span, step = clip_span(clip_len, stride, future), clip_len * stride
    return [
        [s + t * stride for t in range(clip_len + int(future))] for s in range(0, num_frames - span + 1, step)
    ]
