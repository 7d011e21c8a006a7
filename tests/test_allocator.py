"""cgm.allocator: a training process keeps freed memory, so a step does not re-fault its pages."""

import platform
import resource

import pytest
import torch
from test_train import make_trainer  # tests/ is on sys.path

from cgm import allocator
from cgm.experiments.environment import environment

glibc_only = pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="mallopt is glibc's")


def step() -> float:
    """What a training step does to the heap: big tensors alive together, freed at the end."""
    a, b = torch.ones(2 << 20), torch.ones(2 << 20)  # 8 MB each, far above glibc's 128 KiB
    return float((a + b)[0])


def faults_of_a_step() -> int:
    """Minor page faults of one step after six (warm: the heap has its steady layout)."""
    for _ in range(6):
        step()
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    step()
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before


@glibc_only
def test_retained_memory_is_reused_without_page_faults():
    try:
        assert allocator.glibc_defaults().startswith("glibc defaults")
        # mmapped fresh and unmapped on free: at least one 8 MB tensor's 2,048 pages faulted again
        # (all three, 6,144, in a fresh process)
        assert faults_of_a_step() > 2000
        assert allocator.retain_freed_memory() == allocator.state()
        assert allocator.state().startswith("retain")
        assert faults_of_a_step() < 100
    finally:
        allocator.retain_freed_memory()


@glibc_only
def test_the_trainer_sets_the_allocator_on_cpu(tmp_path):
    allocator.glibc_defaults()
    make_trainer(tmp_path)
    assert environment()["allocator"].startswith("retain")
