"""Evaluation protocols: what a trained CGM-Net is scored on (Tables 1, 2-8, Fig. 6).

- `evaluate_motion`: ℓ1 warp error of the HR reconstructions (frames 1..T-1 from frames 0..T-2;
  Table 1 left, Table 6, Fig. 6 left), of the 1-step prediction (the last map applied to the last
  input frame vs the unseen frame T; Table 1 right with PSNR/SSIM), EPE of motion_to_flow(hr_maps)
  where the data has ground-truth flow, and all of these for the copy-the-last-frame baseline.
- `evaluate_action`: top-1/top-5 per inference pipeline (Tables 2-5, 7, 8; Fig. 6 right), with
  the scores of several test views (clips x crops) averaged per video.

Both decode in a DataLoader (workers, pinned memory for a GPU), send clips through the model in
passes no larger than a memory budget allows (`cgm.memory`), whatever the number of views, and
under torch.distributed score each rank's share and gather per-item results to every rank.

The metric functions themselves live in `cgm.metrics`.
"""

from __future__ import annotations

import math
from collections import deque

import numpy as np
import torch

from cgm import distributed as cgm_dist
from cgm.memory import clips_per_forward
from cgm.metrics import PSNR_CAP, epe, psnr, ssim
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


def _check_finite(dataset, items: list[dict], requested: list[int]) -> None:
    bad = [it.get("index", j) for it, j in zip(items, requested) if not torch.isfinite(_clip(it)).all()]
    if bad:
        raise ValueError(
            f"evaluation: clips {bad} of {type(dataset).__name__} hold NaN or Inf values; "
            "check the data (decoding, transforms)"
        )


def _clip(item: dict) -> torch.Tensor:
    return torch.as_tensor(item["clip"])


def _check_runtime(batch_size: int, workers: int) -> None:
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"evaluation batch_size must be an integer >= 1, got {batch_size!r}")
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 0:
        raise ValueError(f"evaluation workers must be an integer >= 0, got {workers!r}")


def _loaded(dataset, indices: list[int], *, batch_size: int, workers: int, device):
    """(requested indices, items) of `indices` in order, `batch_size` items at a time, decoded by
    `workers` DataLoader processes (0: in this one), into pinned memory for a GPU."""
    loader = torch.utils.data.DataLoader(
        dataset,
        sampler=indices,
        batch_size=batch_size,
        collate_fn=list,  # items as they are: clips of several shapes, strings, counts
        num_workers=workers,
        pin_memory=torch.device(device).type == "cuda",
    )
    requested = (indices[i : i + batch_size] for i in range(0, len(indices), batch_size))
    for chunk, items in zip(requested, loader):
        _check_finite(dataset, items, chunk)
        yield chunk, items


def _chunk_size(model, clip: torch.Tensor, views: int, *, batch_size: int, device, memory_gib) -> int:
    """Clips per forward pass: `batch_size` items with their `views` views, at most what the memory
    budget allows (`cgm.memory.clips_per_forward`, measured on `clip`, one model input)."""
    return max(
        1, min(batch_size * views, clips_per_forward(model, clip, device=device, memory_gib=memory_gib))
    )


class _Pending:
    """Clips waiting for a forward pass, each tagged with the slot (dataset index) it belongs to;
    `take(n)` hands out the first n, splitting a video's views across passes where needed."""

    def __init__(self):
        self.parts: deque[tuple[int, torch.Tensor]] = deque()
        self.rows = 0

    def add(self, slot: int, clips: torch.Tensor) -> None:
        self.parts.append((slot, clips))
        self.rows += len(clips)

    def take(self, n: int) -> tuple[torch.Tensor, list[int]]:
        clips, slots = [], []
        while n and self.parts:
            slot, part = self.parts[0]
            k = min(n, len(part))
            clips.append(part[:k])
            slots += [slot] * k
            if k == len(part):
                self.parts.popleft()
            else:
                self.parts[0] = (slot, part[k:])
            n -= k
            self.rows -= k
        return torch.cat(clips), slots


class _Sums:
    """Per-item sums and counts of named metrics, reduced in item order: the same numbers whichever
    rank scored which item."""

    def __init__(self):
        self.items: list[tuple[int, dict[str, tuple[float, float]]]] = []

    def add(self, slot: int, values: dict[str, tuple[float, float]]) -> None:
        self.items.append((slot, values))

    def result(self, gathered: list[list]) -> dict[str, float]:
        sums, counts = {}, {}
        for _, values in sorted((it for part in gathered for it in part), key=lambda it: it[0]):
            for k, (total, count) in values.items():
                sums[k] = sums.get(k, 0.0) + total
                counts[k] = counts.get(k, 0.0) + count
        out = {k: sums[k] / counts[k] for k in sums if counts[k] > 0}
        bad = sorted(k for k, v in out.items() if not math.isfinite(v))
        if bad:
            raise FloatingPointError(
                f"evaluation: metrics {bad} are not finite (NaN or Inf); the model's "
                "outputs are not finite: check its weights"
            )
        return out


