"""Decoding: frame indices of a video file (PyAV) or of a folder of extracted frames -> uint8 frames.

Only what a clip needs is decoded: seek to the keyframe at or before the first wanted frame,
decode forward, stop after the last wanted one. torchvision.io is not used (torchvision >= 0.26
no longer decodes video).

Frame index i of a video is the frame whose presentation time is closest to start + i / fps.
"""

from __future__ import annotations

import os
import re
import stat
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

# Largest frame decoded (4K UHD): an 8K clip of 16 frames would take 1.6 GB before resizing.
MAX_PIXELS = 3840 * 2160
VIDEO_EXTENSIONS = (".mp4", ".avi", ".mkv", ".webm", ".mov", ".m4v", ".mpg", ".mpeg")
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp")


class VideoError(Exception):
    """A video that cannot give the frames asked for: missing, corrupt, empty, truncated or short.

    `available` is the number of frames actually decodable when a read found fewer than probed.
    """

    def __init__(self, path: str, reason: str, *, available: int | None = None):
        super().__init__(f"{path}: {reason}")
        self.path, self.reason, self.available = str(path), reason, available


@dataclass(frozen=True)
class VideoInfo:
    """What a probe learns: frame count, frame rate (None for frame folders), and how it knew."""

    num_frames: int
    fps: float | None
    source: str  # "header" | "duration" | "decoded" | "frames"


# ------------------------------------------------------------------ frame folders


def natural_key(name: str) -> list:
    """Sort key that orders img_2 before img_10."""
    return [int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", name)]


def list_frames(folder: str) -> list[str]:
    """Image files of a frame folder in natural order."""
    names = [n for n in os.listdir(folder) if n.lower().endswith(IMAGE_EXTENSIONS)]
    return [os.path.join(folder, n) for n in sorted(names, key=natural_key)]


def is_frame_folder(path: str) -> bool:
    """A directory holding at least one image file."""
    return os.path.isdir(path) and any(n.lower().endswith(IMAGE_EXTENSIONS) for n in os.listdir(path))


def _read_image(path: str, max_pixels: int) -> np.ndarray:
    """An image file as (H, W, 3) RGB uint8. The bytes are read by Python and decoded from memory:
    cv2.imread is handed no file name (one that is not UTF-8 crashed the process in OpenCV)."""
    import cv2  # loaded on first use: OpenCV is heavy

    reason = unusable(path)
    if reason is not None or os.path.isdir(path):  # a FIFO named like an image would block open()
        raise VideoError(path, f"unreadable image ({reason or 'a folder'})")
    try:
        with open(path, "rb") as f:
            data = np.frombuffer(f.read(), np.uint8)
    except OSError as e:
        raise VideoError(path, f"unreadable image ({e.strerror})") from None
    bgr = cv2.imdecode(data, cv2.IMREAD_COLOR) if data.size else None
    if bgr is None:
        raise VideoError(path, "unreadable image")
    _check_size(path, bgr.shape[1], bgr.shape[0], max_pixels)
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)  # (H, W, 3)


def _check_size(path: str, width: int, height: int, max_pixels: int) -> None:
    if width * height > max_pixels:
        raise VideoError(
            path,
            f"frames of {width}x{height} exceed max_pixels={max_pixels} "
            f"({width * height} pixels); resize the video or raise max_pixels",
        )


# ------------------------------------------------------------------ probing

_PROBE_CACHE: dict[str, tuple[tuple[int, int], VideoInfo]] = {}


def unusable(path: str | os.PathLike) -> str | None:
    """Why `path` cannot be read as a video (file or frame folder) without opening it, or None:
    missing, a name no file system holds, or not a regular file (a FIFO would block the reader
    forever, a device never ends)."""
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        return "missing file"
    except (OSError, ValueError) as e:  # ENAMETOOLONG, ELOOP, EACCES; ValueError: a NUL byte
        return f"cannot be read ({getattr(e, 'strerror', None) or e})"
    if stat.S_ISREG(mode) or stat.S_ISDIR(mode):
        return None
    kind = (
        "a FIFO"
        if stat.S_ISFIFO(mode)
        else "a device"
        if stat.S_ISCHR(mode) or stat.S_ISBLK(mode)
        else "a socket"
    )
    return f"not a regular file ({kind}); never opened"


def _stat_key(path: str) -> tuple[int, int]:
    st = os.stat(path)
    return st.st_mtime_ns, st.st_size


