"""Peak memory of view-averaged evaluation with 1 and with 30 test views per video, at the paper's
input shape (16x112x112) and a narrow CGM-Net, under the memory budget and without one.

    python benchmarks/eval_memory.py                        # r3d50, width 0.25, 4 videos, CPU
    python benchmarks/eval_memory.py --backbone r3d18 --width 0.5 --videos 2

Each measurement runs in a fresh process: the peak resident memory (VmHWM) minus the resident size
before evaluation, and the largest number of clips any forward pass saw. "budget" is
`evaluate_action` as the runs call it (the CPU default budget, `cgm.memory`); "one pass per batch"
gives it a budget so large that every pass takes the batch's videos (up to 8) with all their views,
what evaluation did before passes were bounded. That mode is only run when the bytes it needs
(`cgm.memory.forward_bytes`, measured) are below --max-gib; above, the measured bytes per clip
times its clips are printed instead. The videos are random clips made in memory, so the figures
are the model's and the batching's, not a decoder's.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp

import torch
from _proc import proc_status_kib  # benchmarks/ is on sys.path when a script runs

from cgm.memory import GIB, forward_bytes
from cgm.network import CGMConfig, CGMNet
from cgm.protocols import evaluate_action


class RandomVideos(torch.utils.data.Dataset):
    """`n` labelled videos of `views` random views (3, T, S, S), made on demand (seeded by index)."""

    def __init__(self, n: int, views: int, clip_len: int, size: int, classes: int):
        self.n, self.views, self.shape, self.classes = n, views, (3, clip_len, size, size), classes

    def __len__(self):
        return self.n

    def __getitem__(self, i):
        g = torch.Generator().manual_seed(i)
        clip = torch.rand((self.views, *self.shape), generator=g) * 2 - 1
        return {"clip": clip if self.views > 1 else clip[0], "label": i % self.classes, "index": i}


def measure(cfg: CGMConfig, views: int, videos: int, memory_gib: float | None) -> dict:
    torch.set_num_threads(1)
    torch.manual_seed(0)
    model = CGMNet(cfg).eval()
    data = RandomVideos(videos, views, cfg.clip_len, cfg.size, cfg.num_classes)
    passes = []
    model.register_forward_pre_hook(lambda m, args: passes.append(args[0].shape[0]))
    before = proc_status_kib("VmRSS")
    evaluate_action(model, data, batch_size=8, memory_gib=memory_gib)
    return {"peak_mib": (proc_status_kib("VmHWM") - before) / 1024, "largest_pass": max(passes[2:])}


def _child(queue, *args):
    queue.put(measure(*args))


def in_fresh_process(*args) -> dict:
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    p = ctx.Process(target=_child, args=(queue, *args))
    p.start()
    out = queue.get()
    p.join()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--backbone", default="r3d50")
    parser.add_argument("--width", type=float, default=0.25)
    parser.add_argument("--videos", type=int, default=4)
    parser.add_argument("--max-gib", type=float, default=4.0, help="run no mode needing more (GiB)")
    args = parser.parse_args()
    cfg = CGMConfig(backbone=args.backbone, width=args.width, clip_len=16, size=112, num_classes=400)
    torch.set_num_threads(1)
    torch.manual_seed(0)
    fixed, per_clip = forward_bytes(CGMNet(cfg).eval(), torch.rand(3, 16, 112, 112), "cpu")
    print(f"{args.backbone} width {args.width}, 16x112x112, {args.videos} videos, batch 8 videos, 1 thread")
    print(f"a forward pass, measured: {fixed / 2**20:.0f} MiB + {per_clip / 2**20:.0f} MiB per clip")
    print(f"{'views':>5s} {'passes':22s} {'peak MiB':>9s} {'largest pass (clips)':>21s}")
    for views in (1, 30):
        for label, gib in (("budget (CPU default)", None), ("one pass per batch", 1e6)):
            clips = min(args.videos, 8) * views
            if gib is not None and fixed + clips * per_clip > args.max_gib * GIB:
                need = (fixed + clips * per_clip) / 2**20
                print(f"{views:5d} {label:22s} {need:9.0f} {clips:21d}   (not run: measured bytes x clips)")
                continue
            r = in_fresh_process(cfg, views, args.videos, gib)
            print(f"{views:5d} {label:22s} {r['peak_mib']:9.0f} {r['largest_pass']:21d}")


if __name__ == "__main__":
    main()