def _motion_values(model, items: list[dict], t: int, device) -> list[dict[str, tuple[float, float]]]:
    """(sum, count) of every motion metric for each clip of `items` (one forward pass)."""
    clip = torch.stack([_clip(it) for it in items]).to(device, non_blocking=True).float()  # (B, 3, T+1, H, W)
    b = clip.shape[0]
    maps = model(clip[:, :, :t]).hr_maps  # (B, T, K*K, H, W)
    frames = clip.transpose(1, 2)  # (B, T+1, 3, H, W)
    pad = model.cfg.padding
    per_clip: dict[str, list[tuple[float, float]]] = {}

    def add(name: str, totals: torch.Tensor, counts) -> None:
        counts = counts.tolist() if isinstance(counts, torch.Tensor) else [counts] * b
        per_clip[name] = list(zip(totals.double().cpu().tolist(), counts))

    if t >= 2:
        recon = adaptive_warp(
            frames[:, : t - 1].flatten(0, 1), maps[:, : t - 1].flatten(0, 1), padding=pad
        )  # (B*(T-1), 3, H, W)
        target = frames[:, 1:t].flatten(0, 1)
        copy = frames[:, : t - 1].flatten(0, 1)
        for name, guess in (("l1_hr", recon), ("copy_l1_hr", copy)):
            per_frame = (guess - target).abs().flatten(1).mean(1).view(b, t - 1)  # (B, T-1)
            add(name, per_frame.double().sum(1), t - 1)
        if "flow" in items[0]:
            flow = motion_to_flow(maps[:, : t - 1].flatten(0, 1)).view(b, t - 1, 2, *maps.shape[-2:])
            gt = torch.stack([torch.as_tensor(it["flow"])[: t - 1] for it in items]).to(flow)
            valid = (
                ~torch.stack([torch.as_tensor(it["occlusion"])[: t - 1] for it in items]).to(device).bool()
            )
            n = valid.flatten(1).sum(1)  # (B,) valid pixels of each clip
            for name, guess in (("epe", flow), ("copy_epe", torch.zeros_like(gt))):
                totals = torch.stack(
                    [epe(guess[i], gt[i], valid[i]) * n[i] if n[i] else torch.zeros(()) for i in range(b)]
                )
                add(name, totals, n.cpu())
    pred = adaptive_warp(frames[:, t - 1], maps[:, t - 1], padding=pad)  # (B, 3, H, W)
    future, last = frames[:, t], frames[:, t - 1]
    for prefix, guess in (("", pred), ("copy_", last)):
        add(f"{prefix}l1_pred", (guess - future).abs().flatten(1).mean(1), 1)
        add(f"{prefix}psnr_pred", psnr(guess.clamp(-1, 1), future, max_db=PSNR_CAP, reduction="none"), 1)
        add(f"{prefix}ssim_pred", ssim(guess.clamp(-1, 1), future, reduction="none"), 1)
    return [{k: v[i] for k, v in per_clip.items()} for i in range(b)]


@torch.no_grad()
def evaluate_motion(
    model,
    dataset,
    *,
    batch_size: int = 8,
    max_clips: int | None = None,
    device: str | torch.device = "cpu",
    memory_gib: float | None = None,
    workers: int = 0,
) -> dict[str, float]:
    """Motion metrics of `model` (a CGMNet) on `dataset` (items with `clip` (3, T+1, H, W)).

    Returns l1_hr (reconstructions), l1_pred, psnr_pred, ssim_pred (1-step prediction), epe
    (non-occluded pixels, when items carry `flow`/`occlusion`), the same with a `copy_` prefix
    for the copy-the-last-frame baseline (zero flow for EPE), and `clips`.

    At most `batch_size` clips per forward pass, fewer where the memory budget (`memory_gib`,
    `cgm.memory`) asks; `workers` DataLoader processes decode. Under torch.distributed every rank
    must call it (it gathers): each scores its share of the clips and every rank returns the
    metrics of all of them, the same numbers as one process.
    """
    _check_runtime(batch_size, workers)
    indices = spread_indices(len(dataset), max_clips)
    if not indices:
        raise ValueError("evaluate_motion: the dataset is empty")
    t = model.cfg.clip_len
    first = _clip(dataset[indices[0]])
    if first.ndim != 4 or first.shape[1] != t + 1:
        raise ValueError(
            f"evaluate_motion needs clips (3, T+1={t + 1}, H, W) (future=True, "
            f"clip_len={t}), got {tuple(first.shape)}"
        )
    was_training = model.training
    model.eval()
    chunk = _chunk_size(model, first[:, :t], 1, batch_size=batch_size, device=device, memory_gib=memory_gib)
    sums = _Sums()
    mine = cgm_dist.shard_items(indices, cgm_dist.current(), block=chunk)
    for requested, items in _loaded(dataset, mine, batch_size=chunk, workers=workers, device=device):
        for slot, values in zip(requested, _motion_values(model, items, t, device)):
            sums.add(slot, values)
    model.train(was_training)
    return {**sums.result(cgm_dist.gather_to_all(sums.items)), "clips": float(len(indices))}


