"""Loaders of in-memory data sets: whole batches sliced from tensors, no per-sample Python calls.

- ``TensorLoader``: batches of any data set with ``batch(index)`` (``InMemoryDataset``), in a
  fixed or a per-epoch shuffled order;
- ``MappedLoader`` (made by ``map_batches``): a loader whose batches pass through a function;
- ``StepBudget``: a fixed number of steps per pass, across the epochs of another loader (a
  training budget in steps, such as equal compute for models whose steps cost differently).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Iterator
from typing import Protocol

import torch

from ..core.checks import check_positive_int, check_seed

Sample = dict[str, torch.Tensor]  # a sample, or a batch of them: {key: tensor}


def tensors_checksum(tensors: Iterable[torch.Tensor]) -> str:
    """SHA-256 over the bytes of ``tensors`` in order (CPU tensors): an in-memory data set's
    fingerprint, the same for the same seed on every machine."""
    h = hashlib.sha256()
    for t in tensors:
        h.update(t.contiguous().numpy().tobytes())
    return h.hexdigest()


class InMemoryDataset(Protocol):
    """What ``TensorLoader`` needs of a data set: its length and whole batches by index."""

    def __len__(self) -> int: ...

    def batch(self, index: torch.Tensor) -> Sample: ...


class TensorLoader:
    """Batches of an in-memory data set, sliced straight from its tensors.

    A drop-in for ``DataLoader(dataset, batch_size, shuffle=...)`` that skips the per-sample
    Python calls and the collate step, which matter on a 2-core CPU. Each batch is a dict like a
    sample with a leading batch dimension, moved to ``device``. A data set with a per-sample
    ``transform`` needs torch's ``DataLoader`` instead (so the transform is not skipped).

    Args:
        dataset: an in-memory data set with ``len`` and ``batch(index) -> {key: tensor}``
            (index: int64 B; each tensor with a leading B), such as ``MultiDigits``.
        batch_size: samples per batch; the last batch may be smaller unless ``drop_last``.
        shuffle: draw a new order each epoch, from ``(seed, epoch)`` on the CPU.
        seed: decides the shuffled orders.
        device: where batches go.
        drop_last: leave out the last batch when it is smaller than ``batch_size``.
    """

    def __init__(
        self,
        dataset: InMemoryDataset,
        batch_size: int = 128,
        shuffle: bool = False,
        seed: int = 0,
        device: torch.device | str = "cpu",
        drop_last: bool = False,
    ) -> None:
        if not callable(getattr(dataset, "batch", None)):
            raise TypeError(
                f"argument 'dataset' is a {type(dataset).__name__}, expected an in-memory data "
                "set with a batch(index) method, such as MultiDigits or MultiMNIST (use "
                "torch.utils.data.DataLoader for other data sets)"
            )
        if getattr(dataset, "transform", None) is not None:
            raise ValueError(
                "argument 'dataset' has a per-sample transform, which TensorLoader would skip; "
                "use torch.utils.data.DataLoader for it, or augment whole batches instead"
            )
        self.dataset = dataset
        self.batch_size = check_positive_int("batch_size", batch_size)
        self.shuffle = shuffle
        self.device = torch.device(device)
        self.drop_last = drop_last
        self.seed = check_seed(seed)
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Fix the next pass's order to epoch ``epoch``'s (as ``DistributedSampler.set_epoch``).

        Each epoch's order depends only on ``(seed, epoch)``, so a run resumed from a checkpoint
        sees the same batches as an uninterrupted one.
        """
        self.epoch = int(epoch)

    def __len__(self) -> int:
        n = len(self.dataset)
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def __iter__(self) -> Iterator[Sample]:
        n = len(self.dataset)
        if self.shuffle:
            g = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
            order = torch.randperm(n, generator=g)
        else:
            order = torch.arange(n)
        self.epoch += 1  # the next pass, unless set_epoch says otherwise
        for b in range(len(self)):
            index = order[b * self.batch_size:(b + 1) * self.batch_size]
            batch = self.dataset.batch(index)
            yield {k: v.to(self.device, non_blocking=True) for k, v in batch.items()}


class MappedLoader:
    """Wrap a loader so that each batch passes through ``fn`` (for example, to add a target
    computed from others: ``map_batches(loader, lambda b: {**b, "sum": b["left"] + b["right"]})``).

    Keeps ``len`` and ``set_epoch`` of the wrapped loader, so ``train`` treats it the same.
    """

    def __init__(self, loader: TensorLoader, fn: Callable[[Sample], Sample]) -> None:
        if not callable(fn):
            raise TypeError(f"argument 'fn' is a {type(fn).__name__}, expected a callable")
        self.loader = loader
        self.fn = fn

    def __len__(self) -> int:
        return len(self.loader)

    def set_epoch(self, epoch: int) -> None:
        if hasattr(self.loader, "set_epoch"):
            self.loader.set_epoch(epoch)

    def __iter__(self) -> Iterator[Sample]:
        for batch in self.loader:
            yield self.fn(batch)


def map_batches(loader: TensorLoader, fn: Callable[[Sample], Sample]) -> MappedLoader:
    """``loader`` with ``fn`` applied to every batch (see ``MappedLoader``)."""
    return MappedLoader(loader, fn)


class StepBudget:
    """Exactly ``steps`` batches per pass, taken from successive epochs of ``loader``.

    A training budget counted in steps rather than epochs: two models whose steps cost
    differently get the same compute from ``train(model, tasks, StepBudget(loader, n),
    epochs=1)`` with ``n`` in inverse proportion to their cost per step. Pass ``e`` (as
    ``set_epoch`` fixes it, the way ``train`` calls it) yields the batches ``e * steps`` to
    ``(e + 1) * steps - 1`` of the endless sequence epoch 0, epoch 1, ... of ``loader`` (each
    epoch in the order ``loader.set_epoch`` gives it), so a resumed run sees the same batches.

    Args:
        loader: a loader with ``len`` (batches per epoch) and, to reshuffle, ``set_epoch``.
        steps: batches per pass (> 0).
    """

    def __init__(self, loader: Iterable[Sample], steps: int) -> None:
        if not hasattr(loader, "__len__") or len(loader) < 1:  # type: ignore[arg-type]
            raise ValueError(
                f"argument 'loader' is a {type(loader).__name__} without batches or a length, "
                "expected a loader with len() >= 1 (such as TensorLoader)"
            )
        self.loader = loader
        self.steps = check_positive_int("steps", steps)
        self.epoch = 0

    def __len__(self) -> int:
        return self.steps

    def set_epoch(self, epoch: int) -> None:
        """Make the next pass pass ``epoch`` (see the class docstring)."""
        self.epoch = int(epoch)

    def __iter__(self) -> Iterator[Sample]:
        per_epoch = len(self.loader)  # type: ignore[arg-type]
        inner, skip = divmod(self.epoch * self.steps, per_epoch)
        self.epoch += 1  # the next pass, unless set_epoch says otherwise
        left = self.steps
        while left:
            if hasattr(self.loader, "set_epoch"):
                self.loader.set_epoch(inner)
            for i, batch in enumerate(self.loader):
                if i < skip:  # batches an earlier pass took
                    continue
                yield batch
                left -= 1
                if not left:
                    return
            inner, skip = inner + 1, 0
