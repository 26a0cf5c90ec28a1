"""DataLoader workers that report bad input as cleanly as the main process, and that always stop.

A DataError raised inside a worker process reaches the main process as a new exception whose message is
the worker's whole traceback. :class:`Guarded` (around a dataset) and :class:`GuardedCollate` (around its
collater) carry the error out as data instead; :func:`raise_if_failed` raises it again in the main process
with its own one-paragraph message (file and line). :func:`stop_workers` shuts a loader's workers down,
killing those that ignore SIGTERM (the trainer's do), so an error never leaves the process hanging at exit.
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple

import torch

from speech_ssl.errors import DataError


class Failed(NamedTuple):
    """A DataError raised while loading an item, as data."""

    reason: str
    path: str | None
    line: int | None


class Guarded(torch.utils.data.Dataset):
    """``dataset[i]``, or :class:`Failed` when loading it raised a DataError."""

    def __init__(self, dataset: torch.utils.data.Dataset):
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> Any:
        try:
            return self.dataset[index]
        except DataError as e:
            return Failed(e.reason, e.path, e.line)


class GuardedCollate:
    """``collate(samples)``, or the first :class:`Failed` among them (a class, so spawned workers can pickle it)."""

    def __init__(self, collate: Callable[[list[Any]], Any]):
        self.collate = collate

    def __call__(self, samples: list[Any]) -> Any:
        for s in samples:
            if isinstance(s, Failed):
                return s
        try:
            return self.collate(samples)
        except DataError as e:
            return Failed(e.reason, e.path, e.line)


def raise_if_failed(batch: Any) -> Any:
    """The batch, or the DataError it carries raised here (in the main process)."""
    if isinstance(batch, Failed):
        raise DataError(batch.reason, batch.path, batch.line)
    return batch


def stop_workers(it) -> None:
    """Shut down a DataLoader iterator's worker processes: the polite way first (end-of-data sentinel, a
    short join), then SIGKILL for any left. Workers that ignore SIGTERM would otherwise be joined forever by
    multiprocessing's exit handler (which sends SIGTERM first): the hang after a worker's error."""
    if it is None:
        return
    shutdown = getattr(it, "_shutdown_workers", None)
    if shutdown is not None:
        shutdown()
    for w in getattr(it, "_workers", []):
        if w.is_alive():
            w.kill()
            w.join(timeout=5)
