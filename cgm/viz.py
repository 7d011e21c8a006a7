"""Figures: optical-flow colours (Middlebury / Baker et al. colour wheel) and clip grids; motion-map
figures (Fig. 4), prediction panels with error maps (Fig. 5), and the ipywidgets `MotionExplorer`."""

from __future__ import annotations

import dataclasses
import io

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont

from cgm.warp import adaptive_warp, motion_to_flow


def _colour_wheel() -> np.ndarray:
    """The 55-colour Middlebury wheel (Baker et al., IJCV 2011), (55, 3) float in [0, 255]."""
    segments = [
        (15, (255, 0, 0), (255, 255, 0)),  # red -> yellow
        (6, (255, 255, 0), (0, 255, 0)),  # yellow -> green
        (4, (0, 255, 0), (0, 255, 255)),  # green -> cyan
        (11, (0, 255, 255), (0, 0, 255)),  # cyan -> blue
        (13, (0, 0, 255), (255, 0, 255)),  # blue -> magenta
        (6, (255, 0, 255), (255, 0, 0)),
    ]  # magenta -> red
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
    Middlebury colours (y down): right is red, down orange-yellow, left cyan, up blue-violet.
    """
    f = flow.detach().cpu().numpy() if isinstance(flow, torch.Tensor) else np.asarray(flow)
    if f.ndim != 3 or f.shape[0] != 2:
        raise ValueError(f"flow_to_rgb expects a (2, H, W) flow field, got shape {f.shape}")
    if max_mag is not None and not max_mag > 0:
        raise ValueError(f"flow_to_rgb: max_mag must be > 0, got {max_mag}")
    u, v = np.nan_to_num(f[0].astype(np.float64)), np.nan_to_num(f[1].astype(np.float64))
    mag = np.sqrt(u**2 + v**2)
    scale = float(mag.max()) if max_mag is None else float(max_mag)
    rad = mag / max(scale, 1e-9)
    ncols = len(COLOUR_WHEEL)
    angle = np.arctan2(-v, -u) / np.pi  # (-1, 1]: +x maps to the wheel's end (red)
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


def show_clip(
    clip, flow=None, *, max_frames: int = 8, max_mag: float | None = None, title: str | None = None, axes=None
):
    """Plot frames of a clip (3, T, H, W) in a row, with its flow (T-1, 2, H, W) below if given.

    flow[t] is drawn under frame t+1 (it lives on that frame's grid). All flow panels share one
    colour scale (`max_mag`, default the clip's largest magnitude). Returns the matplotlib axes.
    """
    import matplotlib.pyplot as plt  # heavy: only figures need it, not cgm flow's colour panels

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


# ----------------------------------------------------------------------------- motion maps (Fig. 4)


def _np(x) -> np.ndarray:
    return x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)


def frame_to_image(frame) -> np.ndarray:
    """A frame (3, H, W) in [-1, 1] as uint8 (H, W, 3)."""
    f = _np(frame)
    if f.ndim != 3 or f.shape[0] != 3:
        raise ValueError(f"expected a frame (3, H, W), got shape {f.shape}")
    return clip_to_images(f[:, None])[0]


def filter_at(maps, y: int, x: int) -> np.ndarray:
    """The K x K filter of motion maps (K*K, H, W) at pixel (y, x).

    Row dy + r, column dx + r holds tap (dy, dx) (Eq. 1's tap order), so a filter drawn as an
    image points where the content moves: weight right of the centre = motion to the right.
    """
    m = _np(maps)
    k = int(round(np.sqrt(m.shape[0]))) if m.ndim == 3 else 0
    if m.ndim != 3 or k * k != m.shape[0] or k % 2 != 1:
        raise ValueError(f"expected motion maps (K*K, H, W) with K odd, got shape {m.shape}")
    if not (0 <= y < m.shape[1] and 0 <= x < m.shape[2]):
        raise ValueError(f"pixel (y={y}, x={x}) outside the {m.shape[1]}x{m.shape[2]} map")
    return m[:, y, x].reshape(k, k)


def draw_filter(ax, kernel: np.ndarray, *, title: str | None = None, vmax: float | None = None) -> None:
    """A K x K filter as an image, its centre tap outlined (zero motion)."""
    k = kernel.shape[0]
    vmax = float(np.abs(kernel).max()) if vmax is None else vmax
    ax.imshow(kernel, cmap="magma", vmin=min(0.0, float(kernel.min())), vmax=max(vmax, 1e-6))
    ax.add_patch(_square(k // 2, k // 2))
    ax.set_xticks([])
    ax.set_yticks([])
    if title:
        ax.set_title(title, fontsize=7)


def _square(row: int, col: int):
    from matplotlib.patches import Rectangle  # heavy: only figures need it

    return Rectangle((col - 0.5, row - 0.5), 1, 1, fill=False, edgecolor="cyan", linewidth=0.8)


def _mark(ax, pixels, colours) -> None:
    for (y, x), c in zip(pixels, colours):
        ax.plot([x], [y], marker="+", color=c, markersize=8, markeredgewidth=1.5)


PIXEL_COLOURS = ("#00e5ff", "#ffea00", "#ff1744", "#76ff03", "#d500f9", "#ff9100")


def plot_motion_maps(frames, hr_maps, pixels, *, titles=None, max_mag: float | None = None):
    """Fig. 4: one row per clip: the frame | flow colours of `motion_to_flow` | filters at pixels.

    `frames`: list of (3, H, W); `hr_maps`: list of (K*K, H, W) (the map that moves this frame);
    `pixels`: list (one per row) of (y, x) pairs. Flow colours share one scale (`max_mag`, default
    the largest magnitude over all rows). Returns the matplotlib figure.
    """
    import matplotlib.pyplot as plt  # heavy: only figures need it, not cgm flow's colour panels

    if not (len(frames) == len(hr_maps) == len(pixels)) or not frames:
        raise ValueError(
            f"need as many frames, maps and pixel lists (>= 1), got "
            f"{len(frames)}, {len(hr_maps)}, {len(pixels)}"
        )
    flows = [motion_to_flow(torch.as_tensor(_np(m))[None])[0] for m in hr_maps]  # (2, H, W) each
    if max_mag is None:
        max_mag = max(max(float(f.norm(dim=0).max()) for f in flows), 1e-3)
    cols = 2 + max(len(p) for p in pixels)
    fig, axes = plt.subplots(len(frames), cols, figsize=(1.7 * cols, 1.8 * len(frames)), squeeze=False)
    for row, (frame, maps, flow, pts) in enumerate(zip(frames, hr_maps, flows, pixels)):
        colours = PIXEL_COLOURS[: len(pts)]
        axes[row, 0].imshow(frame_to_image(frame))
        axes[row, 1].imshow(flow_to_rgb(flow, max_mag=max_mag))
        for ax in axes[row, :2]:
            _mark(ax, pts, colours)
        for j, (y, x) in enumerate(pts):
            draw_filter(axes[row, 2 + j], filter_at(maps, y, x), title=f"(y={y}, x={x})")
            for side in axes[row, 2 + j].spines.values():
                side.set_edgecolor(colours[j])
                side.set_linewidth(2)
        for ax in axes[row, 2 + len(pts) :]:
            ax.axis("off")
        axes[row, 0].set_ylabel(titles[row] if titles else f"clip {row}", fontsize=7)
    axes[0, 0].set_title("frame", fontsize=8)
    axes[0, 1].set_title(f"motion_to_flow (max {max_mag:.2g} px)", fontsize=8)
    for ax in axes[:, :2].flat:
        ax.set_xticks([])
        ax.set_yticks([])
    fig.tight_layout()
    return fig


def plot_flow_comparison(frames, flows: dict, *, valid=None, titles=None, max_mag: float | None = None):
    """One row per clip: the frame | each method's flow in the same colours and scale.

    `frames`: list of (3, H, W); `flows`: {method label: list of (2, H, W)}, a "ground truth" entry
    (if any) drawn first after the frame and every other method's panel titled with its EPE
    against it on the `valid` (list of (H, W) bool) pixels. Returns the matplotlib figure."""
    import matplotlib.pyplot as plt

    if not frames or any(len(f) != len(frames) for f in flows.values()):
        raise ValueError(f"need one flow per frame for every method, got {len(frames)} frames")
    truth = flows.get("ground truth")
    if max_mag is None:
        max_mag = max(max(float(torch.as_tensor(f).norm(dim=0).max()) for f in fs) for fs in flows.values())
        max_mag = max(max_mag, 1e-3)
    cols = 1 + len(flows)
    fig, axes = plt.subplots(len(frames), cols, figsize=(1.7 * cols, 1.8 * len(frames)), squeeze=False)
    for row, frame in enumerate(frames):
        axes[row, 0].imshow(frame_to_image(frame))
        axes[row, 0].set_ylabel(titles[row] if titles else f"clip {row}", fontsize=7)
        for col, (label, fs) in enumerate(flows.items(), start=1):
            flow = torch.as_tensor(fs[row]).float()
            axes[row, col].imshow(flow_to_rgb(flow, max_mag=max_mag))
            text = label if row == 0 else ""
            if truth is not None and label != "ground truth":
                err = (flow - torch.as_tensor(truth[row]).float()).norm(dim=0)
                mask = (
                    torch.ones_like(err, dtype=torch.bool) if valid is None else torch.as_tensor(valid[row])
                )
                text = (text + "\n" if text else "") + f"EPE {err[mask].mean():.2f} px"
            axes[row, col].set_title(text, fontsize=7)
    axes[0, 0].set_title("frame", fontsize=7)
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
    fig.tight_layout()
    return fig


# ----------------------------------------------------------------------------- predictions (Fig. 5)


def error_map(pred, target) -> np.ndarray:
    """Per-pixel ℓ1 error |pred - target| averaged over channels, (H, W); frames in [-1, 1]."""
    p, t = _np(pred), _np(target)
    if p.shape != t.shape or p.ndim != 3:
        raise ValueError(f"expected pred and target (3, H, W) of one shape, got {p.shape} and {t.shape}")
    return np.abs(p - t).mean(0)


def plot_predictions(target, predictions: dict, *, last=None, vmax: float | None = None, axes=None):
    """Fig. 5 for one clip: row 1 the frames (last input, truth, each method's prediction),
    row 2 their ℓ1 error maps against the truth on one colour scale (`vmax`, default the largest).

    `target`, `last`, each prediction: (3, H, W) in [-1, 1]. Returns the axes (2, columns).
    """
    import matplotlib.pyplot as plt  # heavy: only figures need it, not cgm flow's colour panels

    if not predictions:
        raise ValueError("plot_predictions needs at least one prediction")
    panels = ([("last input", last)] if last is not None else []) + [("truth", target)]
    panels += list(predictions.items())
    errors = {name: error_map(p, target) for name, p in panels if name != "truth"}
    vmax = max(max(float(e.max()) for e in errors.values()), 1e-6) if vmax is None else vmax
    if axes is None:
        _, axes = plt.subplots(2, len(panels), figsize=(1.8 * len(panels), 3.8), squeeze=False)
    axes = np.asarray(axes).reshape(2, len(panels))
    for j, (name, frame) in enumerate(panels):
        axes[0, j].imshow(frame_to_image(frame))
        axes[0, j].set_title(name, fontsize=7)
        if name in errors:
            axes[1, j].imshow(errors[name], cmap="inferno", vmin=0, vmax=vmax)
            axes[1, j].set_title(f"ℓ1 {errors[name].mean():.4f}", fontsize=7)
        else:
            axes[1, j].axis("off")
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
    return axes


# ----------------------------------------------------------------------------- explorer


@dataclasses.dataclass(frozen=True)
class MotionSample:
    """What the explorer shows of one clip: frames (3, T+1, H, W), hr_maps (T, K^*K^, H, W),
    lr_maps (T, k*k, H/r, W/r); map t moves frame t to t+1 (t = T-1 predicts the last frame)."""

    clip: torch.Tensor
    hr_maps: torch.Tensor
    lr_maps: torch.Tensor
    padding: str = "border"

    @property
    def scale(self) -> int:
        return self.hr_maps.shape[-1] // self.lr_maps.shape[-1]


@torch.no_grad()
def motion_sample(model, clip: torch.Tensor) -> MotionSample:
    """Run CGM-Net on the first T frames of `clip` (3, T+1, H, W); T = the model's clip_len."""
    model.eval()
    t = model.cfg.clip_len
    if clip.dim() != 4 or clip.shape[1] != t + 1:
        raise ValueError(
            f"motion_sample: expected a clip (3, {t + 1}, H, W) (clip_len + 1 frames), "
            f"got {tuple(clip.shape)}"
        )
    device = next(model.parameters()).device
    out = model(clip[None, :, :t].float().to(device))
    return MotionSample(clip.cpu(), out.hr_maps[0].cpu(), out.lr_maps[0].cpu(), model.cfg.padding)


def draw_pixel_view(sample: MotionSample, t: int, y: int, x: int, *, fig=None):
    """The explorer's figure for frame t and pixel (y, x): frame with the flow arrow | flow colours |
    HR filter | LR filter at (y//r, x//r) | reconstruction of frame t+1 | its ℓ1 error map."""
    import matplotlib.pyplot as plt  # heavy: only figures need it, not cgm flow's colour panels

    steps, _, h, w = sample.hr_maps.shape
    if not (0 <= t < steps and 0 <= y < h and 0 <= x < w):
        raise ValueError(f"t={t}, (y={y}, x={x}) outside {steps} maps of {h}x{w}")
    frame, target = sample.clip[:, t], sample.clip[:, t + 1]
    maps = sample.hr_maps[t]
    flow = motion_to_flow(maps[None])[0]  # (2, H, W)
    recon = adaptive_warp(frame[None], maps[None], padding=sample.padding)[0]
    r = sample.scale
    if fig is None:
        fig = plt.figure(figsize=(11, 2.3))
    fig.clear()
    axes = fig.subplots(1, 6)
    u, v = float(flow[0, y, x]), float(flow[1, y, x])
    axes[0].imshow(frame_to_image(frame))
    axes[0].annotate(
        "",
        xy=(x + 4 * u, y + 4 * v),
        xytext=(x, y),
        arrowprops=dict(arrowstyle="->", color="#00e5ff", lw=1.5),
    )
    _mark(axes[0], [(y, x)], ["#ffea00"])
    axes[0].set_title(f"frame {t}, flow ({u:+.2f}, {v:+.2f}) px x4", fontsize=7)
    axes[1].imshow(flow_to_rgb(flow))
    _mark(axes[1], [(y, x)], ["black"])
    axes[1].set_title("motion_to_flow", fontsize=7)
    hr, lr = filter_at(maps, y, x), filter_at(sample.lr_maps[t], y // r, x // r)
    draw_filter(axes[2], hr, title=f"HR filter {len(hr)}x{len(hr)} at ({y}, {x})")
    draw_filter(axes[3], lr, title=f"LR filter {len(lr)}x{len(lr)} at ({y // r}, {x // r})")
    axes[4].imshow(frame_to_image(recon))
    axes[4].set_title(f"reconstruction of frame {t + 1}", fontsize=7)
    err = error_map(recon, target)
    axes[5].imshow(err, cmap="inferno", vmin=0)
    axes[5].set_title(f"ℓ1 error {err.mean():.4f}", fontsize=7)
    for ax in axes:
        ax.set_xticks([])
        ax.set_yticks([])
    return fig


class MotionExplorer:
    """Choose dataset, clip, frame and pixel with sliders; see the HR and LR filters there, the flow
    arrow, the reconstruction and its error (`draw_pixel_view`).

    `load(dataset, index) -> MotionSample` is called once per (dataset, clip) and cached;
    `datasets` maps each dataset name to its number of clips. `widget` is the ipywidgets box to
    display; `draw()` renders the current choice as a static matplotlib figure (what a headless
    run stores), `update()` renders it to PNG and sets it as the value of the widget's `image`.

    Why an `ipywidgets.Image` and not an `Output` widget: redrawing means only a widget-state
    update (one comm message with the PNG bytes). Capturing `display()` inside an `Output` widget
    made a headless kernel (papermill/nbclient) hang at that cell intermittently (nbclient
    routes captured output through the widget's `msg_id`; jupyter/nbclient#312).
    """

    def __init__(self, load, datasets: dict[str, int]):
        import ipywidgets as w  # heavy, and only the notebook explorer needs it

        if not datasets or any(n < 1 for n in datasets.values()):
            raise ValueError(f"MotionExplorer needs datasets with >= 1 clip each, got {datasets}")
        self._load, self._cache = load, {}
        names = list(datasets)
        self.dataset = w.Dropdown(options=names, value=names[0], description="dataset")
        self.clip = w.IntSlider(0, 0, datasets[names[0]] - 1, description="clip")
        self.frame = w.IntSlider(0, 0, 0, description="frame")
        self.y = w.IntSlider(0, 0, 0, description="y")
        self.x = w.IntSlider(0, 0, 0, description="x")
        self.image = w.Image(format="png", layout=w.Layout(max_width="100%"))
        self._sizes = datasets
        self._ranges()
        self.y.value, self.x.value = self.y.max // 2, self.x.max // 2
        for control in (self.dataset, self.clip):
            control.observe(self._on_clip, names="value")
        for control in (self.frame, self.y, self.x):
            control.observe(lambda _: self.update(), names="value")
        self.widget = w.VBox(
            [w.HBox([self.dataset, self.clip, self.frame]), w.HBox([self.y, self.x]), self.image]
        )

    def sample(self) -> MotionSample:
        key = (self.dataset.value, self.clip.value)
        if key not in self._cache:
            self._cache[key] = self._load(*key)
        return self._cache[key]

    def _ranges(self) -> None:
        s = self.sample()
        steps, _, h, w = s.hr_maps.shape
        self.frame.max, self.y.max, self.x.max = steps - 1, h - 1, w - 1

    def _on_clip(self, _) -> None:
        self.clip.max = self._sizes[self.dataset.value] - 1
        self._ranges()
        self.update()

    def draw(self, fig=None):
        """The current view as a matplotlib figure."""
        return draw_pixel_view(self.sample(), self.frame.value, self.y.value, self.x.value, fig=fig)

    def update(self) -> None:
        """Redraw the widget's image (interactive use)."""

        import matplotlib.pyplot as plt  # heavy: only figures need it, not cgm flow's colour panels

        fig = self.draw()
        png = io.BytesIO()
        fig.savefig(png, format="png", dpi=fig.dpi)
        plt.close(fig)
        self.image.value = png.getvalue()


def pick_pixels(
    flow, n: int = 3, *, min_dist: int | None = None, margin: int | None = None
) -> list[tuple[int, int]]:
    """Up to `n` pixels (y, x) of largest flow magnitude, at least `min_dist` apart (default H/5)
    and `margin` from the border (default H/10): where a motion map has something to show."""
    f = _np(flow)
    if f.ndim != 3 or f.shape[0] != 2:
        raise ValueError(f"pick_pixels expects a flow (2, H, W), got shape {f.shape}")
    h, w = f.shape[1:]
    min_dist = max(1, h // 5) if min_dist is None else min_dist
    margin = h // 10 if margin is None else margin
    mag = np.sqrt((f**2).sum(0))
    picked: list[tuple[int, int]] = []
    for i in np.argsort(-mag, axis=None, kind="stable"):
        y, x = divmod(int(i), w)
        if not (margin <= y < h - margin and margin <= x < w - margin):
            continue
        if all(max(abs(y - py), abs(x - px)) >= min_dist for py, px in picked):
            picked.append((y, x))
            if len(picked) == n:
                break
    return picked


def flow_wheel(ax=None, *, size: int = 101, max_mag: float | None = None, label: bool = True):
    """Draw the flow colour key (`flow_to_rgb`'s Middlebury code) as a disc on `ax`: the colour of
    a flow vector is that of its tip, the centre (no motion) is white and the rim is `max_mag`
    pixels (or "max" when the figure's scale is relative). Returns the axes."""
    import matplotlib.pyplot as plt  # heavy: only figures need it, not cgm flow's colour panels

    if ax is None:
        _, ax = plt.subplots(figsize=(1.6, 1.6))
    ys, xs = np.mgrid[-1 : 1 : size * 1j, -1 : 1 : size * 1j]
    rgb = flow_to_rgb(np.stack([xs, ys]), max_mag=1.0)
    outside = xs**2 + ys**2 > 1
    rgba = np.concatenate([rgb, np.where(outside, 0, 255).astype(np.uint8)[..., None]], axis=2)
    ax.imshow(rgba, extent=(-1, 1, 1, -1))  # y down, as in an image
    ax.set_xticks([])
    ax.set_yticks([])
    for side in ax.spines.values():
        side.set_visible(False)
    if label:
        rim = "max" if max_mag is None else f"{max_mag:.2g} px"
        for x, y, text, ha, va in (
            (1.05, 0, "right", "left", "center"),
            (-1.05, 0, "left", "right", "center"),
            (0, -1.05, "up", "center", "bottom"),
            (0, 1.05, "down", "center", "top"),
        ):
            ax.text(x, y, text, ha=ha, va=va, fontsize=7)
        ax.set_title(f"flow colours (rim: {rim})", fontsize=7)
        ax.set_xlim(-1.6, 1.6)
        ax.set_ylim(1.4, -1.4)
    return ax


# ----------------------------------------------------------------------------- images for files


def flow_legend(side: int, max_mag: float) -> np.ndarray:
    """The flow colour key as a uint8 image (side + 2 text lines, side, 3) for PNG/MP4 frames: the
    colour wheel (`flow_to_rgb` at `max_mag`; a pixel's colour is that of the flow from the centre
    to it, rim = `max_mag` px) on white, "flow key" above and "rim N px" below."""
    if side < 16:
        raise ValueError(f"flow_legend: side must be >= 16 px, got {side}")
    ys, xs = np.mgrid[-1 : 1 : side * 1j, -1 : 1 : side * 1j]
    rgb = flow_to_rgb(np.stack([xs, ys]) * max_mag, max_mag=max_mag)
    rgb[xs**2 + ys**2 > 1] = 255
    return label_panel(label_panel(rgb, "flow key"), f"rim {max_mag:.2g} px", below=True)


def label_panel(image: np.ndarray, text: str, *, below: bool = False) -> np.ndarray:
    """`image` (H, W, 3) uint8 with a white strip holding `text` above (or below) it, in PIL's
    built-in font; text wider than the image is cut at its edge."""

    font = ImageFont.load_default()
    top, bottom = font.getbbox("Ag")[1], font.getbbox("Ag")[3]
    strip = Image.new("RGB", (image.shape[1], bottom - top + 4), "white")
    ImageDraw.Draw(strip).text((2, 2 - top), text, fill="black", font=font)
    parts = [np.asarray(strip), image] if not below else [image, np.asarray(strip)]
    return np.concatenate(parts, axis=0)


def panel_row(panels: list[np.ndarray], *, gap: int = 2) -> np.ndarray:
    """Images (H_i, W_i, 3) uint8 side by side on white, top-aligned, `gap` px apart."""
    h = max(p.shape[0] for p in panels)
    out = []
    for i, p in enumerate(panels):
        if i:
            out.append(np.full((h, gap, 3), 255, np.uint8))
        out.append(np.concatenate([p, np.full((h - p.shape[0], p.shape[1], 3), 255, np.uint8)]))
    return np.concatenate(out, axis=1)
