"""SynthMotion: procedural clips with exact ground-truth flow and motion-defined action classes.

Each clip is 1-3 textured objects (disc, ellipse, rectangle or convex polygon) over a textured
background. All objects of a clip move with the pattern of its class (translation in one of four
directions, rotation either way, zoom in or out, horizontal oscillation, or standing still); the
background drifts slowly in half of the clips of every class. Textures, colours, shapes, sizes,
positions and speeds are drawn the same way for every class, so only motion tells classes apart.

Rendering. Every layer (background, then objects in z-order) has its own coordinates q, and per
frame t an affine motion `M_t: q -> p` onto the frame's pixel grid (pixel centres at integers,
x right, y down). A frame is rendered by backward sampling: for every pixel p, q = M_t^-1(p), the
texture is read bilinearly at q (one `grid_sample` per layer for all frames at once) and objects
are composited over the background with an analytic, anti-aliased shape mask evaluated at q.

Ground truth (docs/interfaces.md convention). flow[t] lives on frame t+1's grid: the content of
layer L at p in frame t+1 was at p' = M_t(M_{t+1}^-1(p)) in frame t, and flow[t](p) = p - p', so
frame[t+1](p) ~ frame[t](p - flow[t](p)), channel 0 = x. L is the topmost layer at p in frame t+1.
occlusion[t](p) is True where that content was not visible in frame t: p' falls outside the frame,
or another layer covered p' in frame t.

Textures come from images bundled inside the installed scikit-image wheel (read from disk, never
downloaded) and from a few fixed procedural noise images.
"""

from __future__ import annotations

import contextlib
import functools
import importlib.util
import math
import os

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch.utils.data import Dataset

SYNTH_CLASSES = (
    "translate_right",
    "translate_left",
    "translate_up",
    "translate_down",
    "rotate_cw",
    "rotate_ccw",
    "zoom_in",
    "zoom_out",
    "oscillate_horizontal",
    "static",
)
SPLITS = ("train", "val", "test")
DEFAULT_N = {"train": 2000, "val": 200, "test": 500}

# Images that scikit-image ships inside its wheel (skimage/data/*); the ones it would fetch with
# pooch are not used.
SKIMAGE_TEXTURES = (
    "astronaut.png",
    "coffee.png",
    "chelsea.png",
    "rocket.jpg",
    "camera.png",
    "brick.png",
    "grass.png",
    "gravel.png",
    "motorcycle_left.png",
    "hubble_deep_field.jpg",
)
NUM_NOISE_TEXTURES = 4

# Motion magnitudes in pixels per frame at 112 px (scaled with size): the fastest point of any
# object moves at most ~3.5 px/frame, so a 9x9 filter (+-4 px) can represent every motion.
SPEED = (1.0, 3.0)  # translation
ROTATION_DEG = (2.0, 4.5)  # per frame; shape points lie within 1.6 * 0.26 * size of the centre
ZOOM_RATE = (0.025, 0.05)  # log-scale per frame
OSC_PEAK_SPEED = (1.5, 3.0)  # peak speed of the oscillation
OSC_PERIOD = (5.0, 9.0)  # frames
BACKGROUND_SPEED = (0.1, 0.5)
MAX_TRAVEL = 0.6  # translation paths stay within 0.6*size over the clip
MAX_ZOOM = 2.5  # total zoom factor over the clip
CAMERA_P = 0.5  # share of clips whose background drifts (a panning camera)


# ---------------------------------------------------------------------------------------------
# Textures
# ---------------------------------------------------------------------------------------------


def skimage_data_dir() -> str:
    """The folder of images bundled with scikit-image (no network access)."""
    spec = importlib.util.find_spec("skimage")
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError(
            "SynthMotion needs scikit-image installed (its bundled images "
            "are the textures); `pip install scikit-image`"
        )
    return os.path.join(list(spec.submodule_search_locations)[0], "data")


