"""cgm.allocator: a training process keeps freed memory, so a step does not re-fault its pages."""

import platform
import resource

import pytest
import torch
from test_train import make_trainer  # tests/ is on sys.path

from cgm import allocator
from cgm.experiments.environment import environment

glibc_only = pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="mallopt is glibc's")


def faults_of_a_fresh_16mb_tensor() -> int:
    """Minor page faults of allocating and writing a 16 MB tensor once more after freeing one."""
    torch.ones(4 << 20)  # allocated, written, freed
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    torch.ones(4 << 20)
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before


@glibc_only
def test_retained_memory_is_reused_without_page_faults():
    try:
        assert allocator.glibc_defaults().startswith("glibc defaults")
        # 16 MB > 128 KiB: mmapped fresh and unmapped on free, 4,096 pages faulted again
        assert faults_of_a_fresh_16mb_tensor() > 2000
        assert allocator.retain_freed_memory() == allocator.state()
        assert allocator.state().startswith("retain")
        assert faults_of_a_fresh_16mb_tensor() < 200
    finally:
        allocator.retain_freed_memory()


@glibc_only
def test_the_trainer_sets_the_allocator_on_cpu(tmp_path):
    allocator.glibc_defaults()
    make_trainer(tmp_path)
    assert environment()["allocator"].startswith("retain")
