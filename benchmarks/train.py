"""Training throughput of the smoke profile on CPU: steps/s, clips/s and data-loader stall.

    python benchmarks/train.py [--experiment table6/cgmul] [--steps 20] [--workers 0 2]

Stall = the fraction of each step's wall time spent waiting for the next batch (the Trainer
measures it per log window; here over the timed steps, after 3 warm-up steps). The machine's load
is printed too: on a shared CPU the numbers move with it.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

import torch

from cgm import experiments as ex


def measure(name: str, steps: int, workers: int) -> dict:
    warm = 3
    cfg = ex.resolve(name, steps=warm + steps, num_workers=workers, log_every=1)
    with tempfile.TemporaryDirectory() as out:
        trainer = ex.train_experiment(cfg, out, progress=False)
    rows = trainer.history[warm:]
    step_s = sum(cfg.train.batch_size / r["clips_per_s"] for r in rows) / len(rows)
    stall = sum(r["data_wait_frac"] * cfg.train.batch_size / r["clips_per_s"] for r in rows) / (step_s * len(rows))
    return {"experiment": name, "workers": workers, "batch": cfg.train.batch_size,
            "size": f"{cfg.model.clip_len}x{cfg.model.size}", "steps/s": 1 / step_s,
            "clips/s": cfg.train.batch_size / step_s, "stall": stall,
            "smoke run (s)": step_s * ex.SMOKE_STEPS[cfg.train.stage]}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--experiment", nargs="+", default=["table6/cgmul", "table7/cgmul"])
    p.add_argument("--steps", type=int, default=15)
    p.add_argument("--workers", type=int, nargs="+", default=[0, 2])
    args = p.parse_args()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, load average "
          f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    print(f"{'experiment':16s} {'workers':>7s} {'batch':>5s} {'clip':>6s} {'steps/s':>8s} {'clips/s':>8s} "
          f"{'stall':>6s} {'smoke run (s)':>13s}")
    for name in args.experiment:
        for w in args.workers:
            t = time.time()
            r = measure(name, args.steps, w)
            print(f"{r['experiment']:16s} {r['workers']:7d} {r['batch']:5d} {r['size']:>6s} {r['steps/s']:8.2f} "
                  f"{r['clips/s']:8.2f} {r['stall']:6.1%} {r['smoke run (s)']:13.0f}", flush=True)


if __name__ == "__main__":
    main()
