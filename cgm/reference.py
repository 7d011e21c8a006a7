"""Two references for the motion experiments: how much room there is, and what a plain network reaches.

- `best_tap(prev, nxt, k)` (the tap oracle): per pixel, the best single tap of the k x k window (the lowest
  ℓ1 that any one-hot motion map reaches, Eq. 1 with border padding), averaged. A motion map that
  blends taps can go lower; a method that moves whole pixels cannot.
- `block_matching_motion(k)`: soft block matching of frame t+1 in frame t over the k x k taps, no
  learning (the prior of CGM-Net's `hr_prior="cost"` before training).
- `matching_flow_motion(k)`: the sub-pixel block-matching flow with a coarse level
  (`cgm.upsample.matching_flow`) as a bilinear k x k map, no learning (the prior of CGM-Net's
  `hr_prior="cue_flow"` before training).
- `KernelPredictor`: a small 2D U-Net that sees frames t and t+1 (6 channels) and predicts a
  k x k softmax kernel per pixel, applied with Eq. 1. It has the same output and loss as CGM-Net's
  HR branch, without the video encoder, the LR decoder or CGMUL: a yardstick for what a budget buys.

Both score on the same frame pairs as Table 1 (`cgm.motion_table.score_motion`): `oracle_motion` and
`kernel_motion` are `MotionFn`s.
"""

from __future__ import annotations

import time

import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from cgm.losses import photometric_loss
from cgm.upsample import flow_kernel, matching_cost, matching_flow
from cgm.warp import adaptive_warp, motion_to_flow, softmax_filters


