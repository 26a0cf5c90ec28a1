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

if TYPE_CHECKING:  # annotations only
    from speech_ssl.train.task import Task


HOST_KEYS = frozenset({"lengths", "target_lengths"})  # the models read these on the host (no sync)


def to_device(batch: dict[str, Any], device: torch.device) -> dict[str, Any]:
    """Tensors to ``device`` without blocking, except the audio and label lengths, which stay on the host."""
    return {k: v.to(device, non_blocking=True) if torch.is_tensor(v) and k not in HOST_KEYS else v
            for k, v in batch.items()}


class BatchStream:
    """Endless training micro-batches for one rank, resumable at (epoch, offset in the epoch)."""

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
            Guarded(split.dataset),
            batch_sampler=split.batches[self.offset :],
            collate_fn=GuardedCollate(split.collate),
            num_workers=self.num_workers,
            pin_memory=self.info.device.type == "cuda",
            worker_init_fn=ignore_stop_signals,
        )
        self._it = iter(loader)

    def next(self) -> dict[str, Any]:
        for _ in range(3):
            if self._it is None:
                self._open()
            try:
                batch = next(self._it)
            except StopIteration:
                self.epoch += 1
                self.offset = 0
                self._it = None
                continue
            self.offset += 1
            return raise_if_failed(batch)
        raise DataError("training data yields no batches", "data.train")

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
