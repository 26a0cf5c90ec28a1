"""report.LogSums (the one reduction of summed logs) and the interval log line."""

from __future__ import annotations

import os
import socket
from types import SimpleNamespace

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from speech_ssl.train.distributed import DistInfo
from speech_ssl.train.report import DeviceSums, Interval, LogSums, interval_metrics, to_host


def step_output(loss, sample_size, logs):  # what LogSums reads of a task's StepOutput
    return SimpleNamespace(loss=loss, sample_size=sample_size, logs=logs)


def test_log_sums_add_in_float64_and_reduce_once():
    logs = LogSums()
    for loss, n in ((1.5, 3), (2.25, 4)):
        out = step_output(loss=torch.tensor(loss), sample_size=n, logs={"correct": torch.tensor([1.0, 2.0]), "loss": 9.0})
        logs.add_output(out, out.loss.float())
        logs.add("audio_samples", torch.tensor(100))  # a tensor of the host batch
    assert logs.sums["loss"].dtype == torch.float64  # stays a device tensor until the reduce
    want = {"audio_samples": 200.0, "correct": 6.0, "loss": 3.75, "n_batches": 2.0, "sample_size": 7.0}
    reduced = logs.reduce(DistInfo(), torch.device("cpu"))  # on the device, unread
    assert reduced.keys == sorted(want) and reduced.vec.dtype == torch.float64
    assert float(reduced.get("loss")) == 3.75 and float(reduced.get("missing", 0.0)) == 0.0
    assert reduced.to_host() == want
    assert logs.all_reduce(DistInfo(), torch.device("cpu")) == want


def test_to_host_reads_several_tensors_in_one_copy():
    assert to_host(torch.tensor([1.0, 2.0]), torch.tensor(3, dtype=torch.int64), torch.tensor([[4.0]])) == [
        [1.0, 2.0], [3.0], [4.0]]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _rank_main(rank: int, port: int, q) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=2)
    try:
        info = DistInfo(rank=rank, world_size=2, backend="gloo")
        logs = LogSums()
        if rank == 0:  # rank 1 saw no validation batch: it has no keys at all
            logs.add_output(step_output(torch.tensor(2.0), 5, {"wer_errors": 3.0}), torch.tensor(2.0))
        sums = logs.all_reduce(info, torch.device("cpu"), gather_keys=True)
        q.put((rank, sums))
    finally:
        dist.destroy_process_group()


def test_log_sums_agree_on_the_union_of_keys_over_ranks():
    ctx = mp.get_context("spawn")
    q = ctx.Queue()
    port = _free_port()
    procs = [ctx.Process(target=_rank_main, args=(r, port, q)) for r in range(2)]
    for p in procs:
        p.start()
    got = dict(q.get(timeout=60) for _ in procs)
    for p in procs:
        p.join(timeout=60)
        assert p.exitcode == 0
    want = {"loss": 2.0, "n_batches": 1.0, "sample_size": 5.0, "wer_errors": 3.0}
    assert got[0] == got[1] == want


def _step(sums: dict[str, float], skip: bool, gnorm: float, seconds: float, **groups: float) -> dict:
    keys = sorted(sums)
    return {"sums": DeviceSums(keys, torch.tensor([sums[k] for k in keys], dtype=torch.float64)),
            "skip": torch.tensor(skip), "gnorm": torch.tensor(gnorm), "seconds": seconds,
            "gnorm_groups": {k: torch.tensor(v) for k, v in groups.items()}}


def test_interval_line():
    iv = Interval()
    iv.add(_step({"loss": 4.0, "sample_size": 2.0, "audio_samples": 32000.0}, False, 3.0, 2.0, head=1.0))
    iv.add(_step({"loss": 2.0, "sample_size": 2.0, "audio_samples": 16000.0, "extra": 1.0}, True, float("nan"), 1.0,
                 head=float("nan")))
    totals = iv.to_host()
    assert (totals.updates, totals.skipped, totals.gnorm, totals.seconds) == (1, 1, 3.0, 3.0)
    assert totals.sums == {"loss": 6.0, "sample_size": 4.0, "audio_samples": 48000.0, "extra": 1.0}

    class T:
        def reduce_metrics(self, s):
            return {"loss": s["loss"] / s["sample_size"]}

    m = interval_metrics(totals, {"lr": 0.1, "loss_scale": None}, T(), 3, torch.device("cpu"))
    assert list(m)[:8] == ["loss", "lr", "gnorm", "audio_s_per_s", "audio_h_per_update", "mem_gb", "epoch", "skipped"]
    assert m["loss"] == 1.5 and m["gnorm"] == 3.0 and m["skipped"] == 1.0 and m["epoch"] == 3.0
    assert m["audio_s_per_s"] == pytest.approx(1.0) and m["audio_h_per_update"] == pytest.approx(1.5 / 3600)
    assert m["gnorm_head"] == 1.0 and "loss_scale" not in m


def test_peak_rss_is_the_process_own_not_its_parent():
    """A training process started by a big parent (the demo, a launcher) logs its own peak memory:
    ru_maxrss on Linux would carry the parent's over fork + exec."""
    import subprocess
    import sys

    import numpy as np

    from speech_ssl.train.report import peak_rss_bytes

    big = np.ones(600 * 2**20 // 8)  # 600 MiB, touched
    parent = peak_rss_bytes()
    code = "from speech_ssl.train.report import peak_rss_bytes; print(peak_rss_bytes())"
    child = int(subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True).stdout)
    assert parent >= big.nbytes
    assert 0 < child < parent - 400 * 2**20
