"""Kept for old imports (`from cgm.evaluate import psnr`): the metrics live in `cgm.metrics`."""

from cgm.metrics import (Reduction, average_views, epe, psnr, split_mean, ssim,  # noqa: F401
                         topk_accuracy, warp_l1)
