"""The trainer's data: an endless, resumable stream of training micro-batches and the validation loader.

Both come from ``task.split(name, epoch, rank, world)``; a DataError in a worker is raised in the main process
with its own message (:mod:`speech_ssl.data.workers`). The training position is (epoch, batches
taken in that epoch); a checkpoint stores it and :class:`BatchStream` reopens the epoch there. DataLoader
workers ignore the stop signals (:mod:`speech_ssl.train.signals`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch

from speech_ssl.data.workers import Guarded, GuardedCollate, raise_if_failed, stop_workers
from speech_ssl.errors import DataError
from speech_ssl.train.distributed import DistInfo
from speech_ssl.train.signals import ignore_stop_signals
from speech_ssl.transfer import to_device as copy_to_device

if TYPE_CHECKING:  # annotations only
    from speech_ssl.train.task import Task


HOST_KEYS = frozenset({"lengths", "target_lengths"})  # the models read these on the host (no sync)


def to_device(batch: dict[str, Any], device: torch.device) -> dict[str, Any]:
    """Tensors to ``device`` without blocking (:func:`speech_ssl.transfer.to_device`: the DataLoader has pinned
    them on CUDA runs already), except the audio and label lengths, which stay on the host."""
    return {k: copy_to_device(v, device) if torch.is_tensor(v) and k not in HOST_KEYS else v
            for k, v in batch.items()}


class EpochTagged(torch.utils.data.Dataset):
    """``dataset[(epoch, i)]`` -> ``(epoch, item i as that epoch makes it)``: ``set_epoch`` on every part first
    (crops are drawn from (seed, epoch, ids)), so one set of workers serves batches of successive epochs."""

    def __init__(self, dataset: torch.utils.data.Dataset):
        self.dataset = dataset
        self.parts = list(getattr(dataset, "datasets", [dataset]))  # a ConcatDataset's parts, or the dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, key: tuple[int, int]) -> tuple[int, Any]:
        epoch, index = key
        for p in self.parts:
            if getattr(p, "epoch", epoch) != epoch:
                p.set_epoch(epoch)
        return epoch, self.dataset[index]


class EpochCollate:
    """Collates :class:`EpochTagged` items: ``(epoch, collate(items))``. The batch carries its epoch back to
    the stream, so its position never depends on anything beside the batch (a class: spawned workers pickle it)."""

    def __init__(self, collate):
        self.collate = collate

    def __call__(self, samples: list[tuple[int, Any]]) -> tuple[int, Any]:
        return samples[0][0], self.collate([s for _, s in samples])


class EpochBatches:
    """The training DataLoader's batch sampler: this rank's batches of epoch after epoch from (epoch, offset),
    each index tagged with its epoch (:class:`EpochTagged`). Iterated in the main process."""

    def __init__(self, task: Task, info: DistInfo, epoch: int, offset: int):
        self.task, self.info = task, info
        self.epoch, self.offset = epoch, offset

    def __iter__(self):
        epoch, offset = self.epoch, self.offset
        while True:
            batches = self.task.split("train", epoch, self.info.rank, self.info.world_size).batches
            if not batches:
                raise DataError(f"no training batches in epoch {epoch} (all utterances filtered out?)", "data.train")
            for b in batches[offset:]:
                yield [(epoch, i) for i in b]
            epoch, offset = epoch + 1, 0


class BatchStream:
    """Endless training micro-batches for one rank, resumable at (epoch, offset in the epoch).

    One DataLoader serves every epoch (:class:`EpochBatches`), so its workers live for the whole run and its
    prefetch crosses epoch boundaries. A loader per epoch made the step wait at every boundary while the spent
    loader joined its workers and the new one forked and filled its own (55-65 ms a boundary with 2 workers on
    2 cores; the GPU benchmark's 4-batch epochs crossed one every 4 updates). Each batch comes back with its
    epoch (:class:`EpochCollate`); the position is (that epoch, batches taken in it), as epoch-by-epoch loading
    counted it.
    """

    def __init__(self, task: Task, info: DistInfo, num_workers: int = 0, epoch: int = 1, offset: int = 0):
        self.task = task
        self.info = info
        self.num_workers = num_workers
        self.epoch = epoch
        self.offset = offset
        self._it = None

    def _open(self) -> None:
        split = self.task.split("train", self.epoch, self.info.rank, self.info.world_size)
        if not split.batches:
            raise DataError("no training batches (all utterances filtered out?)", "data.train")
        loader = torch.utils.data.DataLoader(
            Guarded(EpochTagged(split.dataset)),
            batch_sampler=EpochBatches(self.task, self.info, self.epoch, self.offset),
            collate_fn=GuardedCollate(EpochCollate(split.collate)),
            num_workers=self.num_workers,
            pin_memory=self.info.device.type == "cuda",
            worker_init_fn=ignore_stop_signals,
        )
        self._it = iter(loader)

    def next(self) -> dict[str, Any]:
        if self._it is None:
            self._open()
        epoch, batch = raise_if_failed(next(self._it))
        if epoch != self.epoch:
            self.epoch, self.offset = epoch, 0
        self.offset += 1
        return batch

    def state(self) -> dict[str, int]:
        return {"epoch": self.epoch, "offset": self.offset}

    def close(self) -> None:
        """Stop the DataLoader workers now (they ignore SIGTERM, so they must not be left to the
        interpreter's exit handler); a later ``next()`` reopens the loader at the same position."""
        stop_workers(self._it)
        self._it = None


def valid_loader(task: Task, info: DistInfo, num_workers: int) -> torch.utils.data.DataLoader:
    """This rank's shard of the validation split (epoch 1: the same batches every time)."""
    split = task.split("valid", 1, info.rank, info.world_size)
    return torch.utils.data.DataLoader(
        Guarded(split.dataset), batch_sampler=split.batches, collate_fn=GuardedCollate(split.collate),
        num_workers=num_workers,
        worker_init_fn=ignore_stop_signals,
    )
