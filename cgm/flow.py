"""Run a trained CGM-Net on any video: flow colours, HR motion maps, next-frame prediction.

    python -m cgm flow VIDEO --out DIR [--experiment table1/cgm] [--profile smoke] [--checkpoint PATH]

The video (anything PyAV decodes) is resized like the training clips (short side to the model's
input size, centre crop) and cut into windows of clip_len + 1 frames that share their end frames,
so every consecutive pair of frames gets one HR motion map M_HR (map t moves frame t to t+1).
Written to DIR:
- `flow/NNNNNN.png`: the flow each map implies (`cgm.warp.motion_to_flow`) in Middlebury colours,
  one scale for the whole video (the 99th percentile of the magnitudes), so colours compare;
- `flow.mp4`: each frame beside its flow colours;
- `motion_maps.npz`: `hr_maps` (N, k^², H, W) float16, `flow` (N, 2, H, W), `frames` (N + 1, H, W, 3);
- `prediction.png`: the last frame and the predicted frame after it (past the end of the video);
  `prediction_check.png`: frame N-2, frame N-1 predicted from the frames before it, the true frame
  N-1 and their ℓ1 error (`summary.json` has it beside the error of copying frame N-2).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch


def load_model(*, experiment: str = "table1/cgm", profile: str = "smoke", checkpoint: str | None = None):
    """The CGM-Net to run: a checkpoint's weights (with the model config it stores, else the
    experiment's), or the experiment's cached run (trained first if it kept no weights)."""
    from cgm import experiments as ex
    from cgm.network import CGMConfig, CGMNet

    if checkpoint is None:
        return ex.run(experiment, profile, need_checkpoint=True, progress=True).load_model()
    path = Path(checkpoint)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} does not exist")
    state = torch.load(path, map_location="cpu", weights_only=True)
    config = state.get("model_config") if isinstance(state, dict) else None
    cfg = CGMConfig.from_dict(config) if config else ex.resolve(experiment, profile).model
    model = CGMNet(cfg)
    loaded, skipped = ex.init_from_checkpoint(model, path)
    if not loaded:
        raise ValueError(
            f"no tensor of {path} fits the CGM-Net of {experiment} ({profile}); skipped e.g. {skipped[:3]}"
        )
    return model.eval()


def read_frames(video: str | Path, size: int, *, max_frames: int | None = None) -> tuple[np.ndarray, float]:
    """Frames of `video`, short side resized to `size` and centre-cropped: uint8 (N, size, size, 3),
    and the frame rate."""
    import av

    path = Path(video)
    if not path.is_file():
        raise FileNotFoundError(f"video {path} does not exist")
    try:
        container = av.open(str(path))
    except av.error.FFmpegError as err:
        raise ValueError(f"PyAV cannot open {path}: {err}") from None
    with container:
        if not container.streams.video:
            raise ValueError(f"{path} has no video stream")
        stream = container.streams.video[0]
        fps = float(stream.average_rate or 25)
        w, h = stream.codec_context.width, stream.codec_context.height
        scale = size / min(w, h)
        rw, rh = max(size, round(w * scale)), max(size, round(h * scale))
        x0, y0 = (rw - size) // 2, (rh - size) // 2
        frames = []
        for frame in container.decode(stream):
            frames.append(
                frame.to_ndarray(width=rw, height=rh, format="rgb24")[y0 : y0 + size, x0 : x0 + size]
            )
            if max_frames is not None and len(frames) >= max_frames:
                break
    if len(frames) < 2:
        raise ValueError(f"{path} decoded to {len(frames)} frame(s); motion needs at least 2")
    return np.stack(frames), fps


def _to_clip(frames: np.ndarray) -> torch.Tensor:
    """uint8 (T, H, W, 3) -> float (1, 3, T, H, W) in [-1, 1]."""
    return torch.from_numpy(frames).permute(3, 0, 1, 2)[None].float() / 127.5 - 1


def _window(frames: np.ndarray, start: int, t: int) -> np.ndarray:
    """t frames from `start`; a video shorter than t repeats its last frame."""
    window = frames[start : start + t]
    if len(window) < t:
        window = np.concatenate([window, np.repeat(window[-1:], t - len(window), axis=0)])
    return window


@torch.no_grad()
def motion_maps(model, frames: np.ndarray, *, progress: bool = True) -> torch.Tensor:
    """HR motion maps (N - 1, k^², H, W) for every consecutive pair of `frames` (N, H, W, 3).

    A window of the model's clip_len frames s..s+T-1 gives the maps of pairs s..s+T-1 (its last map
    predicts frame s+T from the frames before it). Windows follow each other; the last one is
    moved back to end at the last frame, and pairs already covered are not used twice."""
    from tqdm.auto import tqdm

    t, pairs = model.cfg.clip_len, len(frames) - 1
    out, covered = [], 0
    with tqdm(total=pairs, desc="CGM-Net", unit="pair", disable=not progress) as bar:
        while covered < pairs:
            start = min(covered, max(len(frames) - t, 0))
            maps = model(_to_clip(_window(frames, start, t))).hr_maps[0]  # (T, k^2, H, W)
            new = maps[covered - start : min(t, pairs - start)]
            out.append(new)
            covered += len(new)
            bar.update(len(new))
    return torch.cat(out)


@torch.no_grad()
def predict_next(model, frames: np.ndarray) -> torch.Tensor:
    """The frame after the last of `frames` (3, H, W) in [-1, 1]: the last map of the window that
    ends at the last frame warps that frame (the model sees no frame after it)."""
    from cgm.warp import adaptive_warp

    t = model.cfg.clip_len
    window = _window(frames, max(len(frames) - t, 0), t)
    maps = model(_to_clip(window)).hr_maps[0]
    last = min(len(frames), t) - 1  # the map of the window's last real frame
    frame = _to_clip(window[last : last + 1])[0, :, 0]
    return adaptive_warp(frame[None], maps[last : last + 1], padding=model.cfg.padding)[0]


def _write_mp4(path: Path, frames: list[np.ndarray], fps: float) -> str:
    """Write RGB frames (H, W, 3; even sizes) as an MP4 with PyAV; returns the codec used."""
    import av

    h, w = frames[0].shape[:2]
    with av.open(str(path), "w") as container:
        for codec in ("libx264", "mpeg4"):  # H.264 where the bundled FFmpeg has it
            try:
                stream = container.add_stream(codec, rate=max(1, round(fps)))
                break
            except (ValueError, av.error.FFmpegError):
                continue
        stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
        for image in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return stream.codec_context.name


def run_flow(
    video: str | Path,
    out: str | Path,
    *,
    model=None,
    experiment: str = "table1/cgm",
    profile: str = "smoke",
    checkpoint: str | None = None,
    size: int | None = None,
    max_frames: int | None = None,
    progress: bool = True,
) -> dict:
    """Everything `python -m cgm flow` writes (module docstring); returns a summary dict."""
    from PIL import Image

    from cgm.viz import flow_to_rgb
    from cgm.warp import motion_to_flow

    model = (
        model
        if model is not None
        else load_model(experiment=experiment, profile=profile, checkpoint=checkpoint)
    )
    model.eval()
    size = int(size or model.cfg.size)
    frames, fps = read_frames(video, size, max_frames=max_frames)
    maps = motion_maps(model, frames, progress=progress)  # (N-1, K*K, H, W)
    flow = motion_to_flow(maps.float())  # (N-1, 2, H, W)
    out = Path(out)
    (out / "flow").mkdir(parents=True, exist_ok=True)
    mags = flow.norm(dim=1).flatten()
    max_mag = max(float(torch.quantile(mags[:: max(1, mags.numel() // 1_000_000)], 0.99)), 1e-3)
    side_by_side = []
    from tqdm.auto import tqdm

    for i in tqdm(range(len(flow)), desc="flow colours", unit="frame", disable=not progress):
        colours = flow_to_rgb(flow[i], max_mag=max_mag)
        Image.fromarray(colours).save(out / "flow" / f"{i:06d}.png")
        side_by_side.append(np.concatenate([frames[i], colours], axis=1))
    even = [im[: im.shape[0] // 2 * 2, : im.shape[1] // 2 * 2] for im in side_by_side]
    codec = _write_mp4(out / "flow.mp4", even, fps)
    np.savez_compressed(
        out / "motion_maps.npz",
        hr_maps=maps.half().numpy(),
        flow=flow.numpy(),
        frames=frames,
        max_mag=max_mag,
    )
    # Next-frame prediction, checked where the truth is known (frame N-1 from frames ..N-2), then
    # past the end of the video (frame N from frames ..N-1).
    to_u8 = lambda x: ((x.clamp(-1, 1) + 1) * 127.5).round().byte().permute(1, 2, 0).numpy()
    check = predict_next(model, frames[:-1])
    prev, truth = (_to_clip(frames[[i]])[0, :, 0] for i in (-2, -1))
    err = (check - truth).abs().mean(0)
    err_u8 = np.repeat((255 * err / max(float(err.max()), 1e-6)).byte().numpy()[..., None], 3, axis=2)
    Image.fromarray(np.concatenate([to_u8(prev), to_u8(check), to_u8(truth), err_u8], axis=1)).save(
        out / "prediction_check.png"
    )
    future = predict_next(model, frames)
    Image.fromarray(np.concatenate([to_u8(truth), to_u8(future)], axis=1)).save(out / "prediction.png")
    summary = {
        "video": str(video),
        "frames": int(len(frames)),
        "size": size,
        "fps": fps,
        "maps": list(maps.shape),
        "flow_max_px_99": max_mag,
        "codec": codec,
        "check_prediction_l1": float(err.mean()),
        "check_copy_l1": float((prev - truth).abs().mean()),
        "out": str(out),
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=1))
    return summary
