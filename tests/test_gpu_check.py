"""`make gpu-check` (benchmarks/gpu.py): without CUDA it says so and succeeds; its paper-shape
rehearsal runs the same code on the CPU at a tiny size, beside `cgm plan`'s estimates."""

import importlib.util
import re
import subprocess
import sys

import pytest
import torch

from cgm.experiments import ROOT

SCRIPT = ROOT / "benchmarks" / "gpu.py"


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU: the check would run")
@pytest.mark.slow
def test_without_cuda_the_check_says_so_and_succeeds():
    out = subprocess.run([sys.executable, str(SCRIPT)], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "no CUDA device: GPU check not run" in out.stdout


@pytest.mark.slow
def test_the_rehearsal_runs_on_the_cpu_at_a_tiny_size(capsys):
    spec = importlib.util.spec_from_file_location("gpu_check", SCRIPT)
    gpu = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gpu)
    gpu.rehearsal("cpu", tiny=True, batch=2, steps=1, models=["r3d18"])
    rows = [l.split() for l in capsys.readouterr().out.splitlines() if l.startswith("r3d18")]
    assert [r[1:3] for r in rows] == [["train", "float32"], ["train", "bf16"], ["eval,", "30/pass"]]
    for r in rows:
        clips_per_s, peak, planned, ratio = map(float, r[-4:])
        assert clips_per_s > 0 and peak > 0 and 0.9 <= ratio <= 1.5, r  # the plan holds what ran
    assert re.search(r"30x8x32", " ".join(rows[2]))
