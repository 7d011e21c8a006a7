"""Clip transforms, identical for every frame of a clip: resize the short side, crop, flip, scale.

The paper (§4.2): "resize the video frames to 128px ... then randomly perform 5 crops (and flips)
of size 112x112"; SlowFast keeps its own input size (short side 256, crop 224). Testing takes the
centre crop, or three crops along the long side for multi-view testing. Output is float32 in
[-1, 1]. Tensor ops only (torchvision.transforms.v2.functional), no PIL per frame.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torchvision.transforms.v2 import functional as TF

CROP_MODES = ("five", "center", "three")


def five_crop_origins(height: int, width: int, size: int) -> list[tuple[int, int]]:
    """(top, left) of the 4 corner crops and the centre crop, in that order."""
    bottom, right = height - size, width - size
    return [(0, 0), (0, right), (bottom, 0), (bottom, right), (bottom // 2, right // 2)]


def three_crop_origins(height: int, width: int, size: int) -> list[tuple[int, int]]:
    """(top, left) of 3 crops along the long side (left/centre/right or top/centre/bottom)."""
    bottom, right = height - size, width - size
    if width >= height:
        return [(bottom // 2, 0), (bottom // 2, right // 2), (bottom // 2, right)]
    return [(0, right // 2), (bottom // 2, right // 2), (bottom, right // 2)]


def to_unit_range(frames: torch.Tensor) -> torch.Tensor:
    """uint8 [0, 255] (or float already in [0, 255]) -> float32 [-1, 1]."""
    return frames.float().div_(127.5).sub_(1.0)


@dataclass(frozen=True)
class ClipTransform:
    """Resize the short side to `resize` (None: keep), crop `size` x `size`, flip, scale to [-1, 1].

    crop: "five" (training: one of 4 corners + centre at random), "center" (testing),
    "three" (multi-view testing: 3 crops along the long side, stacked as views).
    flip: random horizontal flip with probability 1/2 (training only).
    """

    size: int = 112
    resize: int | None = 128
    crop: str = "five"
    flip: bool = True

    def __post_init__(self):
        if self.crop not in CROP_MODES:
            raise ValueError(f"crop={self.crop!r}; expected one of {CROP_MODES}")
        if self.size < 1:
            raise ValueError(f"size must be >= 1, got {self.size}")
        if self.resize is not None and self.resize < self.size:
            raise ValueError(
                f"resize={self.resize} is smaller than the crop size={self.size}; "
                "the short side must be at least the crop"
            )

    @property
    def views(self) -> int:
        """Number of views per clip this transform returns."""
        return 3 if self.crop == "three" else 1

    def __call__(self, clip: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """(3, T, H, W) uint8/float in [0, 255] -> float (3, T, size, size), or (3, 3, T, size, size)
        with crop="three" (views first). `generator` draws the crop and flip."""
        if clip.ndim != 4 or clip.shape[0] != 3:
            raise ValueError(f"expected a clip (3, T, H, W), got shape {tuple(clip.shape)}")
        frames = clip.permute(1, 0, 2, 3)  # (T, 3, H, W): torchvision ops take the frame axis first
        if self.resize is not None:
            frames = TF.resize(frames, [self.resize], antialias=True)
        height, width = frames.shape[-2:]
        if min(height, width) < self.size:
            raise ValueError(
                f"frames {height}x{width} are smaller than the crop size {self.size}; set resize >= size"
            )
        if self.crop == "five":
            origins = five_crop_origins(height, width, self.size)
            origins = [origins[int(torch.randint(5, (), generator=generator))]]
        elif self.crop == "center":
            origins = [five_crop_origins(height, width, self.size)[4]]
        else:
            origins = three_crop_origins(height, width, self.size)
        crops = [TF.crop(frames, top, left, self.size, self.size) for top, left in origins]
        if self.flip and bool(torch.randint(2, (), generator=generator)):
            crops = [TF.horizontal_flip(c) for c in crops]
        views = [to_unit_range(c).permute(1, 0, 2, 3) for c in crops]  # each (3, T, size, size)
        return views[0] if self.crop != "three" else torch.stack(views)  # (V, 3, T, size, size)


def train_transform(size: int = 112, resize: int | None = 128, *, flip: bool = True) -> ClipTransform:
    """The paper's training augmentation: short side `resize`, random 5-crop of `size`, random flip."""
    return ClipTransform(size=size, resize=resize, crop="five", flip=flip)


def test_transform(size: int = 112, resize: int | None = 128, *, crops: int = 1) -> ClipTransform:
    """Testing: short side `resize`, then the centre crop (crops=1) or 3 crops along the long side."""
    if crops not in (1, 3):
        raise ValueError(f"crops={crops}; expected 1 (centre) or 3 (left/centre/right)")
    return ClipTransform(size=size, resize=resize, crop="center" if crops == 1 else "three", flip=False)


test_transform.__test__ = False  # not a pytest test, despite its name
