"""cgm.metrics: metrics against closed forms, hand computations and scikit-image."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from skimage import data as skdata
from skimage.metrics import structural_similarity

from cgm.metrics import average_views, epe, psnr, split_mean, ssim, topk_accuracy, warp_l1


def _skimage_ssim(a: torch.Tensor, b: torch.Tensor) -> float:
    return structural_similarity(
        a.double().numpy(),
        b.double().numpy(),
        data_range=2.0,
        channel_axis=0,
        gaussian_weights=True,
        sigma=1.5,
        use_sample_covariance=False,
    )


def _to_unit(image: np.ndarray) -> torch.Tensor:
    """uint8 (H, W[, 3]) -> float (C, H, W) in [-1, 1]."""
    x = torch.from_numpy(image).float() / 127.5 - 1.0
    return x[None] if x.dim() == 2 else x.permute(2, 0, 1)


def test_warp_l1_by_hand():
    pred = torch.tensor([[0.5, -1.0], [1.0, 0.0]])
    target = torch.tensor([[0.0, -0.5], [1.0, 1.0]])
    assert warp_l1(pred, target) == pytest.approx((0.5 + 0.5 + 0.0 + 1.0) / 4)


def test_psnr_of_a_known_mse_is_the_closed_form():
    g = torch.Generator().manual_seed(0)
    target = torch.rand(3, 3, 16, 16, generator=g) * 2 - 1
    offsets = torch.tensor([0.1, 0.02, 0.5])  # constant error per image: MSE = offset**2
    pred = target + offsets.view(3, 1, 1, 1)
    per_image = psnr(pred, target, reduction="none")
    expected = 10 * torch.log10(4.0 / offsets.double() ** 2)
    torch.testing.assert_close(per_image, expected)
    assert psnr(pred, target) == pytest.approx(expected.mean().item())  # mean of per-image PSNR
    assert psnr(pred[0], target[0]) == pytest.approx(10 * math.log10(4.0 / 0.01))  # (C, H, W) input
    assert psnr(pred, target, data_range=1.0, reduction="none")[1].item() == pytest.approx(
        10 * math.log10(1.0 / 0.02**2)
    )
    assert psnr(target, target) == math.inf


def test_psnr_accepts_extra_leading_dims():
    g = torch.Generator().manual_seed(1)
    a, b = torch.rand(2, 4, 3, 8, 8, generator=g), torch.rand(2, 4, 3, 8, 8, generator=g)
    assert psnr(a, b, reduction="none").shape == (2, 4)
    assert psnr(a, b) == pytest.approx(psnr(a.flatten(0, 1), b.flatten(0, 1)))


def test_ssim_matches_skimage_on_random_images():
    g = torch.Generator().manual_seed(2)
    a = torch.rand(3, 40, 53, generator=g) * 2 - 1
    b = (a + 0.3 * torch.randn(3, 40, 53, generator=g)).clamp(-1, 1)
    assert ssim(a, b) == pytest.approx(_skimage_ssim(a, b), abs=1e-6)
    assert ssim(a, a) == pytest.approx(1.0, abs=1e-12)


@pytest.mark.parametrize("name", ["astronaut", "camera", "coffee"])
def test_ssim_matches_skimage_on_natural_images(name):
    image = _to_unit(getattr(skdata, name)()[::4, ::4])  # (C, H, W), a quarter size keeps it fast
    g = torch.Generator().manual_seed(3)
    shifted = torch.roll(image, shifts=(1, 2), dims=(-2, -1))  # a small motion
    noisy = (image + 0.05 * torch.randn(image.shape, generator=g)).clamp(-1, 1)
    for other in (shifted, noisy):
        assert ssim(other, image) == pytest.approx(_skimage_ssim(other, image), abs=1e-6)


def test_ssim_per_image_and_batch_mean():
    g = torch.Generator().manual_seed(4)
    a = torch.rand(4, 3, 24, 24, generator=g) * 2 - 1
    b = torch.rand(4, 3, 24, 24, generator=g) * 2 - 1
    per_image = ssim(a, b, reduction="none")
    assert per_image.shape == (4,)
    for i in range(4):
        assert per_image[i].item() == pytest.approx(_skimage_ssim(a[i], b[i]), abs=1e-6)
    assert ssim(a, b) == pytest.approx(per_image.mean().item())


def test_epe_by_hand():
    flow = torch.zeros(1, 2, 2, 2)
    gt = torch.zeros(1, 2, 2, 2)
    gt[0, 0, 0, 0], gt[0, 1, 0, 0] = 3.0, 4.0  # error 5 at (0, 0)
    gt[0, 0, 1, 1] = -1.0  # error 1 at (1, 1)
    assert epe(flow, gt) == pytest.approx(6.0 / 4)
    mask = torch.tensor([[[True, False], [False, True]]])
    assert epe(flow, gt, mask) == pytest.approx(3.0)
    assert epe(flow, gt, mask[:, None]) == pytest.approx(3.0)  # (N, 1, H, W) mask


def test_topk_accuracy_on_fixed_logits():
    scores = torch.tensor(
        [
            [0.1, 0.5, 0.2, 0.0, 0.3, 0.9],  # order: 5 1 4 2 0 3
            [2.0, 1.0, 0.0, -1.0, -2.0, -3.0],  # order: 0 1 2 3 4 5
            [0.0, 0.0, 1.0, 0.0, 0.0, 0.0],  # 2 first
            [5.0, 4.0, 3.0, 2.0, 1.0, 0.0],  # order: 0 1 2 3 4 5
        ]
    )
    labels = torch.tensor([5, 1, 2, 5])  # top-1 hit, top-2 hit, top-1 hit, rank 6 miss
    result = topk_accuracy(scores, labels, ks=(1, 2, 5))
    assert result == pytest.approx({"top1": 50.0, "top2": 75.0, "top5": 75.0})
    assert set(topk_accuracy(scores, labels)) == {"top1", "top5"}


def test_average_views_means_probabilities_per_video():
    probs = torch.tensor([[1.0, 0.0], [0.5, 0.5], [0.0, 1.0], [0.2, 0.8]])  # B=2 videos, V=2 views
    expected = torch.tensor([[0.75, 0.25], [0.1, 0.9]])
    torch.testing.assert_close(average_views(probs, views=2), expected)
    torch.testing.assert_close(average_views(probs.view(2, 2, 2), views=2), expected)
    logits = torch.randn(6, 5, generator=torch.Generator().manual_seed(5))
    torch.testing.assert_close(
        average_views(logits.softmax(-1), views=3), logits.softmax(-1).view(2, 3, 5).mean(1)
    )


def test_split_mean():
    assert split_mean({3: 90.0, 1: 88.0, 2: 89.0}) == pytest.approx(89.0)
    with pytest.raises(ValueError, match="splits 1, 2 and 3"):
        split_mean({1: 88.0, 2: 89.0})
    with pytest.raises(ValueError, match="splits 1, 2 and 3"):
        split_mean({0: 1.0, 1: 88.0, 2: 89.0})


def test_bad_inputs_raise_value_error():
    x = torch.zeros(2, 3, 16, 16)
    with pytest.raises(ValueError, match="same shape"):
        warp_l1(x, x[:1])
    with pytest.raises(ValueError, match="at least 3 dims"):
        psnr(torch.zeros(16, 16), torch.zeros(16, 16))
    with pytest.raises(ValueError, match="reduction"):
        psnr(x, x + 1, reduction="sum")
    with pytest.raises(ValueError, match="at least 11x11"):
        ssim(torch.zeros(3, 8, 32), torch.zeros(3, 8, 32))
    with pytest.raises(ValueError, match=r"\(\.\.\., 2, H, W\)"):
        epe(x, x)
    with pytest.raises(ValueError, match="no pixels"):
        epe(x[:, :2], x[:, :2], torch.zeros(2, 16, 16, dtype=torch.bool))
    with pytest.raises(ValueError, match="bool"):
        epe(x[:, :2], x[:, :2], torch.ones(2, 16, 16))
    with pytest.raises(ValueError, match="multiple of views"):
        average_views(torch.full((5, 4), 0.25), views=2)
    with pytest.raises(ValueError, match="softmax"):
        average_views(torch.randn(4, 3), views=2)
    with pytest.raises(ValueError, match=r"\(B, K\)"):
        topk_accuracy(torch.zeros(4), torch.zeros(4, dtype=torch.long))
    with pytest.raises(ValueError, match="every k"):
        topk_accuracy(torch.zeros(4, 3), torch.zeros(4, dtype=torch.long), ks=(1, 5))
    with pytest.raises(ValueError, match="integer"):
        topk_accuracy(torch.zeros(4, 3), torch.zeros(4))
    with pytest.raises(ValueError, match="labels must be in"):
        topk_accuracy(torch.zeros(4, 3), torch.tensor([0, 1, 2, 3]), ks=(1,))
