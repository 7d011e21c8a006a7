"""`python -m cgm plan`: memory traced without data agrees with real CPU steps; the batch that
fits; the plan of a paper chain with missing roots; the CLI's refusal of a step that cannot fit."""

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from cgm import experiments as ex
from cgm import plan

SMALL = dict(width=0.25, clip_len=8, size=32)


@pytest.mark.slow
def test_a_trace_without_data_holds_the_bytes_of_a_real_cpu_step():
    cfg = ex.resolve("table7/cgmul", "smoke", **SMALL)
    for train in (True, False):
        traced = plan.trace_bytes(cfg, train=train, clips=2)
        real = plan.trace_bytes(cfg, train=train, clips=2, device="cpu")
        assert traced > 0 and abs(traced - real) <= 0.01 * real, (train, traced, real)


@pytest.mark.slow
def test_activation_bytes_grow_with_the_clips_of_a_pass():
    cfg = ex.resolve("table7/cgmul", "smoke", **SMALL)
    one, four = (plan.trace_bytes(cfg, train=True, clips=c) for c in (1, 4))
    assert 3.88 * one <= four <= 4.12 * one  # in proportion, within 3%: one clip x the batch
    bf16 = plan.trace_bytes(ex.resolve("table7/cgmul", "smoke", amp="bf16", **SMALL), train=True)
    assert 0.4 * one < bf16 < one  # autocast's bf16 activations, traced in FakeTensor mode


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/clear_refs").exists(), reason="needs Linux's peak-RSS reset")
def test_the_estimate_bounds_the_peak_memory_a_real_step_takes():
    """A real training step in a fresh process whose malloc hands every block above 64 KiB back
    to the system on free: its peak resident memory above the weights and input is what its
    tensors held at once. The plan's estimate (gradients + traced activations) may exceed it by
    what it keeps for safety, and must not fall short."""
    script = textwrap.dedent(
        """
        import ctypes, re, torch
        from cgm import experiments as ex, plan
        from cgm.network import CGMNet
        from cgm.train import stage_loss
        torch.set_num_threads(1)
        libc = ctypes.CDLL("libc.so.6")
        for option, value in ((-3, 64 << 10), (-1, 64 << 10), (-4, 1 << 20)):  # mmap, trim, max mmaps
            libc.mallopt(option, value)
        cfg = ex.resolve("table6/cgmul", "smoke", batch_size=8)
        model = CGMNet(cfg.model).train()
        clip = torch.rand(8, 3, cfg.model.clip_len + 1, cfg.model.size, cfg.model.size) * 2 - 1
        labels = torch.zeros(8, dtype=torch.long)
        loss_fn = stage_loss(cfg.train, padding=cfg.model.padding)
        rss = lambda key: int(re.search(rf"{key}:\\s+(\\d+) kB", open("/proc/self/status").read())[1]) << 10
        peaks = []
        for _ in range(3):
            model.zero_grad(set_to_none=True)
            base = rss("VmRSS")
            open("/proc/self/clear_refs", "w").write("5")  # VmHWM := VmRSS
            with plan._gpu_paths():
                loss, _ = loss_fn(model(clip[:, :, :-1]), clip, labels)
                loss.backward()
                del loss
            peaks.append(rss("VmHWM") - base)
        grads = 4 * sum(p.numel() for p in model.parameters())
        print(min(peaks[1:]), grads + plan.trace_bytes(cfg, train=True, clips=8))
        """
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    measured, estimated = map(int, out.stdout.split()[-2:])
    assert measured > 50 << 20  # the step's tensors, not noise
    assert measured <= estimated <= 1.25 * measured, (measured, estimated)


def _link(**kw) -> plan.LinkPlan:
    base = dict(
        name="x", hash="h", cached=False, stage="multitask", amp="none", params=10_000_000,
        train_per_clip=10 * plan.GIB, eval_per_clip=2 * plan.GIB, views=30, eval_batch=8,
        global_batch=64, gmac=100.0, train_clips=1000, eval_clips=300, sizes="",
    )  # fmt: skip
    return plan.LinkPlan(**{**base, **kw})


def test_the_largest_micro_batch_that_fits_and_its_accumulation():
    gpu = 80 * plan.GIB
    assert _link(train_per_clip=plan.GIB).fit(8, gpu) == (8, 1)  # 8 GiB of activations
    assert _link().fit(8, gpu) == (4, 2)  # 80 GiB do not fit; 40 do (72 usable)
    assert _link().fit(64, gpu) == (1, 1)
    assert _link(train_per_clip=100 * plan.GIB).fit(8, gpu) == (None, None)
    assert _link().eval_chunk(gpu) == 27  # 70% of the memory beside the weights, 2 GiB per clip
    assert _link(views=1, eval_batch=8).eval_chunk(gpu) == 8
    assert _link().gpu_hours(1.0) == pytest.approx(2e9 * 100 * 3300 / 1e12 / 3600)


@pytest.mark.slow
def test_the_plan_of_a_paper_run_lists_missing_roots_memory_and_commands(capsys, tmp_path, monkeypatch):
    from cgm.__main__ import main

    monkeypatch.delenv("CGM_UCF101_ROOT", raising=False)
    argv = ["plan", "--experiment", "table7/cgmul", "--gpus", "2", "--runs-dir", str(tmp_path)]
    assert main([*argv, "--set", "amp=bf16"]) == 0
    out = capsys.readouterr().out
    assert "table7/cgmul" in out and "will train" in out
    assert "MISSING (is not given)" in out and "CGM_UCF101_ROOT" in out and "expected layout" in out
    assert "GiB per clip" in out and "bf16 autocast" in out and "GPU-hours" in out
    assert (
        "torchrun --nproc_per_node 2 -m cgm run --profile paper --experiment table7/cgmul --set amp=bf16"
        in out
    )
    assert (
        "papermill notebooks/table7_upsampling_action.ipynb out.ipynb -p profile paper -p overrides amp=bf16"
        in out
    )
    assert main(["plan", "--experiment", "table7/cgmul", "--gpus", "3", "--runs-dir", str(tmp_path)]) == 2
    assert "does not split over 3 GPUs" in capsys.readouterr().err


@pytest.mark.slow
def test_a_step_that_cannot_fit_the_gpu_is_refused_before_work():
    cfg = ex.resolve("table7/cgmul", "smoke", **SMALL)
    plan.check_fits(cfg, world_size=1, available_bytes=8 * plan.GIB, name="table7/cgmul")
    with pytest.raises(ValueError, match=r"table7/cgmul: a training step of 8 clips per GPU needs about"):
        plan.check_fits(cfg, world_size=1, available_bytes=plan.GIB // 64, name="table7/cgmul")
