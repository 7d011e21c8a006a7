"""KnownMotion: real footage under known smooth motion, with exact ground-truth flow and occlusion.

A benchmark for the question "are the motion maps motion?": the image content is real (frames of
the footage that `make data` installs, `cgm.data.footage`), the motion is synthetic and known.
Each clip is a background frame seen by a moving camera (smooth pan, zoom and rotation) with one
or two foreground layers over it: crops of other footage frames, cut out by a hard or soft mask
(an irregular blob), each moving with its own smooth similarity motion and occluding the
background. Every motion is at most `MAX_FLOW` px per frame at 64 px (scaled with size), within
the ±4 px of CGM-Net's 9x9 HR filters.

Which frames. The test and val splits draw their image content from the footage's test ranges
(Big Buck Bunny 9,600-11,699 and ViSP `mbt/cube`), which the laptop model never trains on; the
train split draws from the footage's train ranges. The content is real, the motion is not: even a
frame that a model had seen would tell it nothing about the motion it is put under here.

Rendering (docs/interfaces.md convention, as SynthMotion). Layer L has source-image coordinates q
and per frame t an affine map `M_t: q -> p` onto the output pixel grid (pixel centres at integers,
x right, y down). A pixel is the mean of `SUPERSAMPLE`² point samples spread over its area, each
read bilinearly from the source frame at q = M_t^-1(p) (grid_sample): sources are 128 px stored
frames viewed at 1.2-1.6 source px per output px at 64 px, so frames are area-downsampled like
real video. Layers are composited per sample (alpha over), then averaged.

Ground truth. flow[t] lives on frame t+1's grid: the content of layer L at p in frame t+1 was at
p' = M_t(M_{t+1}^-1(p)) in frame t, and flow[t](p) = p - p', so frame[t+1](p) ~ frame[t](p -
flow[t](p)), channel 0 = x, where L is the layer that covers p in frame t+1. Under an affine motion
the mean of the samples' flows is the flow at the pixel centre, so this is exact for a pixel of
one layer. occlusion[t](p) is True where the flow is not that of one visible surface: p' falls
outside frame t, the pixel mixes layers in frame t+1 (a mask edge: no single flow), or layer L
does not cover p' alone in frame t (it was hidden there, or at a mask edge).
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

from . import footage

SPLITS = ("train", "val", "test")
DEFAULT_N = {"train": 2000, "val": 64, "test": 64}
SUPERSAMPLE = 3  # point samples per pixel and axis (9 per pixel): area averaging like a sensor
PURE = 0.98  # a pixel belongs to one layer when that layer makes >= 98% of its colour
MAX_FLOW = 4.0  # px per frame at 64 px (scaled with size): within CGM-Net's ±4 px HR window
MIN_TEXTURE = 0.06  # std of a source frame's gray levels in [0, 1]: flat (dark) frames are redrawn

# Motion ranges at 64 px (scaled with size / 64); angles in degrees, zoom as log-scale per frame.
CAMERA_SPEED = (0.25, 2.0)
CAMERA_ACCEL = 0.15  # |a| per axis: the velocity drifts smoothly over the clip
CAMERA_ROTATION = 1.0
CAMERA_ZOOM = 0.02
CAMERA_VIEW = (1.2, 1.6)  # source px per output px (at 64 px), before the fit into the source frame
LAYER_SPEED = (0.5, 3.0)
LAYER_ACCEL = 0.2
LAYER_ROTATION = 3.0
LAYER_ZOOM = 0.03
LAYER_RADIUS = (0.14, 0.28)  # object radius, share of the frame side
LAYER_SCALE = (0.6, 1.0)  # output px per source px of a foreground layer
SOFT_EDGE = (1.0, 2.5)  # width in output px of a soft mask's ramp (half the layers are hard-edged)


def _sources(split: str) -> list[tuple[str, int, int]]:
    """(sequence, first, stop) frame ranges the split draws its image content from."""
    out = []
    for seq in footage.SEQUENCES:
        ranges = getattr(seq, "train" if split == "train" else "test")
        out += [(seq.name, lo, hi) for lo, hi in (((0, None),) if ranges is None else ranges)]
    return out


def _similarity(centre, scale, theta, origin) -> np.ndarray:
    """Per-frame maps q -> p = centre_t + scale_t R(theta_t) (q - origin), (T, 3, 3)."""
    frames = len(scale)
    m = np.zeros((frames, 3, 3))
    cos, sin = scale * np.cos(theta), scale * np.sin(theta)
    m[:, 0, 0], m[:, 0, 1], m[:, 1, 0], m[:, 1, 1] = cos, -sin, sin, cos
    m[:, :2, 2] = centre - np.einsum("tij,j->ti", m[:, :2, :2], origin)
    m[:, 2, 2] = 1.0
    return m


def _apply(mats: torch.Tensor, pts: torch.Tensor) -> torch.Tensor:
    """Affine maps (T, 3, 3) applied to points (T, N, 2): (T, N, 2)."""
    return pts @ mats[:, :2, :2].transpose(1, 2) + mats[:, None, :2, 2]


class Scene:
    """The layers of one clip and what they render at any points of any frame.

    `layers`: list of (image (3, Hs, Ws) in [-1, 1], M (T, 3, 3) q -> p float64, mask) with mask
    None for the background, else (origin (2,), radius (source px), harmonics (K, 3), edge (output
    px, 0 = hard)).
    """

    def __init__(self, layers: list, size: int):
        self.layers, self.size = layers, size
        self.inverse = [torch.as_tensor(np.linalg.inv(m), dtype=torch.float64) for _, m, _ in layers]
        self.forward = [torch.as_tensor(m, dtype=torch.float64) for _, m, _ in layers]
        s = SUPERSAMPLE
        o = (torch.arange(s, dtype=torch.float64) + 0.5) / s - 0.5
        self.offsets = torch.stack(torch.meshgrid(o, o, indexing="xy"), -1).reshape(-1, 2)  # (S*S, 2)

    def _alpha(self, layer: int, q: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """Coverage in [0, 1] of a foreground layer's mask at source points q (T', N, 2)."""
        origin, radius, harmonics, edge = self.layers[layer][2]
        d = q - torch.as_tensor(origin, dtype=q.dtype)
        r, phi = d.norm(dim=-1), torch.atan2(d[..., 1], d[..., 0])
        k, amp, phase = (torch.as_tensor(harmonics[:, i], dtype=q.dtype) for i in range(3))
        boundary = radius * (1 + (amp * torch.cos(k * phi[..., None] + phase)).sum(-1))
        m = self.forward[layer][t]  # (T', 3, 3)
        zoom = m[:, :2, :2].det().abs().sqrt()[:, None].to(q.dtype)  # output px per source px
        signed = (r - boundary) * zoom  # ~ signed distance to the mask edge in output px
        if edge == 0:
            return (signed <= 0).to(q.dtype)  # hard: anti-aliased by the supersampling
        return (0.5 - signed / edge).clamp(0, 1)

    def render(self, t, pts: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Colours (T', 3, N) and per-layer weights (T', L, N) (the share of each layer in the
        pixel's colour, summing to 1) of pixels centred at output points `pts` (T', N, 2) of
        frames `t` (T',)."""
        t = torch.as_tensor(t)
        tp, n = pts.shape[:2]
        sub = (pts.double()[:, :, None] + self.offsets).reshape(tp, -1, 2)  # (T', N*S*S, 2)
        colour, weights = None, []
        for layer, (image, _, mask) in enumerate(self.layers):
            q = _apply(self.inverse[layer][t], sub).float()  # (T', M, 2) source coords
            hs, ws = image.shape[-2:]
            grid = torch.stack([q[..., 0] * 2 / (ws - 1) - 1, q[..., 1] * 2 / (hs - 1) - 1], -1)
            rgb = F.grid_sample(
                image[None],
                grid.reshape(1, -1, 1, 2),
                mode="bilinear",
                padding_mode="border",
                align_corners=True,
            )[0, :, :, 0].reshape(3, tp, -1)  # (3, T', M)
            rgb = rgb.transpose(0, 1)  # (T', 3, M)
            alpha = torch.ones(tp, sub.shape[1]) if mask is None else self._alpha(layer, q, t)
            if colour is None:
                colour = rgb
            else:
                colour = colour + alpha[:, None] * (rgb - colour)
                weights = [w * (1 - alpha) for w in weights]
            weights.append(alpha)
        per_pixel = lambda x: x.reshape(*x.shape[:-1], n, -1).mean(-1)  # noqa: E731
        return per_pixel(colour), per_pixel(torch.stack(weights, 1))

    def grid(self, frames: int) -> torch.Tensor:
        """The output pixel centres of `frames` frames: (frames, H*W, 2), x first."""
        ys, xs = torch.meshgrid(
            torch.arange(self.size, dtype=torch.float64),
            torch.arange(self.size, dtype=torch.float64),
            indexing="ij",
        )
        return torch.stack([xs, ys], -1).reshape(1, -1, 2).expand(frames, -1, -1)

    def clip(self, frames: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(clip (3, T, H, W), flow (T-1, 2, H, W), occlusion (T-1, 1, H, W) bool)."""
        size = self.size
        p = self.grid(frames)
        colour, weights = self.render(torch.arange(frames), p)  # (T, 3, N), (T, L, N)
        clip = colour.transpose(0, 1).reshape(3, frames, size, size).clamp(-1, 1)
        top = weights[1:].argmax(1)  # (T-1, N) the layer each pixel of frame t+1 shows
        pure = weights[1:].amax(1) >= PURE
        t = torch.arange(frames - 1)
        # p' = M_t M_{t+1}^-1 p for every layer, then picked by the top layer at p.
        back = torch.stack(
            [_apply(self.forward[i][t] @ self.inverse[i][t + 1], p[1:]) for i in range(len(self.layers))], 1
        )  # (T-1, L, N, 2)
        source = back.gather(1, top[:, None, :, None].expand(-1, 1, -1, 2))[:, 0]  # (T-1, N, 2)
        flow = p[1:] - source
        _, then = self.render(t, source)  # layer weights at p' in frame t
        alone = then.gather(1, top[:, None])[:, 0] >= PURE
        outside = ((source < 0) | (source > size - 1)).any(-1)
        occlusion = outside | ~pure | ~alone
        flow = flow.float().transpose(1, 2).reshape(frames - 1, 2, size, size)
        return clip.contiguous(), flow, occlusion.reshape(frames - 1, 1, size, size)


class KnownMotion(Dataset):
    """Footage frames under known smooth motion (module docstring): items `clip` (3, T, H, W) in
    [-1, 1] (T = clip_len, or clip_len + 1 with `future`), `index`, `flow` (T-1, 2, H, W) and
    `occlusion` (T-1, 1, H, W) bool, SynthMotion's format, so `evaluate_motion` scores EPE on it.
    Item i of a split is fixed by (seed, split, i). `footage_dir` defaults to data/footage."""

    def __init__(
        self,
        split: str = "test",
        n: int | None = None,
        clip_len: int = 4,
        size: int = 64,
        seed: int = 0,
        future: bool = True,
        footage_dir: str | Path | None = None,
    ):
        if split not in SPLITS:
            raise ValueError(f"KnownMotion: unknown split {split!r}; expected one of {SPLITS}")
        n = DEFAULT_N[split] if n is None else n
        if int(n) < 1:
            raise ValueError(f"KnownMotion: n must be >= 1, got {n}")
        if int(clip_len) + int(bool(future)) < 2:
            raise ValueError(f"KnownMotion: clips need >= 2 frames, got clip_len={clip_len}, future={future}")
        if not 16 <= int(size) <= 256:
            raise ValueError(f"KnownMotion: size must be in [16, 256] pixels, got {size}")
        self.split, self.n, self.clip_len, self.size = split, int(n), int(clip_len), int(size)
        self.seed, self.future = int(seed), bool(future)
        self.frames = self.clip_len + int(self.future)
        self.classes: list[str] = []
        self.skipped: list[tuple[str, str]] = []
        root = Path(footage_dir) if footage_dir else footage.FOOTAGE_DIR
        self.videos, self.pool = {}, []  # pool: (sequence, first, stop) with stop resolved
        for name, lo, hi in _sources(split):
            if name not in self.videos:
                self.videos[name] = footage.load_sequence(name, root)
            hi = len(self.videos[name]) if hi is None else min(hi, len(self.videos[name]))
            if hi > lo:
                self.pool.append((name, lo, hi))
        self.pool_sizes = np.array([hi - lo for _, lo, hi in self.pool])
        if self.pool_sizes.sum() == 0:
            raise ValueError(f"KnownMotion: no {split} frames in {root}")

    def __len__(self) -> int:
        return self.n

    def rng(self, index: int) -> np.random.Generator:
        return np.random.default_rng([self.seed, SPLITS.index(self.split), index, 0x4B4D])

    def _frame(self, rng: np.random.Generator) -> tuple[torch.Tensor, str]:
        """A textured source frame drawn uniformly over the split's frames: ((3, Hs, Ws), 'name:i')."""
        p = self.pool_sizes / self.pool_sizes.sum()
        for _ in range(20):
            name, lo, hi = self.pool[int(rng.choice(len(self.pool), p=p))]
            i = int(rng.integers(lo, hi))
            img = torch.from_numpy(np.array(self.videos[name][i])).permute(2, 0, 1).float()
            if (img.mean(0) / 255).std() >= MIN_TEXTURE:
                break
        return img / 127.5 - 1.0, f"{name}:{i}"

    def _camera(self, rng, image, mid) -> np.ndarray:
        """The background's maps (T, 3, 3): a smooth pan/zoom/rotation, fitted inside the source."""
        scale, size = self.size / 64.0, self.size
        angle = rng.uniform(0, 2 * math.pi)
        v = rng.uniform(*CAMERA_SPEED) * scale * np.array([math.cos(angle), math.sin(angle)])
        a = rng.uniform(-CAMERA_ACCEL, CAMERA_ACCEL, 2) * scale
        omega = math.radians(rng.uniform(-CAMERA_ROTATION, CAMERA_ROTATION))
        zeta = rng.uniform(-CAMERA_ZOOM, CAMERA_ZOOM)
        view = rng.uniform(*CAMERA_VIEW) * 64.0 / size  # source px per output px
        slack = rng.uniform(-1, 1, 2)
        hs, ws = image.shape[-2:]
        c = (size - 1) / 2.0
        for _ in range(8):  # shrink the motion until no frame moves a pixel more than MAX_FLOW
            centre = c + v * mid[:, None] + a * (mid**2)[:, None]
            unit = _similarity(centre, np.exp(zeta * mid), omega * mid, np.zeros(2))  # q -> p, view 1
            fastest = _max_flow(unit, size)
            if fastest <= MAX_FLOW * scale:
                break
            v, a, omega, zeta = (x * 0.9 * MAX_FLOW * scale / fastest for x in (v, a, omega, zeta))
        corners = np.array([[0, 0, 1], [size - 1, 0, 1], [0, size - 1, 1], [size - 1, size - 1, 1.0]])
        reach = np.abs(np.einsum("tij,nj->tni", np.linalg.inv(unit), corners)[..., :2]).max((0, 1))  # (2,)
        half = np.array([(ws - 1) / 2 - 1, (hs - 1) / 2 - 1])
        view = min(view, float((half / reach).min()))  # the whole path stays inside the source
        origin = np.array([(ws - 1) / 2, (hs - 1) / 2]) + slack * np.maximum(half - view * reach, 0)
        return _similarity(
            c + v * mid[:, None] + a * (mid**2)[:, None], np.exp(zeta * mid) / view, omega * mid, origin
        )

    def _layer(self, rng, mid) -> tuple[torch.Tensor, str, np.ndarray, tuple]:
        """A foreground layer: its source frame, name, maps (T, 3, 3) and mask (a textured blob
        of the frame moving smoothly; flat crops, whose motion no method can see, are redrawn)."""
        scale, size = self.size / 64.0, self.size
        for _ in range(20):
            image, name = self._frame(rng)
            hs, ws = image.shape[-2:]
            radius_out = rng.uniform(*LAYER_RADIUS) * size
            zoom0 = rng.uniform(*LAYER_SCALE) * size / 64.0  # output px per source px
            radius = min(radius_out / zoom0, 0.45 * min(hs, ws) / 1.4)  # source px; bumps reach 1.36x
            origin = np.array(
                [
                    rng.uniform(1.4 * radius, ws - 1 - 1.4 * radius),
                    rng.uniform(1.4 * radius, hs - 1 - 1.4 * radius),
                ]
            )
            x0, y0 = (origin - radius).astype(int)
            x1, y1 = (origin + radius).astype(int) + 1
            if ((image[:, y0:y1, x0:x1].mean(0) + 1) / 2).std() >= MIN_TEXTURE:
                break
        harmonics = np.stack(
            [np.arange(2, 5), rng.uniform(-0.12, 0.12, 3), rng.uniform(0, 2 * math.pi, 3)], 1
        )  # (k, amplitude, phase)
        edge = 0.0 if rng.random() < 0.5 else rng.uniform(*SOFT_EDGE)
        angle = rng.uniform(0, 2 * math.pi)
        v = rng.uniform(*LAYER_SPEED) * scale * np.array([math.cos(angle), math.sin(angle)])
        a = rng.uniform(-LAYER_ACCEL, LAYER_ACCEL, 2) * scale
        omega = math.radians(rng.uniform(-LAYER_ROTATION, LAYER_ROTATION))
        zeta = rng.uniform(-LAYER_ZOOM, LAYER_ZOOM)
        theta0 = rng.uniform(-math.pi, math.pi)
        centre0 = rng.uniform(0.25, 0.75, 2) * size
        for _ in range(8):
            m = _similarity(
                centre0 + v * mid[:, None] + a * (mid**2)[:, None],
                zoom0 * np.exp(zeta * mid),
                theta0 + omega * mid,
                origin,
            )
            fastest = _max_flow(m, size, origin=origin, radius=1.4 * radius)
            if fastest <= MAX_FLOW * scale:
                break
            v, a, omega, zeta = (x * 0.9 * MAX_FLOW * scale / fastest for x in (v, a, omega, zeta))
        return image, name, m, (origin, radius, harmonics, edge)

    def scene(self, index: int) -> tuple[Scene, list[str]]:
        """The layers of item `index` and the footage frames they show ('sequence:frame')."""
        rng = self.rng(index)
        mid = np.arange(self.frames, dtype=np.float64) - (self.frames - 1) / 2.0
        image, name = self._frame(rng)
        layers, names = [(image, self._camera(rng, image, mid), None)], [name]
        for _ in range(int(rng.integers(1, 3))):
            image, name, m, mask = self._layer(rng, mid)
            layers.append((image, m, mask))
            names.append(name)
        return Scene(layers, self.size), names

    def __getitem__(self, index: int) -> dict:
        if not 0 <= index < self.n:
            raise IndexError(f"KnownMotion index {index} out of range for length {self.n}")
        scene, names = self.scene(index)
        threads = torch.get_num_threads()
        torch.set_num_threads(1)  # many small ops: threads only spin (see synthmotion._one_thread)
        try:
            clip, flow, occlusion = scene.clip(self.frames)
        finally:
            torch.set_num_threads(threads)
        return {
            "clip": clip,
            "index": index,
            "flow": flow,
            "occlusion": occlusion,
            "sources": ",".join(names),
        }


def _max_flow(m: np.ndarray, size: int, *, origin=None, radius: float | None = None) -> float:
    """The largest per-frame displacement |p - M_t M_{t+1}^-1 p| of a layer with maps m (T, 3, 3),
    over the frame (or over the layer's disc of `radius` source px around `origin`)."""
    if origin is None:
        s = np.linspace(0, size - 1, 9)
        pts = np.stack(np.meshgrid(s, s), -1).reshape(-1, 2)
        pts = np.broadcast_to(pts, (len(m) - 1, *pts.shape))
    else:  # the disc's points in source coords, carried to frame t+1
        ang = np.linspace(0, 2 * math.pi, 16, endpoint=False)
        ring = origin + radius * np.stack([np.cos(ang), np.sin(ang)], 1)
        q = np.concatenate([ring, origin[None]])
        pts = np.einsum("tij,nj->tni", m[1:, :2, :2], q) + m[1:, None, :2, 2]
    back = m[:-1] @ np.linalg.inv(m[1:])  # (T-1, 3, 3)
    src = np.einsum("tij,tnj->tni", back[:, :2, :2], pts) + back[:, None, :2, 2]
    return float(np.linalg.norm(pts - src, axis=-1).max())
