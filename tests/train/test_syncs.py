"""No host synchronisation in the training step between log lines (issue 15).

On an accelerator, reading a device value on the host (``.item()``, ``float(t)``, ``bool(t)``, ``if t:``,
``.tolist()``, ``.cpu()``, ``.numpy()``, data-dependent shapes such as ``nonzero``) waits for every queued kernel
and stalls the pipeline. There is no accelerator here, so the test counts the Python entry points of those reads
during CPU updates: none may happen in an update that does not log, outside the model's own known reads
(``MODEL_READS``: reads of the batch's host lengths and what the model derives from them on the host; a CPU
counter cannot tell host from device tensors, so tests/models/test_wav2vec2.py proves they are host reads by
running the step on the ``meta`` device); the logging update reads (the counter works).
"""

from __future__ import annotations

import sys
from collections import Counter
from contextlib import contextmanager
from pathlib import Path

import pytest
import torch

from speech_ssl.train.config import load_train_config
from speech_ssl.train.pretrain_task import PretrainTask
from speech_ssl.train.trainer import Trainer
from tests.train.test_common import (  # noqa: F401 (the fixtures: one_thread, corpus, cfg_file)
    cfg_file_fixture,
    corpus_fixture,
    one_thread_fixture,
    tiny_overrides,
)

READS = ("item", "tolist", "cpu", "numpy", "nonzero", "masked_select", "__bool__", "__float__", "__int__", "__index__")

# (file, function) of the model's reads per step, all of host tensors (stream.to_device leaves the lengths on the
# host): input checks of the lengths, the padding decision (wav2vec2.py forward; context.py's layerdrop draw is a
# host tensor by design), mask sampling (data-dependent span counts), and the masked-frame gather / negative
# sampling (nonzero: the number of masked frames is a shape). tests/models/test_wav2vec2.py
# (test_pretraining_step_reads_no_device_value) runs that step on the meta device, where a device read raises.
MODEL_READS = {
    ("wav2vec2.py", "check_input"),
    ("wav2vec2.py", "forward"),
    ("context.py", "forward"),
    ("masking.py", "compute_mask_indices"),
    ("masking.py", "sample_negatives"),
}


PAUSED = [False]  # the host batch (DataLoader, collater) is host data: not counted


@contextmanager
def count_reads():
    """Count calls of the host-read entry points of torch.Tensor (and torch.cuda.synchronize) by caller."""
    calls: Counter = Counter()
    saved = {name: getattr(torch.Tensor, name) for name in READS}

    def wrap(name, fn):
        def counted(*args, **kwargs):
            if not PAUSED[0]:
                f = sys._getframe(1)
                calls[(Path(f.f_code.co_filename).name, f.f_code.co_name, name)] += 1
            return fn(*args, **kwargs)
        return counted

    for name, fn in saved.items():
        setattr(torch.Tensor, name, wrap(name, fn))
    sync = torch.cuda.synchronize
    torch.cuda.synchronize = wrap("synchronize", sync)
    try:
        yield calls
    finally:
        for name, fn in saved.items():
            setattr(torch.Tensor, name, fn)
        torch.cuda.synchronize = sync


def outside_model(calls: Counter) -> Counter:
    return Counter({k: v for k, v in calls.items() if k[:2] not in MODEL_READS})


def pause_while_loading(tr: Trainer) -> None:
    """Do not count the reads of the data pipeline (``stream.next`` builds the batch on the host)."""
    load = tr.stream.next

    def next_batch():
        PAUSED[0] = True
        try:
            return load()
        finally:
            PAUSED[0] = False

    tr.stream.next = next_batch


@pytest.mark.parametrize("precision", ["fp32", "fp16"])
def test_no_host_reads_between_log_lines(corpus, cfg_file, tmp_path, one_thread, precision):
    ov = tiny_overrides(corpus, **{"optim.max_update": 6, "logging.log_interval": 3, "precision.mode": precision,
                                   "checkpoint.save_interval_updates": 0, "optim.clip_norm": 1.0})
    cfg = load_train_config(cfg_file, ov)
    tr = Trainer(cfg, PretrainTask(cfg, str(cfg_file)), tmp_path)
    tr.setup()
    assert tr.optim_impl == "fused"
    per_update: list[Counter] = []
    at_log: list[Counter] = []
    update, log_interval = tr.train_update, tr._log_interval

    def counted_update():
        with count_reads() as calls:
            step = update()
        per_update.append(calls)
        return step

    def counted_log(*args):
        with count_reads() as calls:
            log_interval(*args)
        at_log.append(calls)

    tr.train_update, tr._log_interval = counted_update, counted_log
    pause_while_loading(tr)
    tr.train()
    assert len(per_update) == 6 and len(at_log) == 2
    for n, calls in enumerate(per_update):
        assert not outside_model(calls), f"update {n} reads device values on the host: {dict(outside_model(calls))}"
    # the log line reads the interval (so the counter sees reads), in one copy for the sums
    assert sum(at_log[0].values()) > 0
    assert at_log[0][("report.py", "to_host", "tolist")] == 2  # the skip records, then the interval


def test_the_counter_sees_an_item_in_the_step(corpus, cfg_file, tmp_path, one_thread):
    """A task that reads its loss on the host in every step is caught."""

    class Reads(PretrainTask):
        def train_step(self, model, batch, num_updates):
            out = super().train_step(model, batch, num_updates)
            out.logs["host_loss"] = out.loss.item()
            return out

    cfg = load_train_config(cfg_file, tiny_overrides(corpus, **{"optim.max_update": 1}))
    tr = Trainer(cfg, Reads(cfg), None)
    tr.setup()
    pause_while_loading(tr)
    with count_reads() as calls:
        tr.train_update()
    assert outside_model(calls) == Counter({("test_syncs.py", "train_step", "item"): 1})


def test_non_fused_adamw_reads_one_flag_per_update(corpus, cfg_file, tmp_path, one_thread):
    """for_loop / foreach cannot take the skip flag on the device: the host reads it, once per update."""
    cfg = load_train_config(cfg_file, tiny_overrides(corpus, **{"optim.max_update": 2, "optim.impl": "for_loop"}))
    tr = Trainer(cfg, PretrainTask(cfg), None)
    tr.setup()
    pause_while_loading(tr)
    with count_reads() as calls:
        tr.train_update()
    calls = outside_model(calls)
    # torch's for_loop AdamW reads its step counters, which it keeps on the host (no device sync)
    assert calls.pop(("optimizer.py", "_get_value", "item")) > 0
    assert calls == Counter({("optim.py", "step_unless", "__bool__"): 1})
