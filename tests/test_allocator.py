"""cgm.allocator: a training process keeps freed memory, so a step does not re-fault its pages."""

import platform
import resource

import pytest
import torch
from test_train import make_trainer  # tests/ is on sys.path

from cgm import allocator
from cgm.experiments.environment import environment

glibc_only = pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="mallopt is glibc's")


def step(mib: int) -> float:
    """What a training step does to the heap: big tensors alive together, freed at the end."""
    a, b = torch.ones(mib << 18), torch.ones(mib << 18)  # mib MiB each
    return float((a + b)[0])


def faults_of_a_step(mib: int = 40) -> int:
    """Minor page faults of one step after six (warm: the heap has its steady layout); 40 MiB
    tensors are above glibc's largest dynamic mmap threshold (32 MiB)."""
    for _ in range(6):
        step(mib)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    step(mib)
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before


@glibc_only
def test_retained_memory_is_reused_without_page_faults():
    try:
        assert allocator.glibc_defaults().startswith("glibc defaults")
        # mmapped fresh and unmapped on free: at least one 40 MiB tensor's 10,240 pages faulted
        # again (all three, 30,720, in a fresh process)
        assert faults_of_a_step() > 10000
        # below 32 MiB glibc's default (dynamic) threshold serves them from the heap: no re-faults
        assert faults_of_a_step(8) < 100
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
