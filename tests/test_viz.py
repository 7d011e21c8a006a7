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


@pytest.mark.parametrize(
    "u, v, dominant, weakest", [(1, 0, 0, 1), (-1, 0, 2, 0), (0, 1, 0, 2), (0, -1, 2, 1)]
)
def test_flow_to_rgb_directions(u, v, dominant, weakest):
    """Middlebury wheel (y down): right red, left cyan-blue, down orange-yellow, up blue-violet."""
    rgb = flow_to_rgb(uniform_flow(u, v), max_mag=1.0)[0, 0].astype(int)
    assert rgb.argmax() == dominant and rgb.argmin() == weakest, rgb


def test_flow_to_rgb_magnitude_saturation():
    weak = flow_to_rgb(uniform_flow(0.25, 0), max_mag=1.0)[0, 0].astype(int)
    strong = flow_to_rgb(uniform_flow(1.0, 0), max_mag=1.0)[0, 0].astype(int)
    over = flow_to_rgb(uniform_flow(2.0, 0), max_mag=1.0)[0, 0].astype(int)
    assert weak.min() > strong.min()  # weaker motion is closer to white
    assert over.max() < strong.max()  # beyond max_mag: darkened
    # default max_mag = the field's largest magnitude: scaling the flow changes nothing
    f = torch.randn(2, 6, 7)
    assert np.abs(flow_to_rgb(f).astype(int) - flow_to_rgb(3 * f)).max() <= 1


def test_flow_to_rgb_accepts_numpy_and_rejects_bad_shapes():
    assert flow_to_rgb(np.zeros((2, 3, 3), np.float32)).shape == (3, 3, 3)
    with pytest.raises(ValueError):
        flow_to_rgb(torch.zeros(3, 4, 4))
    with pytest.raises(ValueError):
        flow_to_rgb(torch.zeros(2, 4, 4), max_mag=0)


@pytest.mark.slow
def test_clip_to_images_and_show_clip():
    clip = torch.linspace(-1, 1, 3 * 4 * 6 * 6).view(3, 4, 6, 6)
    frames = clip_to_images(clip)
    assert frames.shape == (4, 6, 6, 3) and frames.dtype == np.uint8
    assert frames.min() == 0 and frames.max() == 255
    axes = show_clip(clip, torch.randn(3, 2, 6, 6), max_frames=3)
    assert axes.shape == (2, 3)
    with pytest.raises(ValueError):
        clip_to_images(torch.zeros(4, 6, 6))


# ----------------------------------------------------------------------------- motion maps, predictions, explorer


def one_hot_maps(k: int, dy: int, dx: int, h: int = 12, w: int = 16) -> torch.Tensor:
    r = k // 2
    m = torch.zeros(k * k, h, w)
    m[(dy + r) * k + (dx + r)] = 1
    return m


def test_filter_at_puts_tap_dy_dx_at_row_dy_col_dx():
    from cgm.viz import filter_at

    kernel = filter_at(one_hot_maps(5, dy=-1, dx=2), 3, 4)
    assert kernel.shape == (5, 5)
    assert kernel[2 - 1, 2 + 2] == 1 and kernel.sum() == 1  # right of centre = moves right
    with pytest.raises(ValueError, match="K odd"):
        filter_at(torch.zeros(8, 4, 4), 0, 0)
    with pytest.raises(ValueError, match="outside"):
        filter_at(one_hot_maps(3, 0, 0), 12, 0)


def test_plot_motion_maps_layout_and_flow_colour():
    import matplotlib.pyplot as plt

    from cgm.viz import plot_motion_maps

    frames = [torch.rand(3, 12, 16) * 2 - 1, torch.rand(3, 12, 16) * 2 - 1]
    maps = [one_hot_maps(9, 0, 3), one_hot_maps(9, 2, 0)]
    fig = plot_motion_maps(frames, maps, [[(2, 3), (6, 8)], [(5, 5)]], titles=["a", "b"])
    axes = np.array(fig.axes).reshape(2, 4)
    flow_image = axes[0, 1].get_images()[0].get_array()
    assert flow_image[0, 0].argmax() == 0  # motion to the right: red
    assert axes[1, 3].axison is False  # the second row has one pixel only
    assert axes[0, 2].get_images()[0].get_array().shape == (9, 9)
    plt.close(fig)
    with pytest.raises(ValueError, match="as many"):
        plot_motion_maps(frames, maps[:1], [[(0, 0)]])