# PyAV objects live only inside the two functions below, which return errors as values instead of
# raising: FFmpeg decoder threads exist only in the process that started them, and a codec context
# freed in a forked DataLoader worker (reached, say, through a traceback kept alive in a reference
# cycle in the parent) deadlocks that worker. So no exception we raise references a frame holding one.


def _open(path: str):
    """(container, None), or (None, reason) when FFmpeg cannot read it."""
    import av  # PyAV loads on first decode: importing cgm for embedded data never pays it

    reason = unusable(path)
    if reason is not None or os.path.isdir(path):  # a FIFO would block av.open forever
        return None, reason or "a folder, not a video file"
    try:
        container = av.open(path)
    except (av.error.FFmpegError, OSError, ValueError) as e:
        return None, f"cannot open ({type(e).__name__}: {e})"
    if not container.streams.video:
        container.close()
        return None, "no video stream"
    return container, None


def _fps(stream) -> float | None:
    rate = stream.average_rate or stream.guessed_rate or stream.base_rate
    return float(rate) if rate else None


def _probe_file(path: str) -> tuple[VideoInfo | None, str | None]:
    """(info, None) or (None, reason)."""
    import av  # PyAV loads on first decode: importing cgm for embedded data never pays it

    container, reason = _open(path)
    if container is None:
        return None, reason
    with container:
        stream = container.streams.video[0]
        fps = _fps(stream)
        if stream.frames and stream.frames > 0:
            return VideoInfo(int(stream.frames), fps, "header"), None
        seconds = None
        if stream.duration is not None and stream.time_base is not None:
            seconds = float(stream.duration * stream.time_base)
        elif container.duration is not None:
            seconds = container.duration / av.time_base
        if seconds and fps:
            return VideoInfo(int(round(seconds * fps)), fps, "duration"), None
        try:  # last resort: count by decoding
            count = sum(1 for _ in container.decode(stream))
        except av.error.FFmpegError as e:
            return None, f"corrupt stream ({e})"
        return VideoInfo(count, fps, "decoded"), None


def probe_video(path: str) -> VideoInfo:
    """Frame count and fps of a video file or frame folder; cached per path (and mtime, size)."""
    path = str(path)
    if not os.path.exists(path):
        raise VideoError(path, "missing file")
    key = _stat_key(path)
    hit = _PROBE_CACHE.get(path)
    if hit is not None and hit[0] == key:
        return hit[1]
    if os.path.isdir(path):
        info = VideoInfo(len(list_frames(path)), None, "frames")
    else:
        info, reason = _probe_file(path)
        if info is None:
            raise VideoError(path, reason)
    if info.num_frames <= 0:
        raise VideoError(path, "no frames")
    _PROBE_CACHE[path] = (key, info)
    return info


def correct_frame_count(path: str, num_frames: int) -> None:
    """Record the true frame count after a read found the probe too optimistic."""
    path = str(path)
    hit = _PROBE_CACHE.get(path)
    fps = hit[1].fps if hit else None
    _PROBE_CACHE[path] = (_stat_key(path), VideoInfo(num_frames, fps, "decoded"))


# ------------------------------------------------------------------ reading


def _read_folder(path: str, indices: Sequence[int], max_pixels: int) -> np.ndarray:
    files = list_frames(path)
    if not files:
        raise VideoError(path, "no frames")
    if max(indices) >= len(files):
        raise VideoError(path, f"frame {max(indices)} wanted, folder has {len(files)}", available=len(files))
    cache = {i: _read_image(files[i], max_pixels) for i in sorted(set(indices))}
    shapes = {f.shape for f in cache.values()}
    if len(shapes) != 1:
        raise VideoError(path, f"frames of different sizes {sorted(shapes)}")
    return np.stack([cache[i] for i in indices])  # (T, H, W, 3)


def _decode_range(container, stream, first: int, last: int, wanted: set[int], *, seek: bool):
    """Decode frames first..last -> ({index: (H, W, 3) uint8} for wanted indices, frames decoded,
    whether pts gave usable indices: False asks the caller to retry by counting from frame 0)."""
    fps = _fps(stream)
    time_base = stream.time_base
    start = stream.start_time or 0
    use_pts = seek and fps is not None and time_base is not None
    if use_pts and first > 0:
        target = start + int(first / fps / time_base)
        container.seek(target, stream=stream, backward=True, any_frame=False)
    out, count = {}, 0
    for frame in container.decode(stream):
        if use_pts:
            if frame.pts is None:
                return out, count, False
            i = int(round(float((frame.pts - start) * time_base) * fps))
            if count == 0 and i > first:  # seek overshot the first wanted frame
                return out, count, False
        else:
            i = count
        count += 1
        if i in wanted:
            out[i] = frame.to_ndarray(format="rgb24")
        if i >= last:
            break
    return out, count, True


