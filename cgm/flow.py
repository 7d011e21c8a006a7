"""Run a trained CGM-Net on any video: flow colours, HR motion maps, next-frame prediction.

    python -m cgm flow VIDEO --out DIR [--size 128] [--compare tvl1|dis] [--max-frames N]
        [--experiment table1/cgm] [--profile laptop] [--checkpoint PATH] [--train]

The model is the committed laptop CGM-Net (`table1/cgm`, laptop profile) unless `--checkpoint` or
another experiment/profile is named; a run with no trained weights is trained only with `--train`
(recomputations never replace committed runs: they go to results/local-runs/). The video (anything
PyAV decodes) is read whole at its aspect ratio: resized so its long side is `--size` px, then each
side centre-cropped to a multiple of what the model needs (`frame_multiple`), with a printed note of
both. CGM-Net runs fully convolutionally on the non-square frames, in windows of clip_len frames that
share their end frames, so every consecutive pair of frames gets one HR motion map M_HR (map t moves
frame t to t+1). Written to DIR:
- `flow/NNNNNN.png`: the flow each map implies (`cgm.warp.motion_to_flow`) in Middlebury colours,
  labelled, with the colour key; one scale for the whole video (the 99th percentile of the
  magnitudes), so colours compare. With `--compare tvl1|dis`, OpenCV's flow of the same pair beside
  it, on the same scale;
- `flow.mp4`: each frame beside its flow colours (and the comparison) and the colour key;
- `motion_maps.npz`: `hr_maps` (N, k^², H, W) float16, `flow` (N, 2, H, W), `frames` (N + 1, H, W, 3)
  (and `compare_flow` with `--compare`);
- `prediction.png`: the last frame and the predicted frame after it (past the end of the video);
  `prediction_check.png`: frame N-2, frame N-1 predicted from the frames before it, the true frame
  N-1 and their ℓ1 error (`summary.json` has it beside the error of copying frame N-2).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from tqdm.auto import tqdm

from cgm import baselines, checkpoints
from cgm import experiments as ex
from cgm.experiments import runs  # runs.find_cached looked up on use (tests replace it)
from cgm.network import CGMConfig, CGMNet
from cgm.viz import flow_legend, flow_to_rgb, label_panel, panel_row
from cgm.warp import adaptive_warp, motion_to_flow

DEFAULT_EXPERIMENT, DEFAULT_PROFILE = "table1/cgm", "laptop"
DEFAULT_SIZE = 128  # long side (px) when the model was trained smaller: a frame people can see
COMPARE = {"tvl1": "tvl1", "dis": "dis_fast"}  # --compare name -> cgm.baselines flow method
# The HR maps of the whole video are kept (float16) for motion_maps.npz: k^2 channels per pixel
# (289 for the laptop model's 17x17 maps), so a long video is refused before the network runs.
MAPS_BUDGET_GIB = 4.0


def _cached_hash(experiment: str, profile: str) -> str:
    """The config hash `cgm.experiments.run` would cache `experiment` under (its chain's included)."""

    cfg = ex.resolve(experiment, profile)
    pre = _cached_hash(cfg.pretrain_from, profile) if cfg.pretrain_from else None
    return ex.config_hash(cfg, pre)


def load_model(
    *,
    experiment: str = DEFAULT_EXPERIMENT,
    profile: str = DEFAULT_PROFILE,
    checkpoint: str | None = None,
    train: bool = False,
):
    """The CGM-Net to run: a checkpoint's weights (with the model config it stores, else the
    experiment's), or the experiment's cached run; that run is trained first only with `train`
    (into results/local-runs/ where a committed run would be replaced), else a FileNotFoundError
    says how to get weights."""

    if checkpoint is None:
        if not train and runs.find_cached(_cached_hash(experiment, profile), need_checkpoint=True) is None:
            raise FileNotFoundError(
                f"no trained weights of {experiment} ({profile}) in results/runs/ or results/local-runs/; "
                f"add --train to train them now, or give --checkpoint PATH"
            )
        result = ex.run(experiment, profile, need_checkpoint=True, progress=True)
        print(
            f"model: {result.name} ({result.profile}, {result.source}), trained on {result.dataset} at "
            f"{result.config['model']['size']} px",
            flush=True,
        )
        return result.load_model()
    path = Path(checkpoint)
    if not path.is_file():
        raise FileNotFoundError(f"--checkpoint {path} does not exist")
    state = checkpoints.load(path)  # weights_only; a CheckpointError names what is wrong with the file
    config = state.get("model_config")
    cfg = CGMConfig.from_dict(config) if config else ex.resolve(experiment, profile).model
    model = CGMNet(cfg)
    loaded, skipped = ex.init_from_checkpoint(model, path)
    if not loaded:
        raise ValueError(
            f"no tensor of {path} fits the CGM-Net of {experiment} ({profile}); skipped e.g. {skipped[:3]}"
        )
    return model.eval()


def frame_multiple(cfg) -> int:
    """What H and W of a frame must be a multiple of for this model: the HR/LR scale r, and the
    encoder's spatial stride, so that its grid covers the frame as in training."""
    stride = cfg.encoder_spatial_stride or 16
    return math.lcm(int(cfg.scale), int(stride))


def check_options(
    *, size: int | None = None, max_frames: int | None = None, compare: str | None = None
) -> None:
    """A ValueError naming the option when one is out of range (before any work)."""
    if size is not None and (not isinstance(size, int) or isinstance(size, bool) or size < 16):
        raise ValueError(f"--size must be an integer >= 16 (the long side in px), got {size!r}")
    if max_frames is not None and (
        not isinstance(max_frames, int) or isinstance(max_frames, bool) or max_frames < 2
    ):
        raise ValueError(
            f"--max-frames must be an integer >= 2 (motion needs two frames), got {max_frames!r}"
        )
    if compare is not None and compare not in COMPARE:
        raise ValueError(f"--compare must be one of {', '.join(COMPARE)}, got {compare!r}")


def frame_geometry(width: int, height: int, size: int, multiple: int = 1) -> tuple[int, int, int, int, str]:
    """(resized w, h, cropped w, h, note) for a `width` x `height` video whose long side becomes
    `size`, each side then centre-cropped to a multiple of `multiple`; the note says what changed."""
    scale = size / max(width, height)
    rw, rh = max(1, round(width * scale)), max(1, round(height * scale))
    cw, ch = rw - rw % multiple, rh - rh % multiple
    if min(cw, ch) < multiple:
        raise ValueError(
            f"the video is {width}x{height}: at --size {size} its short side is {min(rw, rh)} px, below the "
            f"model's {multiple} px; give a larger --size"
        )
    note = f"{width}x{height} -> {rw}x{rh} (long side {size} px)"
    if (cw, ch) != (rw, rh):
        note += f", centre-cropped to {cw}x{ch} (the model needs multiples of {multiple} px)"
    return rw, rh, cw, ch, note


def read_frames(
    video: str | Path, size: int, *, max_frames: int | None = None, multiple: int = 1
) -> tuple[np.ndarray, float, str]:
    """Frames of `video` at its aspect ratio, long side resized to `size`, each side centre-cropped
    to a multiple of `multiple` (`frame_geometry`): uint8 (N, H, W, 3), the frame rate and a note of
    the resize and crop."""
    import av  # PyAV loads on first decode: importing cgm for embedded data never pays it

    check_options(size=size, max_frames=max_frames)
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
        rw, rh, cw, ch, note = frame_geometry(w, h, size, multiple)
        x0, y0 = (rw - cw) // 2, (rh - ch) // 2
        frames = []
        for frame in container.decode(stream):
            image = frame.to_ndarray(width=rw, height=rh, format="rgb24", interpolation="AREA")
            frames.append(image[y0 : y0 + ch, x0 : x0 + cw])
            if max_frames is not None and len(frames) >= max_frames:
                break
    if len(frames) < 2:
        raise ValueError(f"{path} decoded to {len(frames)} frame(s); motion needs at least 2")
    return np.stack(frames), fps, note


def _to_clip(frames: np.ndarray) -> torch.Tensor:
    """uint8 (T, H, W, 3) -> float (1, 3, T, H, W) in [-1, 1]."""
    return torch.from_numpy(frames).permute(3, 0, 1, 2)[None].float() / 127.5 - 1


def _window(frames: np.ndarray, start: int, t: int) -> np.ndarray:
    """t frames from `start`; a video shorter than t repeats its last frame."""
    window = frames[start : start + t]
    if len(window) < t:
        window = np.concatenate([window, np.repeat(window[-1:], t - len(window), axis=0)])
    return window


def check_maps_memory(
    num_frames: int, h: int, w: int, k_hr: int, budget_gib: float = MAPS_BUDGET_GIB
) -> None:
    """Refuse a video whose HR maps (float16, (N - 1) x k^2 x H x W) exceed `budget_gib`, naming the
    --max-frames that fits."""
    per_pair = k_hr * k_hr * h * w * 2  # bytes of one pair's float16 maps
    need = (num_frames - 1) * per_pair / 2**30
    if need > budget_gib:
        fits = int(budget_gib * 2**30 // per_pair) + 1
        raise ValueError(
            f"{num_frames} frames of {w}x{h} px give {num_frames - 1} pairs of {k_hr}x{k_hr} HR maps: "
            f"{need:.1f} GiB in float16, over the {budget_gib:g} GiB kept for motion_maps.npz; "
            f"pass --max-frames {fits} (or less), or a smaller --size"
        )


@torch.no_grad()
def motion_maps(model, frames: np.ndarray, *, progress: bool = True, dtype=torch.float32) -> torch.Tensor:
    """HR motion maps (N - 1, k^², H, W) for every consecutive pair of `frames` (N, H, W, 3), kept
    in `dtype` (float16 halves the memory of a long video's maps).

    A window of the model's clip_len frames s..s+T-1 gives the maps of pairs s..s+T-1 (its last map
    predicts frame s+T from the frames before it). Windows follow each other; the last one is
    moved back to end at the last frame, and pairs already covered are not used twice."""

    t, pairs = model.cfg.clip_len, len(frames) - 1
    out, covered = [], 0
    with tqdm(total=pairs, desc="CGM-Net", unit="pair", disable=not progress) as bar:
        while covered < pairs:
            start = min(covered, max(len(frames) - t, 0))
            maps = model(_to_clip(_window(frames, start, t))).hr_maps[0]  # (T, k^2, H, W)
            new = maps[covered - start : min(t, pairs - start)]
            out.append(new.to(dtype))
            covered += len(new)
            bar.update(len(new))
    return torch.cat(out)


@torch.no_grad()
def predict_next(model, frames: np.ndarray) -> torch.Tensor:
    """The frame after the last of `frames` (3, H, W) in [-1, 1]: the last map of the window that
    ends at the last frame warps that frame (the model sees no frame after it)."""

    t = model.cfg.clip_len
    window = _window(frames, max(len(frames) - t, 0), t)
    maps = model(_to_clip(window)).hr_maps[0]
    last = min(len(frames), t) - 1  # the map of the window's last real frame
    frame = _to_clip(window[last : last + 1])[0, :, 0]
    return adaptive_warp(frame[None], maps[last : last + 1], padding=model.cfg.padding)[0]


def _write_mp4(path: Path, frames: list[np.ndarray], fps: float) -> str:
    """Write RGB frames (H, W, 3; even sizes) as an MP4 with PyAV; returns the codec used."""
    import av  # PyAV loads on first decode: importing cgm for embedded data never pays it

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


def _pad_even(image: np.ndarray) -> np.ndarray:
    """Pad (H, W, 3) uint8 with white to even H and W (yuv420p needs them)."""
    h, w = image.shape[:2]
    return np.pad(image, ((0, h % 2), (0, w % 2), (0, 0)), constant_values=255)


def _agreement(flow: torch.Tensor, other: torch.Tensor) -> dict[str, float]:
    """How CGM-Net's flow (N, 2, H, W) compares with another method's: mean magnitudes, the mean
    end-point difference, and the correlation of each component over all pixels."""
    corr = [
        float(np.corrcoef(flow[:, c].flatten().double(), other[:, c].flatten().double())[0, 1])
        for c in (0, 1)
    ]
    return {
        "cgm_mean_px": float(flow.norm(dim=1).mean()),
        "compare_mean_px": float(other.norm(dim=1).mean()),
        "mean_difference_px": float((flow - other).norm(dim=1).mean()),
        "corr_x": corr[0],
        "corr_y": corr[1],
    }


def run_flow(
    video: str | Path,
    out: str | Path,
    *,
    model=None,
    experiment: str = DEFAULT_EXPERIMENT,
    profile: str = DEFAULT_PROFILE,
    checkpoint: str | None = None,
    train: bool = False,
    size: int | None = None,
    max_frames: int | None = None,
    compare: str | None = None,
    progress: bool = True,
) -> dict:
    """Everything `python -m cgm flow` writes (module docstring); returns a summary dict. `size`:
    the long side in px (default: the model's training size, at least DEFAULT_SIZE)."""

    check_options(size=size, max_frames=max_frames, compare=compare)  # before any model is loaded
    if not Path(video).is_file():
        raise FileNotFoundError(f"video {video} does not exist")
    if model is None:
        model = load_model(experiment=experiment, profile=profile, checkpoint=checkpoint, train=train)
    model.eval()
    size = int(size or max(model.cfg.size, DEFAULT_SIZE))
    frames, fps, note = read_frames(video, size, max_frames=max_frames, multiple=frame_multiple(model.cfg))
    h, w = frames.shape[1:3]
    print(f"frames: {note}", flush=True)
    check_maps_memory(len(frames), h, w, model.cfg.k_hr)
    maps = motion_maps(model, frames, progress=progress, dtype=torch.float16)  # (N-1, K*K, H, W)
    flow = torch.cat([motion_to_flow(m.float()) for m in maps.split(16)])  # (N-1, 2, H, W)
    clip = torch.from_numpy(frames).permute(0, 3, 1, 2).float() / 127.5 - 1  # (N, 3, H, W)
    other, label = None, None
    if compare is not None:
        method = COMPARE[compare]
        label = baselines.FLOW_METHODS[method].label
        other = torch.stack(
            [
                baselines.flow_between(method, clip[i], clip[i + 1])
                for i in tqdm(range(len(flow)), desc=label, unit="pair", disable=not progress)
            ]
        )  # (N-1, 2, H, W)
    out = Path(out)
    (out / "flow").mkdir(parents=True, exist_ok=True)
    mags = torch.cat([f.norm(dim=1).flatten() for f in (flow, other) if f is not None])
    max_mag = max(float(torch.quantile(mags[:: max(1, mags.numel() // 1_000_000)], 0.99)), 1e-3)
    legend = flow_legend(min(max(h, 48), 128), max_mag)
    video_frames = []
    for i in tqdm(range(len(flow)), desc="flow colours", unit="frame", disable=not progress):
        panels = [label_panel(flow_to_rgb(flow[i], max_mag=max_mag), "CGM-Net flow")]
        if other is not None:
            panels.append(label_panel(flow_to_rgb(other[i], max_mag=max_mag), f"{label} flow"))
        Image.fromarray(panel_row([*panels, legend])).save(out / "flow" / f"{i:06d}.png")
        video_frames.append(_pad_even(panel_row([label_panel(frames[i], f"frame {i}"), *panels, legend])))
    codec = _write_mp4(out / "flow.mp4", video_frames, fps)
    arrays = {"hr_maps": maps.half().numpy(), "flow": flow.numpy(), "frames": frames, "max_mag": max_mag}
    if other is not None:
        arrays["compare_flow"] = other.numpy()
    np.savez_compressed(out / "motion_maps.npz", **arrays)
    # Next-frame prediction, checked where the truth is known (frame N-1 from frames ..N-2), then
    # past the end of the video (frame N from frames ..N-1).
    to_u8 = lambda x: ((x.clamp(-1, 1) + 1) * 127.5).round().byte().permute(1, 2, 0).numpy()  # noqa: E731
    n = len(frames)
    check = predict_next(model, frames[:-1])
    prev, truth = clip[-2], clip[-1]
    err = (check - truth).abs().mean(0)
    err_u8 = np.repeat((255 * err / max(float(err.max()), 1e-6)).byte().numpy()[..., None], 3, axis=2)
    check_panels = [
        label_panel(to_u8(prev), f"frame {n - 2}"),
        label_panel(to_u8(check), f"predicted {n - 1}"),
        label_panel(to_u8(truth), f"true {n - 1}"),
        label_panel(err_u8, f"|error| (max {float(err.max()):.2f})"),
    ]
    Image.fromarray(panel_row(check_panels)).save(out / "prediction_check.png")
    future = predict_next(model, frames)
    Image.fromarray(
        panel_row(
            [label_panel(to_u8(truth), f"last frame {n - 1}"), label_panel(to_u8(future), f"predicted {n}")]
        )
    ).save(out / "prediction.png")
    summary = {
        "video": str(video),
        "frames": int(n),
        "height": int(h),
        "width": int(w),
        "note": note,
        "fps": fps,
        "maps": list(maps.shape),
        "flow_max_px_99": max_mag,
        "codec": codec,
        "check_prediction_l1": float(err.mean()),
        "check_copy_l1": float((prev - truth).abs().mean()),
        "out": str(out),
    }
    if other is not None:
        summary["compare"] = {"method": compare, **_agreement(flow, other)}
    (out / "summary.json").write_text(json.dumps(summary, indent=1))
    return summary