def best_tap(prev: torch.Tensor, nxt: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Per pixel, the single tap of the k x k window that best predicts `nxt` from `prev`.

    prev, nxt (N, C, H, W) -> (reconstruction (N, C, H, W), its per-pixel ℓ1 (N, 1, H, W), the
    channel mean). Border padding and Eq. 1's sign: tap (dy, dx) reads prev[y - dy, x - dx].
    """
    if prev.shape != nxt.shape or prev.ndim != 4:
        raise ValueError(
            f"expected two (N, C, H, W) frames of one shape, got {tuple(prev.shape)} and {tuple(nxt.shape)}"
        )
    if k < 1 or k % 2 == 0:
        raise ValueError(f"k must be a positive odd filter size, got {k}")
    r = k // 2
    padded = F.pad(prev, (r, r, r, r), mode="replicate")
    h, w = prev.shape[-2:]
    best, best_err = prev, (prev - nxt).abs().mean(dim=1, keepdim=True)  # the centre tap
    for dy in range(-r, r + 1):
        for dx in range(-r, r + 1):
            shifted = padded[..., r - dy : r - dy + h, r - dx : r - dx + w]
            err = (shifted - nxt).abs().mean(dim=1, keepdim=True)  # (N, 1, H, W)
            better = err < best_err
            best_err = torch.where(better, err, best_err)
            best = torch.where(better, shifted, best)
    return best, best_err


def oracle_motion(k: int):
    """The tap oracle as a `MotionFn` of `cgm.baselines`: the per-pixel best-tap reconstruction
    (it looks at frame t+1, so it is an oracle, not a method) and no flow."""

    @torch.no_grad()
    def motion(clip: torch.Tensor) -> tuple[torch.Tensor, None]:
        frames = clip.transpose(0, 1).float()  # (T, 3, H, W)
        return best_tap(frames[:-1], frames[1:], k)[0], None

    return motion


def block_matching_motion(k: int, *, patch: int = 3, tau: float = 0.01):
    """Soft block matching as a `MotionFn`, no learning: per pixel, a softmax over the k x k taps of
    -cost / tau, the 3x3-patch matching cost of frame t+1 in frame t (`cgm.upsample.matching_cost`).
    This is CGM-Net's `hr_prior="cost"` at its initial temperature with CGMUL adding nothing: the
    line a trained model with that prior has to improve on. Frames in [-1, 1]."""

    if tau <= 0:
        raise ValueError(f"tau must be > 0, got {tau}")

    @torch.no_grad()
    def motion(clip: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        frames = clip.transpose(0, 1).float()  # (T, 3, H, W)
        maps = torch.softmax(-matching_cost(frames[:-1], frames[1:], k, patch) / tau, dim=1)
        return adaptive_warp(frames[:-1], maps), motion_to_flow(maps)

    return motion


def matching_flow_motion(k: int, *, coarse: bool = True, shift: bool = False, still: bool = False):
    """The matching flow as a `MotionFn`, no learning: `cgm.upsample.matching_flow` of frame t+1 in
    frame t (its `coarse`, `shift` and `still` options), as the bilinear k x k map that moves by it
    (`flow_kernel`, clamped to the window).
    This is CGM-Net's `hr_prior="cue_flow"` with CGMUL adding nothing (and no floor): the line a
    trained model with that prior has to improve on. Frames in [-1, 1]."""

    @torch.no_grad()
    def motion(clip: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        frames = clip.transpose(0, 1).float()  # (T, 3, H, W)
        flow = matching_flow(frames[:-1], frames[1:], k, coarse=coarse, shift=shift, still=still)
        maps = flow_kernel(flow, k)  # (T-1, k*k, H, W)
        return adaptive_warp(frames[:-1], maps), motion_to_flow(maps)

    return motion


def _block(c_in: int, c_out: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, 3, padding=1),
        nn.ReLU(inplace=True),
        nn.Conv2d(c_out, c_out, 3, padding=1),
        nn.ReLU(inplace=True),
    )


class KernelPredictor(nn.Module):
    """Frames t and t+1 (N, 3, H, W) each -> a k x k softmax motion map (N, k*k, H, W).

    A 3-level U-Net (`channels` per level, max-pool down, bilinear up, skip concatenation); the
    last conv is zero-initialised, so training starts from the uniform k x k blur.
    """

    def __init__(self, k: int = 9, channels: tuple[int, int, int] = (24, 48, 96)):
        super().__init__()
        if k < 1 or k % 2 == 0:
            raise ValueError(f"k must be a positive odd filter size, got {k}")
        c1, c2, c3 = channels
        self.k = k
        self.enc1, self.enc2, self.enc3 = _block(6, c1), _block(c1, c2), _block(c2, c3)
        self.dec2, self.dec1 = _block(c3 + c2, c2), _block(c2 + c1, c1)
        self.out = nn.Conv2d(c1, k * k, 3, padding=1)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def forward(self, prev: torch.Tensor, nxt: torch.Tensor) -> torch.Tensor:
        if prev.shape != nxt.shape or prev.ndim != 4 or prev.shape[1] != 3:
            raise ValueError(
                f"expected two (N, 3, H, W) frames of one shape, got {tuple(prev.shape)} "
                f"and {tuple(nxt.shape)}"
            )
        if prev.shape[-1] % 4 or prev.shape[-2] % 4:
            raise ValueError(f"H and W must be divisible by 4, got {tuple(prev.shape[-2:])}")
        e1 = self.enc1(torch.cat([prev, nxt], dim=1))  # (N, c1, H, W)
        e2 = self.enc2(F.max_pool2d(e1, 2))  # (N, c2, H/2, W/2)
        e3 = self.enc3(F.max_pool2d(e2, 2))  # (N, c3, H/4, W/4)
        up = F.interpolate(e3, size=e2.shape[-2:], mode="bilinear", align_corners=False)
        d2 = self.dec2(torch.cat([up, e2], dim=1))
        up = F.interpolate(d2, size=e1.shape[-2:], mode="bilinear", align_corners=False)
        d1 = self.dec1(torch.cat([up, e1], dim=1))
        return softmax_filters(self.out(d1))  # (N, k*k, H, W); flushes subnormal taps (cgm.warp)


def kernel_motion(model: KernelPredictor):
    """A trained KernelPredictor as a `MotionFn`: reconstructions of frames 1..T-1 and their flows."""
    model.eval()

    @torch.no_grad()
    def motion(clip: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        frames = clip.transpose(0, 1).float()  # (T, 3, H, W)
        maps = model(frames[:-1], frames[1:])  # (T-1, k*k, H, W)
        return adaptive_warp(frames[:-1], maps), motion_to_flow(maps)

    return motion


def train_kernel_predictor(
    train_set,
    *,
    steps: int,
    batch_size: int = 8,
    lr: float = 1e-3,
    weighting: str = "motion",
    k: int = 9,
    seed: int = 0,
    log_every: int = 50,
    progress: bool = True,
) -> tuple[KernelPredictor, list[dict]]:
    """Train a KernelPredictor on the frame pairs of `train_set` (items with `clip` (3, T, H, W);
    one random adjacent pair per clip) with the HR loss of CGM-Net (`cgm.losses.photometric_loss`,
    Charbonnier, `weighting` "uniform" or "motion"), Adam at `lr`. Returns (model, log) where the log
    has the mean loss and seconds of every `log_every` steps."""

    torch.manual_seed(seed)
    model = KernelPredictor(k)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    g = torch.Generator().manual_seed(seed)
    log, total, start = [], 0.0, time.time()
    for step in tqdm(range(1, steps + 1), desc="reference", unit="step", disable=not progress):
        items = torch.randint(0, len(train_set), (batch_size,), generator=g).tolist()
        clips = torch.stack([train_set[i]["clip"] for i in items])  # (B, 3, T, H, W)
        t = int(torch.randint(0, clips.shape[2] - 1, (1,), generator=g))
        prev, nxt = clips[:, :, t], clips[:, :, t + 1]  # (B, 3, H, W)
        pred = adaptive_warp(prev, model(prev, nxt))
        loss = photometric_loss(pred[:, :, None], nxt[:, :, None], prev[:, :, None], weighting)
        opt.zero_grad()
        loss.backward()
        opt.step()
        total += loss.item()
        if step % log_every == 0:
            log.append({"step": step, "loss": total / log_every, "seconds": time.time() - start})
            total = 0.0
    return model.eval(), log
