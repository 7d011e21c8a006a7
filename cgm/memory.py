"""How many clips one evaluation forward pass may take: a memory budget over measured bytes per clip.

Evaluation sends clips through the model in chunks of at most `clips_per_forward` clips (a video's
test views are split across chunks when they do not fit), so its memory does not grow with the
number of views. The bytes are measured by probe forward passes of one and of two clips (their
difference is what each clip adds; the rest, what any pass needs):

- on a GPU, the CUDA allocator's peak (`torch.cuda.max_memory_allocated`) above what was allocated
  before the pass: activations, cuDNN workspaces and the allocator's rounding;
- on the CPU, the peak of the bytes held by the tensor storages the pass creates (`LiveTensorBytes`,
  a dispatch mode that sees every allocation of an operator and every free of its storage).

The budget is a runtime setting, never part of a run's identity: `memory_gib` (CLI
`--eval-memory-gib`), or by default 70% of the memory this GPU has free (what the allocator caches
for this process counted as free), and CPU_BUDGET_GIB on the CPU, where a larger batch hardly
speeds convolutions up and the machine's RAM is shared with the data loader workers.
"""

from __future__ import annotations

import math
import warnings
import weakref

import torch
from torch._subclasses.fake_tensor import FakeTensor
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten

GIB = 2**30
CPU_BUDGET_GIB = 2.0
CUDA_FREE_FRACTION = 0.7  # of the free memory: room for fragmentation and the decoder's pinned copies


def _no_data(t: torch.Tensor) -> bool:
    """A tensor that has a shape but no memory: on the meta device, or a FakeTensor."""
    return t.device.type == "meta" or isinstance(t, FakeTensor)


class LiveTensorBytes(TorchDispatchMode):
    """Within the block: `peak`, the largest number of bytes held at once by tensor storages that
    operators allocated in the block, and `live`, what is held at the end. Storages that existed
    before the block (weights, inputs, the `known` tensors), views and in-place results count once
    or not at all; `exclude(t)` moves a tensor's storage out of the count (a parameter's gradient,
    once accumulated, is optimizer state, counted apart by `cgm.plan`). Frees are seen through weak
    references to the storages. Meta and FakeTensor storages count their size, so the same mode
    traces a pass without data; `.item()` of such a tensor answers 0.0 (a trace only reaches it
    for logged metrics)."""

    def __init__(self, known=()):
        super().__init__()
        self.live = self.peak = 0
        self._held: dict[int, int] = {}  # id(storage) -> bytes
        self._known = {id(t.untyped_storage()) for t in known}

    def _free(self, key: int, nbytes: int) -> None:
        if self._held.pop(key, None) is not None:
            self.live -= nbytes

    def exclude(self, tensor: torch.Tensor) -> None:
        key = id(tensor.untyped_storage())
        nbytes = self._held.pop(key, None)
        if nbytes is not None:
            self.live -= nbytes
        self._known.add(key)

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        if func is torch.ops.aten._local_scalar_dense.default and _no_data(args[0]):
            return 0.0
        out = func(*args, **(kwargs or {}))
        given = {
            id(a.untyped_storage()) for a in tree_flatten((args, kwargs))[0] if isinstance(a, torch.Tensor)
        }
        for t in tree_flatten(out)[0]:
            if not isinstance(t, torch.Tensor):
                continue
            storage = t.untyped_storage()
            key = id(storage)
            if key in given or key in self._held or key in self._known:  # an alias, or counted
                continue
            nbytes = storage.nbytes()
            self._held[key] = nbytes
            self.live += nbytes
            self.peak = max(self.peak, self.live)
            weakref.finalize(storage, self._free, key, nbytes)
        return out


@torch.no_grad()
def forward_peak_bytes(model: torch.nn.Module, clips: torch.Tensor) -> int:
    """Peak bytes one no-grad forward pass of `model` on `clips` (on the model's device) needs
    beyond its weights and input: measured by the CUDA allocator on a GPU, `LiveTensorBytes` on the CPU."""
    if clips.device.type == "cuda":
        torch.cuda.synchronize(clips.device)
        torch.cuda.reset_peak_memory_stats(clips.device)
        before = torch.cuda.memory_allocated(clips.device)
        out = model(clips)
        torch.cuda.synchronize(clips.device)
        del out
        return max(0, torch.cuda.max_memory_allocated(clips.device) - before)
    with LiveTensorBytes() as live:
        out = model(clips)
        del out
    return live.peak


def memory_budget(device: str | torch.device, memory_gib: float | None = None) -> int:
    """Bytes an evaluation forward pass may use: `memory_gib` GiB when given; else 70% of this
    GPU's free memory (free plus what the allocator caches unused), or CPU_BUDGET_GIB on the CPU."""
    if memory_gib is not None:
        if isinstance(memory_gib, bool) or not (
            isinstance(memory_gib, (int, float)) and math.isfinite(memory_gib) and memory_gib > 0
        ):
            raise ValueError(f"evaluation memory budget must be a positive number of GiB, got {memory_gib!r}")
        return int(memory_gib * GIB)
    device = torch.device(device)
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        cached = torch.cuda.memory_reserved(device) - torch.cuda.memory_allocated(device)
        return int(CUDA_FREE_FRACTION * (free + cached))
    return int(CPU_BUDGET_GIB * GIB)


def forward_bytes(model: torch.nn.Module, clip: torch.Tensor, device: str | torch.device) -> tuple[int, int]:
    """(fixed, per clip) bytes of a no-grad forward pass of `model` on clips like `clip` (3, T, H, W):
    measured passes of 1 and 2 clips (`forward_peak_bytes`), their difference the bytes each clip
    adds, the rest what any pass needs (e.g. transformed weights)."""
    one = clip[None].to(device).float()
    p1 = forward_peak_bytes(model, one)
    p2 = forward_peak_bytes(model, one.expand(2, *one.shape[1:]).contiguous())
    per_clip = p2 - p1 if p2 > p1 else p1  # no growth measured: take the whole pass, to be safe
    return max(0, p1 - per_clip), max(1, per_clip)


def clips_per_forward(
    model: torch.nn.Module, clip: torch.Tensor, *, device: str | torch.device, memory_gib: float | None = None
) -> int:
    """The most clips one forward pass of `model` may take within the memory budget
    (`memory_budget`), from the measured bytes of passes like `clip` (one model input (3, T, H, W);
    `forward_bytes`); at least 1, with a warning when even one clip is over the budget."""
    budget = memory_budget(device, memory_gib)
    fixed, per_clip = forward_bytes(model, clip, device)
    if fixed + per_clip > budget:
        warnings.warn(
            f"evaluation: a forward pass of one clip {tuple(clip.shape)} needs "
            f"{(fixed + per_clip) / GIB:.2f} GiB, more than the memory budget of {budget / GIB:.2f} GiB; "
            "evaluating one clip at a time",
            RuntimeWarning,
            stacklevel=2,
        )
    return max(1, (budget - fixed) // per_clip)