def _load_image(path: str, side: int) -> torch.Tensor:
    """Centre square of an image file, resized to side x side, as (3, side, side) in [-1, 1]."""

    if not os.path.isfile(path):
        raise FileNotFoundError(
            f"SynthMotion texture {path} is missing from the installed "
            "scikit-image package; reinstall scikit-image"
        )
    with Image.open(path) as im:
        rgb = np.asarray(im.convert("RGB"), dtype=np.float32)
    h, w = rgb.shape[:2]
    c = min(h, w)
    rgb = rgb[(h - c) // 2 : (h - c) // 2 + c, (w - c) // 2 : (w - c) // 2 + c]
    x = torch.from_numpy(np.ascontiguousarray(rgb)).permute(2, 0, 1)[None] / 127.5 - 1.0
    return F.interpolate(x, size=(side, side), mode="bilinear", antialias=True, align_corners=False)[0].clamp(
        -1, 1
    )


def _noise_texture(side: int, seed: int) -> torch.Tensor:
    """Coloured multi-octave value noise, (3, side, side) in [-1, 1], fixed by seed."""
    g = torch.Generator().manual_seed(seed)
    out = torch.zeros(1, 3, side, side)
    for octave, cells in enumerate((4, 8, 16, 32)):
        grid = torch.rand(1, 3, cells, cells, generator=g) * 2 - 1
        out += 0.5**octave * F.interpolate(grid, size=(side, side), mode="bicubic", align_corners=False)
    out = out / out.abs().amax().clamp_min(1e-6)
    return out[0]


@functools.lru_cache(maxsize=4)
def texture_atlas(size: int) -> torch.Tensor:
    """All textures for clips of `size`: (N, 3, 2*size, 2*size) in [-1, 1], built once per process."""
    side = 2 * size  # textures are read at 0.6-1.6 texels per pixel: little aliasing
    root = skimage_data_dir()
    images = [_load_image(os.path.join(root, name), side) for name in SKIMAGE_TEXTURES]
    images += [_noise_texture(side, seed) for seed in range(NUM_NOISE_TEXTURES)]
    return torch.stack(images).contiguous()


# ---------------------------------------------------------------------------------------------
# Per-clip parameters (numpy, cheap scalars)
# ---------------------------------------------------------------------------------------------


def _similarity(c: np.ndarray, s: np.ndarray, theta: np.ndarray) -> np.ndarray:
    """Per-frame motions M_t q = c_t + s_t R(theta_t) q as (T, 3, 3) homogeneous matrices."""
    m = np.zeros((len(c), 3, 3))
    m[:, 0, 0] = s * np.cos(theta)
    m[:, 0, 1] = -s * np.sin(theta)
    m[:, 1, 0] = s * np.sin(theta)
    m[:, 1, 1] = s * np.cos(theta)
    m[:, :2, 2] = c
    m[:, 2, 2] = 1.0
    return m


def _object_motion(
    label: int, t: np.ndarray, size: int, rng: np.random.Generator, speed_factor: float = 1.0
) -> np.ndarray:
    """Motions (T, 3, 3) of one object following the pattern of class `label`."""
    scale = size / 112.0 * speed_factor
    frames = len(t)
    mid = t - (frames - 1) / 2.0  # centred time: a clip's middle frame shows the base pose
    centre = rng.uniform(0.3, 0.7, size=2) * size
    theta0 = rng.uniform(-math.pi, math.pi)
    c = np.tile(centre, (frames, 1))
    s = np.ones(frames)
    theta = np.full(frames, theta0)
    name = SYNTH_CLASSES[label]
    if name.startswith("translate"):
        hi = min(SPEED[1] * scale, MAX_TRAVEL * size / max(frames - 1, 1))
        speed = rng.uniform(min(SPEED[0] * scale, hi), hi)
        direction = {
            "translate_right": (1, 0),
            "translate_left": (-1, 0),
            "translate_up": (0, -1),
            "translate_down": (0, 1),
        }[name]
        c = centre + speed * mid[:, None] * np.asarray(direction, dtype=np.float64)
    elif name.startswith("rotate"):
        omega = math.radians(rng.uniform(*ROTATION_DEG) * speed_factor)
        theta = theta0 + (omega if name == "rotate_cw" else -omega) * mid  # y down: + is clockwise
    elif name.startswith("zoom"):
        hi = math.log(MAX_ZOOM) / max(frames - 1, 1)
        rate = rng.uniform(min(ZOOM_RATE[0] * speed_factor, hi), min(ZOOM_RATE[1] * speed_factor, hi))
        s = np.exp((rate if name == "zoom_in" else -rate) * mid)
    elif name == "oscillate_horizontal":
        period = rng.uniform(*OSC_PERIOD)
        amplitude = rng.uniform(*OSC_PEAK_SPEED) * scale * period / (2 * math.pi)
        phase = rng.uniform(0, 2 * math.pi)
        c = c.copy()
        c[:, 0] += amplitude * np.sin(2 * math.pi * t / period + phase)
    return _similarity(c, s, theta)


def _random_shape(radius: float, rng: np.random.Generator) -> tuple[str, np.ndarray]:
    """A shape in object coordinates: ("ellipse", [a, b]) or ("polygon", [[nx, ny, h], ...])."""
    kind = rng.choice(("disc", "ellipse", "rectangle", "polygon"))
    if kind == "disc":
        return "ellipse", np.array([radius, radius])
    if kind == "ellipse":
        return "ellipse", np.array([radius, radius * rng.uniform(0.5, 0.9)])
    if kind == "rectangle":
        a, b = radius * 0.8, radius * 0.8 * rng.uniform(0.5, 1.0)
        return "polygon", np.array([[1, 0, a], [-1, 0, a], [0, 1, b], [0, -1, b]], dtype=np.float64)
    n = int(rng.integers(3, 8))  # convex polygon: n half-planes at jittered, evenly spread angles
    # Jitter keeps neighbouring normals within 120 degrees, so vertices stay within ~2h of the
    # centre (a wider gap would stretch a vertex far out, or leave the polygon unbounded).
    jitter = min(0.25, (n / 3 - 1) / 2)
    angles = (
        np.linspace(0, 2 * math.pi, n, endpoint=False)
        + rng.uniform(0, 2 * math.pi)
        + rng.uniform(-jitter, jitter, n) * 2 * math.pi / n
    )
    h = radius * rng.uniform(0.6, 0.8, n)
    return "polygon", np.stack([np.cos(angles), np.sin(angles), h], axis=1)


def _shape_mask(shape: tuple[str, np.ndarray], q: torch.Tensor, pixel: torch.Tensor) -> torch.Tensor:
    """Anti-aliased coverage in [0, 1] of a shape at object coordinates q (..., 2).

    `pixel` is the size of one frame pixel in object units (1 / zoom), broadcast like q[..., 0].
    """
    kind, p = shape
    if kind == "ellipse":
        a, b = float(p[0]), float(p[1])
        r = torch.sqrt((q[..., 0] / a) ** 2 + (q[..., 1] / b) ** 2)
        sdf = (r - 1.0) * min(a, b)  # signed distance, approximate away from the boundary
    else:
        planes = torch.as_tensor(p, dtype=q.dtype)  # (P, 3): n . q <= h inside
        sdf = (q @ planes[:, :2].T - planes[:, 2]).amax(dim=-1)
    return (0.5 - sdf / pixel).clamp(0.0, 1.0)


# ---------------------------------------------------------------------------------------------
# Rendering and ground truth
# ---------------------------------------------------------------------------------------------


def _apply(mats: np.ndarray, size: int) -> torch.Tensor:
    """Affine maps (N, 3, 3) of pixel coordinates, evaluated on the size x size pixel grid.

    Returns (N, H, W, 2) float32, x first. One batched `affine_grid` (a bmm) does the work.
    """
    half = (size - 1) / 2.0  # align_corners=True: normalized -1..1 <-> pixel centres 0..size-1
    from_norm = np.array([[half, 0, half], [0, half, half], [0, 0, 1.0]])
    theta = torch.as_tensor((mats @ from_norm)[:, :2, :], dtype=torch.float32)
    return F.affine_grid(theta, [len(mats), 1, size, size], align_corners=True)


def render_clip(
    label: int,
    frames: int,
    size: int,
    rng: np.random.Generator,
    *,
    speed: float = 1.0,
    camera: float = CAMERA_P,
    camera_speed: tuple[float, float] = BACKGROUND_SPEED,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """One clip of class `label`: (clip (3,T,H,W), flow (T-1,2,H,W), occlusion (T-1,1,H,W)).

    `speed` multiplies every motion; `camera` is the chance that the background drifts, at
    `camera_speed` px/frame (at 112 px, times `speed`, scaled with size like all motions).
    """
    atlas = texture_atlas(size)
    side = atlas.shape[-1]
    scale = size / 112.0 * speed
    t = np.arange(frames, dtype=np.float64)

    # Layer 0: background, translation only (drift in a `camera` share of the clips of every class).
    drift = np.zeros(2)
    if rng.random() < camera:
        angle = rng.uniform(0, 2 * math.pi)
        drift = rng.uniform(*camera_speed) * scale * np.array([math.cos(angle), math.sin(angle)])
    motions = [_similarity(drift * (t[:, None] - (frames - 1) / 2), np.ones(frames), np.zeros(frames))]
    # Texture placement per layer: texel u = offset + step * R(phi) q.
    placements = [
        (rng.uniform(0.7, 1.0), 0.0, side / 2 + rng.uniform(-0.1, 0.1, 2) * side - size / 2 * np.ones(2))
    ]
    shapes = [None]
    for _ in range(int(rng.integers(1, 4))):
        radius = rng.uniform(0.12, 0.26) * size
        shapes.append(_random_shape(radius, rng))
        motions.append(_object_motion(label, t, size, rng, speed))
        step = rng.uniform(0.7, 1.3)
        reach = 2.0 * radius * step  # farthest shape point (a triangle vertex) in texels
        placements.append((step, rng.uniform(-math.pi, math.pi), rng.uniform(reach, side - 1 - reach, 2)))
    layers = len(motions)
    texture_idx = rng.integers(0, atlas.shape[0], layers)
    gain = rng.uniform(0.6, 1.1, (layers, 3))
    bias = rng.uniform(-0.25, 0.25, (layers, 3))

    # All affine maps of pixel coordinates, composed in float64 and evaluated in one call:
    # texel grids N P M_t^-1 (P: texture placement, N: texels -> grid_sample's [-1, 1]),
    # object coordinates M_t^-1 (for the masks), and p(t+1) -> p(t) = M_t M_{t+1}^-1 (for flow).
    m = np.stack(motions)  # (L, T, 3, 3), q -> p
    m_inv = np.linalg.inv(m)  # p -> q
    to_grid = np.array([[2.0 / (side - 1), 0, -1.0], [0, 2.0 / (side - 1), -1.0], [0, 0, 1]])
    place = np.array(
        [
            [
                [st * math.cos(phi), -st * math.sin(phi), off[0]],
                [st * math.sin(phi), st * math.cos(phi), off[1]],
                [0, 0, 1.0],
            ]
            for st, phi, off in placements
        ]
    )  # (L, 3, 3)
    texel = (to_grid @ place)[:, None] @ m_inv  # (L, T, 3, 3)
    back = m[:, :-1] @ m_inv[:, 1:]  # (L, T-1, 3, 3)
    maps = _apply(
        np.concatenate([texel.reshape(-1, 3, 3), m_inv[1:].reshape(-1, 3, 3), back.reshape(-1, 3, 3)]), size
    )
    grid, q, source = maps.split([layers * frames, (layers - 1) * frames, layers * (frames - 1)])

    # Backward sampling: one grid_sample for all layers and frames (time stacked along height).
    tex = atlas[torch.as_tensor(texture_idx)]  # (L, 3, S, S)
    tex = (
        tex * torch.as_tensor(gain, dtype=torch.float32)[:, :, None, None]
        + torch.as_tensor(bias, dtype=torch.float32)[:, :, None, None]
    ).clamp(-1, 1)
    colour = F.grid_sample(
        tex,
        grid.reshape(layers, frames * size, size, 2),
        mode="bilinear",
        padding_mode="border",
        align_corners=True,
    )
    colour = colour.reshape(layers, 3, frames, size, size)
    q = q.reshape(layers - 1, frames, size, size, 2)  # object coordinates per object layer
    clip = colour[0]
    top = torch.zeros(frames, size, size, dtype=torch.long)  # topmost layer per pixel
    for layer in range(1, layers):
        zoom = np.sqrt(np.linalg.det(m[layer, :, :2, :2]))  # (T,) frame pixels per object unit
        pixel = torch.as_tensor(1.0 / zoom, dtype=torch.float32)[:, None, None]
        alpha = _shape_mask(shapes[layer], q[layer - 1], pixel)  # (T, H, W)
        clip = clip + alpha[None] * (colour[layer] - clip)  # (3, T, H, W), over-compositing
        top = torch.where(alpha > 0.5, layer, top)

    # Flow on frame t+1's grid, from the topmost layer there: p - M_t M_{t+1}^-1 p.
    source = source.reshape(layers, frames - 1, size, size, 2)
    idx = top[1:][None, ..., None].expand(1, -1, -1, -1, 2)
    source = source.gather(0, idx)[0]  # (T-1, H, W, 2)
    ys, xs = torch.meshgrid(
        torch.arange(size, dtype=torch.float32), torch.arange(size, dtype=torch.float32), indexing="ij"
    )
    flow = torch.stack([xs - source[..., 0], ys - source[..., 1]], dim=1)  # (T-1, 2, H, W)

    # Occlusion: the source falls outside frame t, or another layer is on top there in frame t.
    sx, sy = source[..., 0], source[..., 1]
    outside = (sx < 0) | (sx > size - 1) | (sy < 0) | (sy > size - 1)
    nx = sx.round().clamp(0, size - 1).long()
    ny = sy.round().clamp(0, size - 1).long()
    top_then = top[:-1][torch.arange(frames - 1)[:, None, None], ny, nx]  # nearest lookup
    occlusion = (outside | (top_then != top[1:]))[:, None]  # (T-1, 1, H, W)
    return clip.clamp(-1, 1).contiguous(), flow, occlusion


# ---------------------------------------------------------------------------------------------
# Dataset
# ---------------------------------------------------------------------------------------------


@contextlib.contextmanager
def _one_thread():
    """Run torch ops single-threaded, then restore the thread count.

    A clip is many small ops: intra-op threads barely help (DataLoader workers parallelise across
    clips, and run single-threaded anyway), and on a busy machine their spin-waits made generation
    20x slower in wall time and CPU time (measured: 8x64x64 clips, 2 cores, load 8: 380 vs 15 ms).
    """
    threads = torch.get_num_threads()
    if threads == 1:
        yield
        return
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


class SynthMotion(Dataset):
    """Procedural clips whose class is defined by motion only, with exact flow and occlusion.

    Items: `clip` (3,T,H,W) float in [-1,1] (T = clip_len, or clip_len+1 with `future`), `label`,
    `index`, `flow` (T-1,2,H,W) and `occlusion` (T-1,1,H,W) bool (see the module docstring).
    `speed` multiplies every motion magnitude (objects and background; 112/size gives a small clip
    the pixel speeds of a 112 px one), `camera` is the share of clips whose background drifts and
    `camera_speed` its range in px/frame at 112 px (before `speed`).
    Item i of a split is fixed by (seed, split, i); labels cycle (label = i % num_classes), so
    every split is balanced. `num_classes` keeps the first classes of `SYNTH_CLASSES`.
    `n` defaults to 2000 / 200 / 500 for train / val / test.
    """

    def __init__(
        self,
        split: str = "train",
        n: int | None = None,
        clip_len: int = 16,
        size: int = 112,
        seed: int = 0,
        future: bool = False,
        num_classes: int | None = None,
        speed: float = 1.0,
        camera: float = CAMERA_P,
        camera_speed: tuple[float, float] = BACKGROUND_SPEED,
    ):
        if split not in SPLITS:
            raise ValueError(f"SynthMotion: unknown split {split!r}; expected one of {SPLITS}")
        n = DEFAULT_N[split] if n is None else n
        if int(n) < 1:
            raise ValueError(f"SynthMotion: n must be >= 1, got {n}")
        if int(clip_len) < 2:
            raise ValueError(f"SynthMotion: clip_len must be >= 2, got {clip_len}")
        if int(size) < 16:
            raise ValueError(f"SynthMotion: size must be >= 16 pixels, got {size}")
        num_classes = len(SYNTH_CLASSES) if num_classes is None else int(num_classes)
        if not 2 <= num_classes <= len(SYNTH_CLASSES):
            raise ValueError(
                f"SynthMotion: num_classes must be in 2..{len(SYNTH_CLASSES)}, got {num_classes}"
            )
        if not 0 < float(speed) <= 10:
            raise ValueError(f"SynthMotion: speed must be in (0, 10], got {speed}")
        if not 0 <= float(camera) <= 1:
            raise ValueError(f"SynthMotion: camera must be a probability in [0, 1], got {camera}")
        if len(camera_speed) != 2 or not 0 <= float(camera_speed[0]) <= float(camera_speed[1]):
            raise ValueError(
                f"SynthMotion: camera_speed must be (low, high) with 0 <= low <= high, got {camera_speed!r}"
            )
        self.motion = {
            "speed": float(speed),
            "camera": float(camera),
            "camera_speed": (float(camera_speed[0]), float(camera_speed[1])),
        }
        self.split, self.n, self.clip_len, self.size = split, int(n), int(clip_len), int(size)
        self.seed, self.future = int(seed), bool(future)
        self.classes = list(SYNTH_CLASSES[:num_classes])
        self.skipped: list[tuple[str, str]] = []  # procedural: nothing can be bad

    def __len__(self) -> int:
        return self.n

    def label_of(self, index: int) -> int:
        """The label of item `index`, without rendering it."""
        return index % len(self.classes)

    def rng(self, index: int) -> np.random.Generator:
        """The generator of item `index`: its own stream per (seed, split, index)."""
        return np.random.default_rng([self.seed, SPLITS.index(self.split), index, 0x5EED])

    def __getitem__(self, index: int) -> dict:
        if not 0 <= index < self.n:
            raise IndexError(f"SynthMotion index {index} out of range for length {self.n}")
        label = self.label_of(index)
        frames = self.clip_len + int(self.future)
        with _one_thread():
            clip, flow, occlusion = render_clip(label, frames, self.size, self.rng(index), **self.motion)
        return {"clip": clip, "label": label, "index": index, "flow": flow, "occlusion": occlusion}