def test_plot_predictions_error_maps():
    import matplotlib.pyplot as plt

    from cgm.viz import error_map, plot_predictions

    target = torch.zeros(3, 8, 8)
    good, bad = target + 0.1, target - 0.5
    assert np.allclose(error_map(bad, target), 0.5)
    axes = plot_predictions(target, {"good": good, "bad": bad}, last=target)
    assert axes.shape == (2, 4)
    assert [a.get_title() for a in axes[0]] == ["last input", "truth", "good", "bad"]
    assert axes[1, 2].get_title() == "ℓ1 0.1000" and axes[1, 1].axison is False
    plt.close("all")


@pytest.mark.slow
def test_motion_explorer_builds_updates_and_draws_headless():
    import matplotlib.pyplot as plt

    from cgm.viz import MotionExplorer, MotionSample

    calls = []

    def load(dataset, index):
        calls.append((dataset, index))
        clip = torch.rand(3, 4, 16, 16) * 2 - 1
        return MotionSample(
            clip,
            one_hot_maps(9, 0, 1, 16, 16).expand(3, -1, -1, -1),
            one_hot_maps(3, 0, 0, 4, 4).expand(3, -1, -1, -1),
        )

    explorer = MotionExplorer(load, {"natural": 2, "synthmotion": 1})
    assert explorer.frame.max == 2 and explorer.y.max == 15 and explorer.x.max == 15
    assert explorer.sample().scale == 4
    fig = explorer.draw()
    assert len(fig.axes) == 6 and "+1.00" in fig.axes[0].get_title()
    assert explorer.image.value == b""
    explorer.update()  # no frontend: renders the PNG into the Image widget
    first = explorer.image.value
    assert first[:8] == b"\x89PNG\r\n\x1a\n"
    explorer.frame.value = 2  # a slider redraws
    assert explorer.image.value[:8] == first[:8] and explorer.image.value != first
    explorer.clip.value = 1
    explorer.dataset.value = "synthmotion"
    assert explorer.clip.max == 0
    assert calls == [("natural", 0), ("natural", 1), ("synthmotion", 0)]
    plt.close("all")


def test_pick_pixels_largest_motion_apart_and_inside():
    from cgm.viz import pick_pixels

    flow = torch.zeros(2, 20, 20)
    flow[0, 5, 5], flow[0, 5, 6], flow[1, 14, 12], flow[0, 0, 0] = 3.0, 2.9, -2.0, 9.0
    assert pick_pixels(flow, 2, min_dist=4, margin=2) == [(5, 5), (14, 12)]  # (0,0) is on the border
    assert len(pick_pixels(flow, 5, min_dist=4, margin=2)) == 5
    with pytest.raises(ValueError, match="flow"):
        pick_pixels(torch.zeros(3, 4, 4))


def test_plot_flow_comparison_titles_each_method_with_its_epe_on_valid_pixels():
    import matplotlib.pyplot as plt

    from cgm import viz

    frames = [torch.zeros(3, 8, 8), torch.zeros(3, 8, 8)]
    truth = [torch.zeros(2, 8, 8), torch.ones(2, 8, 8)]
    off = [t.clone() for t in truth]
    off[0][0] += 3.0  # 3 px off in x everywhere on the first frame
    off[1][0, :4] += 4.0  # 4 px off on the top half of the second, which is masked out
    valid = [torch.ones(8, 8, dtype=torch.bool), torch.zeros(8, 8, dtype=torch.bool)]
    valid[1][4:] = True
    fig = viz.plot_flow_comparison(frames, {"ground truth": truth, "a method": off}, valid=valid)
    titles = [ax.get_title() for ax in fig.axes]
    assert titles[:3] == ["frame", "ground truth", "a method\nEPE 3.00 px"]
    assert titles[5] == "EPE 0.00 px"  # the second row: only the unmasked half counts
    with pytest.raises(ValueError, match="one flow per frame"):
        viz.plot_flow_comparison(frames, {"a method": off[:1]})
    plt.close(fig)
