"""Data-loading throughput: clips/s of 16x112x112 training clips from PyAV video files vs frame
folders, with 0 and 2 DataLoader workers, PyAV decoder threading default / "AUTO", and 2 or 1
torch threads in the main process; and the SynthMotion rate from benchmarks/synthmotion.py.

    python benchmarks/data.py                       # 8 videos of 320x240, 64 frames, in a temp dir
    python benchmarks/data.py --videos 16 --frames 128 --codec mpeg4 --gop 12

The fixture videos are smooth random textures panning a few pixels per frame, encoded with
libx264 (default GOP, like YouTube-style mp4) or mpeg4 with a short GOP (like UCF101's xvid avi);
frame folders hold the same frames as JPEG (quality 95). A clip is a random 16-frame window,
resized to short side 128, random 5-crop 112 + flip, scaled to [-1, 1] (the training path).
Measured on a busy 2-core machine, 0 workers with 2 torch threads ran 4-7x slower than with 1
(OpenMP oversubscription in the resize); "AUTO" decoder threading never helped 16-frame clips
and cost 30% with short-GOP mpeg4 in workers (frame threads delay output after each seek).
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import tempfile
import time

import av
import cv2
import numpy as np
import torch

from cgm.data.datasets import VideoFolder


def texture_frames(num_frames: int, width: int, height: int, seed: int) -> np.ndarray:
    """(T, H, W, 3) uint8: a smooth colour texture panning 2 px right and 1 px down per frame."""
    rng = np.random.default_rng(seed)
    pad = 2 * num_frames
    noise = rng.integers(0, 256, (height + pad, width + pad, 3), dtype=np.uint8)
    texture = cv2.GaussianBlur(noise, (0, 0), 3)
    texture = cv2.normalize(texture, None, 0, 255, cv2.NORM_MINMAX)
    return np.stack(
        [texture[pad - t : pad - t + height, pad - 2 * t : pad - 2 * t + width] for t in range(num_frames)]
    )


def write_fixtures(folder: str, videos: int, frames: int, codec: str, gop: int | None) -> tuple[str, str]:
    """`videos` video files and the same frames as JPEG folders; returns the two roots."""
    video_root, frame_root = os.path.join(folder, "videos"), os.path.join(folder, "frames")
    os.makedirs(video_root), os.makedirs(frame_root)
    ext = ".mp4" if codec == "libx264" else ".avi"
    for v in range(videos):
        clip = texture_frames(frames, 320, 240, seed=v)
        with av.open(os.path.join(video_root, f"video{v}{ext}"), "w") as container:
            stream = container.add_stream(codec, rate=25)
            stream.width, stream.height, stream.pix_fmt = 320, 240, "yuv420p"
            if gop is not None:
                stream.codec_context.gop_size = gop
            for frame in clip:
                for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                    container.mux(packet)
            for packet in stream.encode():
                container.mux(packet)
        os.makedirs(os.path.join(frame_root, f"video{v}"))
        for t, frame in enumerate(clip):
            cv2.imwrite(
                os.path.join(frame_root, f"video{v}", f"img_{t + 1:05d}.jpg"),
                cv2.cvtColor(frame, cv2.COLOR_RGB2BGR),
                [cv2.IMWRITE_JPEG_QUALITY, 95],
            )
    return video_root, frame_root


def clips_per_second(root: str, workers: int, clips: int, thread_type: str | None) -> float:
    """Training clips/s through a DataLoader (batch 8), after one warm-up batch."""
    data = VideoFolder(root, clip_len=16, size=112, resize=128, thread_type=thread_type)
    sampler = torch.utils.data.RandomSampler(
        data, replacement=True, num_samples=clips + 8, generator=torch.Generator().manual_seed(0)
    )
    loader = torch.utils.data.DataLoader(
        data, batch_size=8, sampler=sampler, num_workers=workers, persistent_workers=False
    )
    batches = iter(loader)
    next(batches)  # warm-up: worker start, first decode
    start, count = time.perf_counter(), 0
    for batch in batches:
        count += batch["clip"].shape[0]
    return count / (time.perf_counter() - start)


def synthmotion_line(clips: int) -> str:
    """SynthMotion's 16x112x112 rate from benchmarks/synthmotion.py, when that file exists."""
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "synthmotion.py")
    if not os.path.exists(path):
        return "SynthMotion: benchmarks/synthmotion.py not present"
    spec = importlib.util.spec_from_file_location("synthmotion_benchmark", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    r = module.synthmotion_rate(16, 112, clips=clips, future=False)
    return (
        f"SynthMotion 16x112x112 in-process ({r['threads']} torch threads): {r['clips_per_s']:.1f} "
        f"clips/s ({r['ms_per_clip']:.0f} ms/clip wall, {r['cpu_ms_per_clip']:.0f} ms CPU)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--videos", type=int, default=8)
    parser.add_argument("--frames", type=int, default=64)
    parser.add_argument("--clips", type=int, default=64, help="clips timed per configuration")
    parser.add_argument("--codec", default="libx264", choices=["libx264", "mpeg4"])
    parser.add_argument("--gop", type=int, default=None, help="keyframe interval (codec default if unset)")
    args = parser.parse_args()
    print(
        f"{os.cpu_count()} CPU cores (load average {os.getloadavg()[0]:.1f}), PyAV {av.__version__}, "
        f"{args.videos} videos 320x240 x {args.frames} frames ({args.codec}, gop {args.gop or 'default'}); "
        f"clip 16x112x112 (short side 128, 5-crop, flip)"
    )
    with tempfile.TemporaryDirectory() as folder:
        video_root, frame_root = write_fixtures(folder, args.videos, args.frames, args.codec, args.gop)
        size_mb = sum(os.path.getsize(os.path.join(video_root, n)) for n in os.listdir(video_root)) / 1e6
        jpeg_mb = (
            sum(os.path.getsize(os.path.join(d, n)) for d, _, ns in os.walk(frame_root) for n in ns) / 1e6
        )
        print(f"on disk: videos {size_mb:.1f} MB, JPEG frames {jpeg_mb:.1f} MB\n")
        cores = os.cpu_count() or 1
        print(f"{'source':<14}{'decoder threads':<17}{'workers':>8}{'torch threads':>15}{'clips/s':>10}")
        for source, root, thread_types in (
            ("PyAV video", video_root, (None, "AUTO")),
            ("frame folder", frame_root, (None,)),
        ):
            for thread_type in thread_types:
                # DataLoader workers run with 1 torch thread each; the main process with `cores`,
                # or 1, which avoids OpenMP oversubscription when the machine is busy.
                for workers, torch_threads in ((0, cores), (0, 1), (2, cores)):
                    torch.set_num_threads(torch_threads)
                    rate = clips_per_second(root, workers, args.clips, thread_type)
                    threads = "-" if source == "frame folder" else str(thread_type or "default")
                    shown = torch_threads if workers == 0 else "1 each"
                    print(f"{source:<14}{threads:<17}{workers:>8}{shown!s:>15}{rate:>10.1f}")
        torch.set_num_threads(cores)
    print("\n" + synthmotion_line(min(args.clips, 32)))


if __name__ == "__main__":
    main()
