"""Per-item randomness driven by the trainer's epoch: one mechanism for every dataset.

Every random draw of a training item (clip start, crop, flip, augmentation noise) comes from a
stream seeded by `ItemKey(seed, epoch, index)`, so an item's content depends on neither the
worker that loads it nor on whether the run was resumed, and changes from epoch to epoch.

The Trainer loads items through `SeededItems`, which hands each key to the dataset:
- a dataset with `keyed_items = True` takes the key in `__getitem__` and draws from
  `item_generator(key)` (the real-video datasets; indexed by a plain int they use
  `ItemKey(self.seed, self.epoch, index)`, with `set_epoch` for use outside the Trainer);
- any other dataset is indexed by `key.index` while the torch, numpy and python global RNGs are
  seeded from the same key (and restored after, so the caller's streams are untouched).
"""

from __future__ import annotations

import random
from typing import NamedTuple

import numpy as np
import torch


class ItemKey(NamedTuple):
    """Which item to load and which random stream it draws from."""

    seed: int
    epoch: int
    index: int


def item_seed(seed: int, epoch: int, index: int) -> int:
    """The RNG seed of one item: a pure function of (seed, epoch, index)."""
    return (seed * 1_000_003 + epoch * 10_007 + index) % (2**63)


def item_generator(key: ItemKey) -> torch.Generator:
    """A torch generator of its own for the item `key`."""
    return torch.Generator().manual_seed(item_seed(*key))


def split_key(key, *, seed: int, epoch: int) -> ItemKey:
    """An ItemKey from a dataset's `__getitem__` argument: an ItemKey, or a plain int index that
    takes the dataset's own seed and current epoch."""
    if isinstance(key, ItemKey):
        return key
    if isinstance(key, (int, np.integer)) and not isinstance(key, bool):
        return ItemKey(seed, epoch, int(key))
    raise TypeError(f"dataset index must be an int or an ItemKey(seed, epoch, index), got {key!r}")


class SeededItems(torch.utils.data.Dataset):
    """Wraps a dataset for the Trainer: `wrapped[(epoch, index)]` loads item `index` of `epoch`
    from the stream of ItemKey(seed, epoch, index) (module docstring)."""

    def __init__(self, dataset, seed: int):
        self.dataset, self.seed = dataset, seed
        self.keyed = bool(getattr(dataset, "keyed_items", False))

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, key):
        epoch, index = key
        key = ItemKey(self.seed, epoch, index)
        s = item_seed(*key)
        np_state, py_state = np.random.get_state(), random.getstate()
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(s)
            np.random.seed(s % 2**32)
            random.seed(s)
            try:
                return self.dataset[key] if self.keyed else self.dataset[index]
            finally:
                np.random.set_state(np_state)
                random.setstate(py_state)
