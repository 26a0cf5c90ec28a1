"""The training batch stream: one DataLoader for every epoch, the same batches and crops as loading epoch by
epoch, exact resume at any (epoch, offset), workers that live across epoch boundaries."""

from __future__ import annotations

import pytest
import torch

from speech_ssl.train.config import load_train_config
from speech_ssl.train.distributed import DistInfo
from speech_ssl.train.pretrain_task import PretrainTask
from speech_ssl.train.stream import BatchStream
from tests.train.test_common import corpus_fixture, tiny_overrides  # noqa: F401


@pytest.fixture(name="task", params=["one", "two"], ids=["one-manifest", "two-manifests"])
def task_fixture(corpus, request):
    """Pretraining on the corpus's train manifest, or on it and its valid manifest as a second corpus (a
    ConcatDataset with multi-corpus batches)."""
    train = [corpus / "train.tsv"] + ([corpus / "valid.tsv"] if request.param == "two" else [])
    cfg = load_train_config(None, tiny_overrides(corpus, **{"data.max_tokens": 48000,
                                                             "data.train": "[" + ",".join(map(str, train)) + "]"}))
    return PretrainTask(cfg)


def _expected(task, epochs: int) -> list[tuple[int, int, list[int], torch.Tensor]]:
    """(epoch, offset after the batch, ids, source) of every batch, epoch by epoch from task.split, each batch
    collated in this process after ``set_epoch``."""
    out = []
    for e in range(1, epochs + 1):
        split = task.split("train", e, 0, 1)
        for o, b in enumerate(split.batches, 1):
            batch = split.collate([split.dataset[i] for i in b])
            out.append((e, o, sorted(batch["id"].tolist()), batch["source"]))
    return out


def _take(stream: BatchStream, n: int) -> list[tuple[int, int, list[int], torch.Tensor]]:
    out = []
    for _ in range(n):
        b = stream.next()
        out.append((stream.epoch, stream.offset, sorted(b["id"].tolist()), b["source"]))
    return out


def _same(got, want) -> bool:
    return [g[:3] for g in got] == [w[:3] for w in want] and all(torch.equal(g[3], w[3]) for g, w in zip(got, want))


@pytest.mark.parametrize("workers", [0, 2])
def test_batches_positions_and_crops_across_epochs(task, workers):
    want = _expected(task, 4)
    assert 2 <= len(task.split("train", 1, 0, 1).batches) < len(want) - 2  # several epochs are crossed
    stream = BatchStream(task, DistInfo(), num_workers=workers)
    try:
        got = _take(stream, len(want))
    finally:
        stream.close()
    assert _same(got, want)


@pytest.mark.parametrize("at", [1, "end", "end+1", "end2"])
def test_resume_at_any_position_gives_the_same_rest(task, at):
    sizes = [len(task.split("train", e, 0, 1).batches) for e in (1, 2)]
    k = {1: 1, "end": sizes[0], "end+1": sizes[0] + 1, "end2": sum(sizes)}[at]
    want = _expected(task, 4)
    state = want[k - 1][:2]  # the position after k batches
    resumed = BatchStream(task, DistInfo(), num_workers=2, epoch=state[0], offset=state[1])
    try:
        rest = _take(resumed, 6)
    finally:
        resumed.close()
    assert _same(rest, want[k: k + 6])


def test_close_with_prefetched_batches_then_next_continues_in_place(task):
    want = _expected(task, 3)
    stream = BatchStream(task, DistInfo(), num_workers=2)
    try:
        got = _take(stream, 3)
        stream.close()  # the workers had prefetched more: those batches are dropped and loaded again
        got += _take(stream, len(want) - 3)
    finally:
        stream.close()
    assert _same(got, want)


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
