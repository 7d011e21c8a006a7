"""Evaluation protocols: what a trained CGM-Net is scored on (Tables 1, 2-8, Fig. 6).

- `evaluate_motion`: ℓ1 warp error of the HR reconstructions (frames 1..T-1 from frames 0..T-2;
  Table 1 left, Table 6, Fig. 6 left), of the 1-step prediction (the last map applied to the last
  input frame vs the unseen frame T; Table 1 right with PSNR/SSIM), EPE of motion_to_flow(hr_maps)
  where the data has ground-truth flow, and all of these for the copy-the-last-frame baseline.
- `evaluate_action`: top-1/top-5 per inference pipeline (Tables 2-5, 7, 8; Fig. 6 right), with
  the scores of several test views (clips x crops) averaged per video.

The metric functions themselves live in `cgm.metrics`.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from cgm.metrics import PSNR_CAP, average_views, epe, psnr, ssim, topk_accuracy
from cgm.network import fuse
from cgm.warp import adaptive_warp, motion_to_flow

PIPELINES = ("backbone", "lr", "hr", "lr+hr")


def spread_indices(n: int, max_items: int | None) -> list[int]:
    """All of range(n), or `max_items` indices spread evenly over it (every part represented)."""
    if max_items is None or max_items >= n:
        return list(range(n))
    if max_items < 1:
        raise ValueError(f"max_items must be >= 1 or None, got {max_items}")
    return np.unique(np.linspace(0, n - 1, max_items).round().astype(int)).tolist()


def _batches(dataset, indices: list[int], batch_size: int):
    for i in range(0, len(indices), batch_size):
        items = [dataset[j] for j in indices[i : i + batch_size]]
        bad = [
            it.get("index", j)
            for it, j in zip(items, indices[i : i + batch_size])
            if not torch.isfinite(it["clip"]).all()
        ]
        if bad:
            raise ValueError(
                f"evaluation: clips {bad} of {type(dataset).__name__} hold NaN or Inf values; "
                "check the data (decoding, transforms)"
            )
        yield {
            k: torch.stack([torch.as_tensor(it[k]) for it in items])
            for k in items[0]
            if isinstance(items[0][k], (torch.Tensor, int))
        }


class _Mean:
    """Weighted running means of named metrics."""

    def __init__(self):
        self.sums, self.counts = {}, {}

    def add(self, name: str, value: float, count: int) -> None:
        self.sums[name] = self.sums.get(name, 0.0) + value * count
        self.counts[name] = self.counts.get(name, 0) + count

    def result(self) -> dict[str, float]:
        out = {k: self.sums[k] / self.counts[k] for k in self.sums}
        bad = sorted(k for k, v in out.items() if not math.isfinite(v))
        if bad:
            raise FloatingPointError(
                f"evaluation: metrics {bad} are not finite (NaN or Inf); the model's "
                "outputs are not finite: check its weights"
            )
        return out


@torch.no_grad()
def evaluate_motion(
    model, dataset, *, batch_size: int = 8, max_clips: int | None = None, device: str | torch.device = "cpu"
) -> dict[str, float]:
    """Motion metrics of `model` (a CGMNet) on `dataset` (items with `clip` (3, T+1, H, W)).

    Returns l1_hr (reconstructions), l1_pred, psnr_pred, ssim_pred (1-step prediction), epe
    (non-occluded pixels, when items carry `flow`/`occlusion`), the same with a `copy_` prefix
    for the copy-the-last-frame baseline (zero flow for EPE), and `clips`.
    """
    indices = spread_indices(len(dataset), max_clips)
    if not indices:
        raise ValueError("evaluate_motion: the dataset is empty")
    t = model.cfg.clip_len
    first = dataset[indices[0]]["clip"]
    if first.ndim != 4 or first.shape[1] != t + 1:
        raise ValueError(
            f"evaluate_motion needs clips (3, T+1={t + 1}, H, W) (future=True, "
            f"clip_len={t}), got {tuple(first.shape)}"
        )
    was_training = model.training
    model.eval()
    mean = _Mean()
    for batch in _batches(dataset, indices, batch_size):
        clip = batch["clip"].to(device).float()  # (B, 3, T+1, H, W)
        b, _, _, h, w = clip.shape
        maps = model(clip[:, :, :t]).hr_maps  # (B, T, K*K, H, W)
        frames = clip.transpose(1, 2)  # (B, T+1, 3, H, W)
        pad = model.cfg.padding
        if t >= 2:
            recon = adaptive_warp(
                frames[:, : t - 1].flatten(0, 1), maps[:, : t - 1].flatten(0, 1), padding=pad
            )  # (B*(T-1), 3, H, W)
            target = frames[:, 1:t].flatten(0, 1)
            copy = frames[:, : t - 1].flatten(0, 1)
            mean.add("l1_hr", (recon - target).abs().mean().item(), recon.shape[0])
            mean.add("copy_l1_hr", (copy - target).abs().mean().item(), recon.shape[0])
            if "flow" in batch:
                flow = motion_to_flow(maps[:, : t - 1].flatten(0, 1))  # (B*(T-1), 2, H, W)
                gt = batch["flow"][:, : t - 1].flatten(0, 1).to(flow)
                valid = ~batch["occlusion"][:, : t - 1].flatten(0, 1).to(device).bool()
                if valid.any():
                    n = int(valid.sum())
                    mean.add("epe", epe(flow, gt, valid), n)
                    mean.add("copy_epe", epe(torch.zeros_like(gt), gt, valid), n)
        pred = adaptive_warp(frames[:, t - 1], maps[:, t - 1], padding=pad)  # (B, 3, H, W)
        future, last = frames[:, t], frames[:, t - 1]
        for prefix, guess in (("", pred), ("copy_", last)):
            mean.add(f"{prefix}l1_pred", (guess - future).abs().mean().item(), b)
            mean.add(f"{prefix}psnr_pred", psnr(guess.clamp(-1, 1), future, max_db=PSNR_CAP), b)
            mean.add(f"{prefix}ssim_pred", ssim(guess.clamp(-1, 1), future), b)
    model.train(was_training)
    return {**mean.result(), "clips": float(len(indices))}


@torch.no_grad()
def evaluate_action(
    model,
    dataset,
    pipelines=PIPELINES,
    *,
    batch_size: int = 8,
    max_clips: int | None = None,
    device: str | torch.device = "cpu",
) -> dict[str, float]:
    """Top-1/top-5 (%) per pipeline ("<pipeline>/top1", ...) of `model` on a labelled dataset.

    Items: `clip` (3, T', H, W) or, with several test views, (V, 3, T', H, W) and `views`; T' >= T
    (a future frame, if any, is dropped). View scores (softmax, fused per pipeline with
    cgm.network.fuse) are averaged per video before ranking.
    """
    indices = spread_indices(len(dataset), max_clips)
    if not indices:
        raise ValueError("evaluate_action: the dataset is empty")
    unknown = [p for p in pipelines if p not in PIPELINES]
    if unknown:
        raise ValueError(f"unknown pipelines {unknown}; valid: {', '.join(PIPELINES)}")
    t = model.cfg.clip_len
    was_training = model.training
    model.eval()
    scores = {p: [] for p in pipelines}
    labels = []
    for batch in _batches(dataset, indices, batch_size):
        if "label" not in batch:
            raise ValueError("evaluate_action needs a labelled dataset (items with `label`)")
        clip = batch["clip"].to(device).float()
        views = clip.shape[1] if clip.ndim == 6 else 1
        clip = clip.flatten(0, 1) if clip.ndim == 6 else clip  # (B*V, 3, T', H, W), view-consecutive
        logits = model(clip[:, :, :t]).logits
        bad = sorted(h for h, v in logits.items() if not torch.isfinite(v).all())
        if bad:
            raise FloatingPointError(
                f"evaluation: the logits of heads {bad} are not finite (NaN or Inf); "
                "the model's outputs are not finite: check its weights"
            )
        for p in pipelines:
            scores[p].append(average_views(fuse(logits, p), views).cpu())  # (B, K)
        labels.append(batch["label"])
    labels = torch.cat(labels)
    model.train(was_training)
    results = {"clips": float(len(indices))}
    for p in pipelines:
        s = torch.cat(scores[p])
        ks = (1, 5) if s.shape[1] >= 5 else (1,)
        results.update({f"{p}/{k}": v for k, v in topk_accuracy(s, labels, ks).items()})
    return results
