"""Figures: optical-flow colours (Middlebury / Baker et al. colour wheel) and clip grids."""

from __future__ import annotations

import numpy as np
import torch


def _colour_wheel() -> np.ndarray:
    """The 55-colour Middlebury wheel (Baker et al., IJCV 2011), (55, 3) float in [0, 255]."""
    segments = [(15, (255, 0, 0), (255, 255, 0)),    # red -> yellow
                (6, (255, 255, 0), (0, 255, 0)),     # yellow -> green
                (4, (0, 255, 0), (0, 255, 255)),     # green -> cyan
                (11, (0, 255, 255), (0, 0, 255)),    # cyan -> blue
                (13, (0, 0, 255), (255, 0, 255)),    # blue -> magenta
                (6, (255, 0, 255), (255, 0, 0))]     # magenta -> red
    rows = []
    for n, start, end in segments:
        w = np.arange(n)[:, None] / n
        rows.append((1 - w) * np.asarray(start, float) + w * np.asarray(end, float))
    return np.concatenate(rows)


COLOUR_WHEEL = _colour_wheel()


def flow_to_rgb(flow, max_mag: float | None = None) -> np.ndarray:
    """Colour-code a flow field (2, H, W) (channel 0 = x, y down) as uint8 (H, W, 3).

    Hue is the direction, saturation the magnitude relative to `max_mag` (default: the largest
    magnitude in the field); zero flow is white, magnitudes beyond `max_mag` are darkened.
    Middlebury colours: +x (right) is red, -y (up) is yellow-green... as in the flow literature.
    """
    f = flow.detach().cpu().numpy() if isinstance(flow, torch.Tensor) else np.asarray(flow)
    if f.ndim != 3 or f.shape[0] != 2:
        raise ValueError(f"flow_to_rgb expects a (2, H, W) flow field, got shape {f.shape}")
    if max_mag is not None and not max_mag > 0:
        raise ValueError(f"flow_to_rgb: max_mag must be > 0, got {max_mag}")
    u, v = np.nan_to_num(f[0].astype(np.float64)), np.nan_to_num(f[1].astype(np.float64))
    mag = np.sqrt(u ** 2 + v ** 2)
    scale = float(mag.max()) if max_mag is None else float(max_mag)
    rad = mag / max(scale, 1e-9)
    ncols = len(COLOUR_WHEEL)
    angle = np.arctan2(-v, -u) / np.pi             # (-1, 1]: +x maps to the wheel's end (red)
    fk = (angle + 1) / 2 * (ncols - 1)
    k0 = np.floor(fk).astype(int)
    k1 = (k0 + 1) % ncols
    w = (fk - k0)[..., None]
    col = ((1 - w) * COLOUR_WHEEL[k0] + w * COLOUR_WHEEL[k1]) / 255.0  # (H, W, 3)
    r = rad[..., None]
    col = np.where(r <= 1, 1 - r * (1 - col), col * 0.75)  # desaturate small motions to white
    return np.clip(np.floor(255 * col), 0, 255).astype(np.uint8)


def clip_to_images(clip) -> np.ndarray:
    """A clip (3, T, H, W) in [-1, 1] as uint8 frames (T, H, W, 3)."""
    c = clip.detach().cpu().numpy() if isinstance(clip, torch.Tensor) else np.asarray(clip)
    if c.ndim != 4 or c.shape[0] != 3:
        raise ValueError(f"expected a clip (3, T, H, W), got shape {c.shape}")
    return np.clip((c.transpose(1, 2, 3, 0) + 1) * 127.5 + 0.5, 0, 255).astype(np.uint8)


def show_clip(clip, flow=None, *, max_frames: int = 8, max_mag: float | None = None,
              title: str | None = None, axes=None):
    """Plot frames of a clip (3, T, H, W) in a row, with its flow (T-1, 2, H, W) below if given.

    flow[t] is drawn under frame t+1 (it lives on that frame's grid). All flow panels share one
    colour scale (`max_mag`, default the clip's largest magnitude). Returns the matplotlib axes.
    """
    import matplotlib.pyplot as plt

    frames = clip_to_images(clip)
    t = min(len(frames), max_frames)
    rows = 1 if flow is None else 2
    if axes is None:
        _, axes = plt.subplots(rows, t, figsize=(1.4 * t, 1.5 * rows), squeeze=False)
    axes = np.asarray(axes).reshape(rows, t)
    if flow is not None:
        flow = flow.detach().cpu().numpy() if isinstance(flow, torch.Tensor) else np.asarray(flow)
        if max_mag is None:
            max_mag = max(float(np.sqrt((flow[: t - 1] ** 2).sum(1)).max()), 1e-3)
    for i in range(t):
        axes[0, i].imshow(frames[i])
        axes[0, i].set_title(f"t={i}", fontsize=7)
        if flow is not None:
            if i == 0:
                axes[1, i].set_facecolor("white")
            else:
                axes[1, i].imshow(flow_to_rgb(flow[i - 1], max_mag=max_mag))
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
    if title:
        axes[0, 0].set_ylabel(title, fontsize=7, rotation=0, ha="right", va="center")
    return axes
