"""Shared fixtures: tiny videos and frame folders written at test time with PyAV / OpenCV.

Frames carry their own index so tests can check which frames were read: the left half of
frame i has grey level `frame_level(i)`, the right half a horizontal gradient that moves one
pixel per frame (real motion for flow-style checks).
"""

import os
import socket
import sys

import av
import cv2
import numpy as np
import pytest
import torch

LEVEL_STEP = 8  # grey level per frame index; 24 frames stay below 255


def frame_level(i: int) -> int:
    """Grey level of the left half of fixture frame i."""
    return 16 + LEVEL_STEP * i


def fixture_frame(i: int, width: int = 40, height: int = 32) -> np.ndarray:
    """Fixture frame i: (H, W, 3) uint8, index-coded left half, moving gradient right half."""
    frame = np.empty((height, width, 3), np.uint8)
    frame[:, : width // 2] = frame_level(i) % 256
    x = np.arange(width - width // 2)
    frame[:, width // 2 :] = ((x + i) * 12 % 256).astype(np.uint8)[None, :, None]
    return frame


def frame_index_of(frame: np.ndarray) -> int:
    """Recover the fixture frame index from a decoded (H, W, 3) frame (codec noise tolerated)."""
    width = frame.shape[1]
    level = float(np.asarray(frame)[:, : width // 4].mean())
    return int(round((level - 16) / LEVEL_STEP))


def torchrun_command(nproc: int = 2) -> list[str]:
    """`torchrun --nproc_per_node N` on loopback with a free port; append the script or `-m ...`."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(nproc),
            "--master_addr", "127.0.0.1", "--master_port", str(port)]  # fmt: skip


def write_video(
    path,
    num_frames: int = 24,
    width: int = 40,
    height: int = 32,
    *,
    fps: int = 25,
    codec: str = "libx264",
    gop: int = 8,
) -> str:
    """Write a fixture video with PyAV; `num_frames=0` writes a valid header with no frames."""
    path = str(path)
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    options = {"crf": "0", "preset": "ultrafast"} if codec == "libx264" else {"qscale": "1"}
    with av.open(path, "w") as container:
        stream = container.add_stream(codec, rate=fps, options=options)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.codec_context.gop_size = gop
        container.start_encoding()  # writes the header even when no frame follows
        for i in range(num_frames):
            frame = av.VideoFrame.from_ndarray(fixture_frame(i, width, height), format="rgb24")
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def write_frame_folder(
    path,
    num_frames: int = 24,
    width: int = 40,
    height: int = 32,
    *,
    ext: str = ".png",
    pattern: str = "img_{:d}",
) -> str:
    """Write one image per frame; names are unpadded so that only natural sorting orders them."""
    path = str(path)
    os.makedirs(path, exist_ok=True)
    for i in range(num_frames):
        bgr = cv2.cvtColor(fixture_frame(i, width, height), cv2.COLOR_RGB2BGR)
        cv2.imwrite(os.path.join(path, pattern.format(i + 1) + ext), bgr)
    return path


def write_corrupt(path, size: int = 2048, seed: int = 0) -> str:
    """Random bytes under a video name."""
    path = str(path)
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    with open(path, "wb") as f:
        f.write(np.random.default_rng(seed).integers(0, 256, size, dtype=np.uint8).tobytes())
    return path


@pytest.fixture
def make_video():
    """`make_video(path, num_frames=24, width=40, height=32, ...)` -> path of a written video."""
    return write_video


@pytest.fixture
def make_frame_folder():
    """`make_frame_folder(path, num_frames=24, ...)` -> path of a folder of PNG frames."""
    return write_frame_folder


@pytest.fixture(scope="session")
def fixture_video(tmp_path_factory) -> str:
    """One 24-frame 40x32 mp4 (keyframe every 8 frames), shared by the session."""
    return write_video(tmp_path_factory.mktemp("video") / "clip.mp4")


@pytest.fixture
def seeded_one_thread():
    """Seed torch and run single-threaded: on tiny tensors a second thread only adds hand-offs."""
    threads = torch.get_num_threads()
    torch.manual_seed(0)
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(autouse=True)
def _fetched_footage_only_when_marked(request, monkeypatch):
    """Only a test marked `footage` sees the footage that `make data` fetched (data/footage/). To
    any other test it looks absent (`footage_ready()` is False, `load_sequence` raises the
    missing-footage error), so `make test-fast` behaves the same with or without it, and a test
    that needs it but lacks the mark fails with a message that says so. Footage in other folders
    (a test's own fake sequences) reads as usual."""
    if request.node.get_closest_marker("footage"):
        return
    from pathlib import Path

    from cgm.data import footage

    real = footage.FOOTAGE_DIR.resolve()
    ready, load = footage.footage_ready, footage.load_sequence

    def fetched(folder) -> bool:
        return Path(folder).resolve() == real

    def footage_ready(footage_dir=footage.FOOTAGE_DIR) -> bool:
        return False if fetched(footage_dir) else ready(footage_dir)

    def load_sequence(name, footage_dir=footage.FOOTAGE_DIR):
        if fetched(footage_dir):
            raise FileNotFoundError(
                f"footage {name!r} read by {request.node.nodeid}, which is not marked "
                "@pytest.mark.footage: mark it (make test-fast leaves such tests out)"
            )
        return load(name, footage_dir)

    monkeypatch.setattr(footage, "footage_ready", footage_ready)
    monkeypatch.setattr(footage, "load_sequence", load_sequence)