def _hits(scores: torch.Tensor, label: int) -> list[bool]:
    """Whether `label` is among the top-1 (and top-5, with 5 classes or more) of `scores` (K,)."""
    ks = (1, 5) if scores.shape[0] >= 5 else (1,)
    if not 0 <= label < scores.shape[0]:
        raise ValueError(
            f"evaluate_action: label {label} is not a class of the model (0..{scores.shape[0] - 1})"
        )
    top = scores.topk(ks[-1]).indices.tolist()
    return [label in top[:k] for k in ks]


@torch.no_grad()
def evaluate_action(
    model,
    dataset,
    pipelines=PIPELINES,
    *,
    batch_size: int = 8,
    max_clips: int | None = None,
    device: str | torch.device = "cpu",
    memory_gib: float | None = None,
    workers: int = 0,
) -> dict[str, float]:
    """Top-1/top-5 (%) per pipeline ("<pipeline>/top1", ...) of `model` on a labelled dataset.

    Items: `clip` (3, T', H, W) or, with several test views, (V, 3, T', H, W) and `views`; T' >= T
    (a future frame, if any, is dropped). View scores (softmax, fused per pipeline with
    cgm.network.fuse) are averaged per video before ranking.

    The views go through the model in passes of at most `batch_size` videos' views, fewer where the
    memory budget (`memory_gib`, `cgm.memory`) asks (a video's views may span passes); a video's
    scores are summed as its views come and ranked when the last one has, so memory does not grow
    with the number of views. `workers` DataLoader processes decode. Under torch.distributed every
    rank must call it (it gathers): each scores its share of the videos and every rank returns the
    metrics of all of them, the same numbers as one process (the passes hold the same clips;
    `cgm.distributed.shard_items`).
    """
    _check_runtime(batch_size, workers)
    indices = spread_indices(len(dataset), max_clips)
    if not indices:
        raise ValueError("evaluate_action: the dataset is empty")
    unknown = [p for p in pipelines if p not in PIPELINES]
    if unknown:
        raise ValueError(f"unknown pipelines {unknown}; valid: {', '.join(PIPELINES)}")
    t = model.cfg.clip_len
    was_training = model.training
    model.eval()
    first = _clip(dataset[indices[0]])
    views = first.shape[0] if first.ndim == 5 else 1
    probe = first[0] if first.ndim == 5 else first
    chunk = _chunk_size(
        model, probe[:, :t], views, batch_size=batch_size, device=device, memory_gib=memory_gib
    )
    pending, sums, left, labels = _Pending(), {}, {}, {}
    hits: list[tuple[int, dict[str, list[bool]]]] = []

    def forward(n: int) -> None:
        clips, slots = pending.take(n)
        logits = model(clips.to(device, non_blocking=True).float()).logits
        bad = sorted(h for h, v in logits.items() if not torch.isfinite(v).all())
        if bad:
            raise FloatingPointError(
                f"evaluation: the logits of heads {bad} are not finite (NaN or Inf); "
                "the model's outputs are not finite: check its weights"
            )
        probs = {p: fuse(logits, p).double().cpu() for p in pipelines}  # (n, K) per pipeline
        rows = torch.tensor(slots)
        for slot in dict.fromkeys(slots):  # in order
            mask = rows == slot
            for p in pipelines:
                sums[slot][p] += probs[p][mask].sum(0)
            left[slot] -= int(mask.sum())
            if left[slot] == 0:  # every view scored: the video's mean scores, ranked
                done, label = sums.pop(slot), labels.pop(slot)
                hits.append((slot, {p: _hits(done[p], label) for p in pipelines}))

    per_batch = max(1, chunk // views)  # videos decoded together, their views in passes of <= chunk
    mine = cgm_dist.shard_items(indices, cgm_dist.current(), block=per_batch)
    for requested, items in _loaded(dataset, mine, batch_size=per_batch, workers=workers, device=device):
        for slot, item in zip(requested, items):
            if "label" not in item:
                raise ValueError("evaluate_action needs a labelled dataset (items with `label`)")
            clip = _clip(item)
            clip = clip if clip.ndim == 5 else clip[None]  # (V, 3, T', H, W)
            pending.add(slot, clip[:, :, :t])
            sums[slot] = {p: 0.0 for p in pipelines}
            left[slot], labels[slot] = len(clip), int(item["label"])
        while pending.rows:  # each batch on its own: the passes are the same on any number of ranks
            forward(chunk)
    model.train(was_training)
    gathered = sorted((h for part in cgm_dist.gather_to_all(hits) for h in part), key=lambda h: h[0])
    results = {"clips": float(len(indices))}
    for p in pipelines:
        table = torch.tensor([h[p] for _, h in gathered], dtype=torch.float64)  # (videos, ks)
        for i, k in enumerate((1, 5)[: table.shape[1]]):
            results[f"{p}/top{k}"] = 100.0 * table[:, i].mean().item()
    return results
