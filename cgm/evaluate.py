"""Kept for old imports (`from cgm.evaluate import psnr`): the metrics live in `cgm.metrics`."""

from cgm.metrics import (  # noqa: F401
    Reduction,
    average_views,
    epe,
    psnr,
    split_mean,
    ssim,
    topk_accuracy,
    warp_l1,
)
