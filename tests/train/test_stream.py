"""The training batch stream: one DataLoader for every epoch, the same batches and crops as epoch-by-epoch
loading, exact resume at any (epoch, offset), workers that live across epoch boundaries."""

from __future__ import annotations

import pytest
import torch

from speech_ssl.train.config import load_train_config
from speech_ssl.train.distributed import DistInfo
from speech_ssl.train.pretrain_task import PretrainTask
from speech_ssl.train.stream import BatchStream
from tests.train.test_common import corpus_fixture, tiny_overrides  # noqa: F401


@pytest.fixture(name="task")
def task_fixture(corpus):
    cfg = load_train_config(None, tiny_overrides(corpus, **{"data.max_tokens": 48000}))
    return PretrainTask(cfg)


def _expected(task, epochs: int) -> list[tuple[int, int, list[int]]]:
    """(epoch, offset after the batch, row ids) of every batch, epoch by epoch from task.split."""
    out = []
    for e in range(1, epochs + 1):
        for o, b in enumerate(task.split("train", e, 0, 1).batches, 1):
            out.append((e, o, sorted(b)))
    return out


def _take(stream: BatchStream, n: int) -> list[tuple[int, int, list[int], torch.Tensor]]:
    out = []
    for _ in range(n):
        b = stream.next()
        out.append((stream.epoch, stream.offset, sorted(b["id"].tolist()), b["source"]))
    return out


@pytest.mark.parametrize("workers", [0, 2])
def test_batches_positions_and_crops_across_epochs(task, workers):
    want = _expected(task, 4)
    n_first = len(task.split("train", 1, 0, 1).batches)
    assert 2 <= n_first < len(want) - 2  # several epochs are crossed
    stream = BatchStream(task, DistInfo(), num_workers=workers)
    try:
        got = _take(stream, len(want))
    finally:
        stream.close()
    assert [g[:3] for g in got] == want
    # the crops are each epoch's own: the same as loading that epoch's batch in this process
    single = BatchStream(task, DistInfo(), num_workers=0)
    ref = _take(single, len(want))
    assert all(torch.equal(a[3], b[3]) for a, b in zip(got, ref))
    e1 = [g for g in got if g[0] == 1]
    e2 = [g for g in got if g[0] == 2]
    same_rows = [(a, b) for a in e1 for b in e2 if a[2] == b[2] and a[3].shape == b[3].shape]
    assert not same_rows or any(not torch.equal(a[3], b[3]) for a, b in same_rows)


@pytest.mark.parametrize("at", [1, "end", "end+1"])
def test_resume_at_any_position_gives_the_same_rest(task, at):
    n_first = len(task.split("train", 1, 0, 1).batches)
    k = {1: 1, "end": n_first, "end+1": n_first + 1}[at]
    full = BatchStream(task, DistInfo(), num_workers=0)
    seq = _take(full, k + 6)
    state = seq[k - 1][:2]  # the position after k batches
    resumed = BatchStream(task, DistInfo(), num_workers=2, epoch=state[0], offset=state[1])
    try:
        rest = _take(resumed, 6)
    finally:
        resumed.close()
    assert [r[:3] for r in rest] == [s[:3] for s in seq[k:]]
    assert all(torch.equal(a[3], b[3]) for a, b in zip(rest, seq[k:]))


def test_workers_live_across_epoch_boundaries(task):
    n_first = len(task.split("train", 1, 0, 1).batches)
    stream = BatchStream(task, DistInfo(), num_workers=2)
    try:
        stream.next()
        pids = [w.pid for w in stream._it._workers]
        _take(stream, 2 * n_first + 1)
        assert stream.epoch >= 3
        assert [w.pid for w in stream._it._workers] == pids and all(w.is_alive() for w in stream._it._workers)
    finally:
        stream.close()
    assert stream._it is None
