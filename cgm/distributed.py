"""Multi-process training helpers: torchrun's env:// rendezvous, rank-0 roles, batch sharding.

One process per GPU, launched by torchrun (`torchrun --nproc_per_node 8 -m cgm train ...`, or
multi-node with `--nnodes/--node_rank/--master_addr`). A run without torchrun's environment
variables is a world of one, and every helper here degrades to the single-process case.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import timedelta

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class DistInfo:
    """Where this process sits: global rank, world size and the GPU index on its node."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        """Rank 0 alone logs, writes checkpoints and shows progress bars."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def env_world() -> DistInfo:
    """Rank and world size from torchrun's environment (RANK, WORLD_SIZE, LOCAL_RANK); else 1."""
    return DistInfo(
        rank=int(os.environ.get("RANK", 0)),
        world_size=int(os.environ.get("WORLD_SIZE", 1)),
        local_rank=int(os.environ.get("LOCAL_RANK", 0)),
    )


# How long a collective waits for the slowest rank before the run fails. Every collective of a run
# follows work of about equal length on every rank (a training step, an evaluation shard), but a
# rank can still lag by minutes: rank 0 writes a checkpoint or a result to a slow filesystem while
# the others wait, and a rank's last evaluation videos may decode slowly. NCCL's default of 10
# minutes turns such a lag into a dead multi-day run; a hung rank is still reported, after an hour.
COLLECTIVE_TIMEOUT = timedelta(minutes=60)


def backend_for(device: str) -> str:
    """nccl between GPUs, gloo between CPU processes."""
    return "nccl" if torch.device(device).type == "cuda" else "gloo"


def init_distributed(device: str) -> DistInfo:
    """Join the process group torchrun set up (env://); a no-op for a world of one.

    On CUDA each process takes the GPU of its LOCAL_RANK; returns this process's DistInfo.
    """
    info = env_world()
    if not info.distributed:
        return info
    if torch.device(device).type == "cuda":
        torch.cuda.set_device(info.local_rank)
    if not dist.is_initialized():
        dist.init_process_group(
            backend=backend_for(device),
            init_method="env://",
            rank=info.rank,
            world_size=info.world_size,
            timeout=COLLECTIVE_TIMEOUT,
        )
    return info


def cleanup() -> None:
    """Leave the process group (safe to call when there is none)."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def check_global_batch(batch_size: int, world_size: int) -> int:
    """The per-process batch: the global `batch_size` split evenly, or a ValueError."""
    if batch_size < 1 or batch_size % world_size:
        raise ValueError(
            f"batch_size {batch_size} (the global batch) must be a positive multiple of "
            f"the world size {world_size}; valid: "
            f"{', '.join(str(world_size * i) for i in range(1, 5))}, ..."
        )
    return batch_size // world_size


def shard(batch: list[int], info: DistInfo) -> list[int]:
    """This rank's contiguous slice of one global batch (what DistributedSampler does per batch)."""
    per_rank = len(batch) // info.world_size
    return batch[info.rank * per_rank : (info.rank + 1) * per_rank]


def shard_items(indices: list[int], info: DistInfo, block: int = 1) -> list[int]:
    """This rank's items of an evaluation set: blocks of `block` consecutive items dealt in turn
    (rank r takes blocks r, r + world_size, ...). Each item goes to exactly one rank (no padding:
    shares differ by at most one block), so gathered results count every item once; and an
    evaluation that batches each block on its own batches exactly as one process does."""
    if block < 1:
        raise ValueError(f"shard_items: block must be >= 1, got {block}")
    blocks = range(info.rank * block, len(indices), info.world_size * block)
    return [j for start in blocks for j in indices[start : start + block]]


def gather_to_all(obj):
    """[obj of rank 0, obj of rank 1, ...]: every rank's picklable `obj` on every rank
    (all_gather_object: gloo and NCCL alike); [obj] for a world of one."""
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return [obj]
    out = [None] * dist.get_world_size()
    dist.all_gather_object(out, obj)
    return out


def current() -> DistInfo:
    """This process's place in the initialised process group (a world of one when there is none)."""
    if dist.is_available() and dist.is_initialized():
        return DistInfo(dist.get_rank(), dist.get_world_size(), env_world().local_rank)
    return DistInfo()


def any_rank(flag: bool, device: str | torch.device = "cpu") -> bool:
    """Whether `flag` is true on any rank (every rank gets the same answer); `flag` for a world of one."""
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return flag
    x = torch.tensor([float(flag)], device=device)
    dist.all_reduce(x, op=dist.ReduceOp.MAX)
    return bool(x.item())


def all_reduce_mean(x: torch.Tensor) -> torch.Tensor:
    """Mean of `x` over all processes (a copy; `x` itself unchanged). Identity for a world of one."""
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return x.clone()
    y = x.detach().clone()
    dist.all_reduce(y, op=dist.ReduceOp.SUM)
    return y / dist.get_world_size()


def barrier() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.barrier()