def _decode_file(
    path: str, first: int, last: int, wanted: set[int], thread_type: str | None, max_pixels: int
):
    """({index: frame}, frames decoded when counting from 0 (else None), None) or (..., reason)."""
    import av  # PyAV loads on first decode: importing cgm for embedded data never pays it

    container, reason = _open(path)
    if container is None:
        return {}, None, reason
    with container:
        stream = container.streams.video[0]
        width, height = stream.codec_context.width or 0, stream.codec_context.height or 0
        if width * height > max_pixels:
            return (
                {},
                None,
                (
                    f"frames of {width}x{height} exceed max_pixels={max_pixels} "
                    f"({width * height} pixels); resize the video or raise max_pixels"
                ),
            )
        if thread_type is not None:
            stream.codec_context.thread_type = thread_type
        try:
            frames, _, reliable = _decode_range(container, stream, first, last, wanted, seek=True)
            if reliable and last in frames:
                return frames, None, None
            # Timestamps unusable, or the video ends early: decode from the start, counting
            # frames, which also tells how many frames the video really has.
            container.seek(0, stream=stream, backward=True, any_frame=False)
            frames, count, _ = _decode_range(container, stream, first, last, wanted, seek=False)
            return frames, count, None
        except av.error.FFmpegError as e:
            return {}, None, f"corrupt stream ({e})"


def _read_video(path: str, indices: Sequence[int], thread_type: str | None, max_pixels: int) -> np.ndarray:
    first, last, wanted = min(indices), max(indices), set(indices)
    frames, count, reason = _decode_file(path, first, last, wanted, thread_type, max_pixels)
    if reason is not None:
        raise VideoError(path, reason)
    if last not in frames:
        raise VideoError(
            path, f"truncated: frame {last} wanted, video ends after {count} frames", available=count
        )
    decoded = sorted(frames)
    # Variable frame rate leaves gaps in the pts grid: take the nearest earlier decoded frame.
    filled = {}
    for i in sorted(wanted):
        j = max((d for d in decoded if d <= i), default=decoded[0])
        filled[i] = frames[j]
    return np.stack([filled[i] for i in indices])  # (T, H, W, 3)


def read_frames(
    path: str, indices: Sequence[int], *, thread_type: str | None = None, max_pixels: int = MAX_PIXELS
) -> torch.Tensor:
    """Frames `indices` (any order, repeats allowed) of a video file or frame folder -> uint8 (T, H, W, 3).

    thread_type: PyAV decoder threading ("AUTO", "FRAME", "SLICE") or None for FFmpeg's default;
    see benchmarks/data.py before turning it on inside DataLoader workers. Frames larger than
    `max_pixels` are refused (VideoError) before they are decoded.
    """
    path = str(path)
    indices = [int(i) for i in indices]
    if not indices:
        raise ValueError("read_frames: indices is empty; expected at least one frame index")
    if min(indices) < 0:
        raise ValueError(f"read_frames: negative frame index {min(indices)}")
    if not os.path.exists(path):
        raise VideoError(path, "missing file")
    if os.path.isdir(path):
        array = _read_folder(path, indices, max_pixels)
    else:
        array = _read_video(path, indices, thread_type, max_pixels)
    return torch.from_numpy(array)


class VideoReader:
    """A video file or frame folder with its probed length: `len(reader)`, `reader.fps`, `reader[indices]`."""

    def __init__(self, path: str, *, thread_type: str | None = None):
        self.path, self.thread_type = str(path), thread_type
        info = probe_video(self.path)
        self.num_frames, self.fps = info.num_frames, info.fps

    def __len__(self) -> int:
        return self.num_frames

    def read(self, indices: Sequence[int]) -> torch.Tensor:
        """uint8 (T, H, W, 3) frames at `indices`."""
        return read_frames(self.path, indices, thread_type=self.thread_type)

    __getitem__ = read

    def __repr__(self) -> str:
        return f"VideoReader({self.path!r}, num_frames={self.num_frames}, fps={self.fps})"
