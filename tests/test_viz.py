"""Flow colours and clip figures."""

import matplotlib

matplotlib.use("Agg")

import numpy as np
import pytest
import torch

from cgm.viz import clip_to_images, flow_to_rgb, show_clip


def uniform_flow(u: float, v: float, h: int = 4, w: int = 5) -> torch.Tensor:
    return torch.tensor([u, v]).view(2, 1, 1).expand(2, h, w).clone()


def test_flow_to_rgb_shape_dtype_and_zero_is_white():
    rgb = flow_to_rgb(torch.zeros(2, 4, 5))
    assert rgb.shape == (4, 5, 3) and rgb.dtype == np.uint8
    assert (rgb == 255).all()


@pytest.mark.parametrize("u, v, dominant, weakest", [(1, 0, 0, 1), (-1, 0, 2, 0), (0, 1, 0, 2),
                                                     (0, -1, 2, 1)])
def test_flow_to_rgb_directions(u, v, dominant, weakest):
    """Middlebury wheel (y down): right red, left cyan-blue, down orange-yellow, up blue-violet."""
    rgb = flow_to_rgb(uniform_flow(u, v), max_mag=1.0)[0, 0].astype(int)
    assert rgb.argmax() == dominant and rgb.argmin() == weakest, rgb


def test_flow_to_rgb_magnitude_saturation():
    weak = flow_to_rgb(uniform_flow(0.25, 0), max_mag=1.0)[0, 0].astype(int)
    strong = flow_to_rgb(uniform_flow(1.0, 0), max_mag=1.0)[0, 0].astype(int)
    over = flow_to_rgb(uniform_flow(2.0, 0), max_mag=1.0)[0, 0].astype(int)
    assert weak.min() > strong.min()        # weaker motion is closer to white
    assert over.max() < strong.max()        # beyond max_mag: darkened
    # default max_mag = the field's largest magnitude: scaling the flow changes nothing
    f = torch.randn(2, 6, 7)
    assert np.abs(flow_to_rgb(f).astype(int) - flow_to_rgb(3 * f)).max() <= 1


def test_flow_to_rgb_accepts_numpy_and_rejects_bad_shapes():
    assert flow_to_rgb(np.zeros((2, 3, 3), np.float32)).shape == (3, 3, 3)
    with pytest.raises(ValueError):
        flow_to_rgb(torch.zeros(3, 4, 4))
    with pytest.raises(ValueError):
        flow_to_rgb(torch.zeros(2, 4, 4), max_mag=0)


def test_clip_to_images_and_show_clip():
    clip = torch.linspace(-1, 1, 3 * 4 * 6 * 6).view(3, 4, 6, 6)
    frames = clip_to_images(clip)
    assert frames.shape == (4, 6, 6, 3) and frames.dtype == np.uint8
    assert frames.min() == 0 and frames.max() == 255
    axes = show_clip(clip, torch.randn(3, 2, 6, 6), max_frames=3)
    assert axes.shape == (2, 3)
    with pytest.raises(ValueError):
        clip_to_images(torch.zeros(4, 6, 6))
