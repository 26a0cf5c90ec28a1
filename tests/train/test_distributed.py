"""FSDP == single process, activation checkpointing changes nothing, a dead rank ends the job non-zero."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from speech_ssl.train.checkpoint import find_latest
from speech_ssl.train.config import load_train_config
from speech_ssl.train.pretrain_task import PretrainTask
from speech_ssl.train.trainer import Trainer
from tests.train.test_common import REPO, cfg_file_fixture, corpus_fixture, one_thread_fixture, tiny_overrides  # noqa: F401

# every test here trains: one intra-op thread
pytestmark = pytest.mark.usefixtures("one_thread")


def _env():
    return dict(os.environ, OMP_NUM_THREADS="1", SPEECH_SSL_NO_BAR="1", PYTHONPATH=str(REPO))


def _torchrun(cfg_file, run_dir, ov, *extra):
    return [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
            "-m", "speech_ssl.cli.pretrain", str(cfg_file), *ov, "--run-dir", str(run_dir), *extra]


def _single(cfg_file, run_dir, ov) -> dict[str, torch.Tensor]:
    cfg = load_train_config(cfg_file, ov)
    tr = Trainer(cfg, PretrainTask(cfg), run_dir)
    tr.setup()
    tr.train()
    return {k: v.detach() for k, v in tr.raw_model.state_dict().items()}


@pytest.mark.slow
def test_fsdp_two_processes_equal_single_process(corpus, cfg_file, tmp_path):
    """FSDP2 (fully_shard per Transformer layer + root) on 2 Gloo ranks, resumed once from its gathered
    checkpoint, equals one process with update_freq 2."""
    ov = tiny_overrides(corpus, **{"optim.max_update": 3, "data.max_tokens": 32000,
                                   "checkpoint.save_interval_updates": 0, "logging.valid_interval_updates": 0})
    fsdp = ov + ["distributed.strategy=fsdp"]
    r = subprocess.run(_torchrun(cfg_file, tmp_path / "fsdp", fsdp, "--stop-after-updates", "2"), env=_env(),
                       cwd=REPO, capture_output=True, text=True, timeout=180)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "strategy fsdp" in r.stderr
    r = subprocess.run(_torchrun(cfg_file, tmp_path / "fsdp", fsdp, "--resume"), env=_env(), cwd=REPO,
                       capture_output=True, text=True, timeout=180)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "resumed from" in r.stderr
    got = load_file(str(find_latest(tmp_path / "fsdp" / "checkpoints") / "model.safetensors"))
    want = _single(cfg_file, tmp_path / "one", ov + ["optim.update_freq=2"])
    assert got.keys() == want.keys()
    assert max(float((got[k] - want[k]).abs().max()) for k in want) < 1e-5


def test_activation_checkpointing_gives_the_same_update(corpus, cfg_file, tmp_path):
    ov = tiny_overrides(corpus, **{"optim.max_update": 2, "checkpoint.save_interval_updates": 0,
                                   "logging.valid_interval_updates": 0})
    a = _single(cfg_file, tmp_path / "a", ov)
    b = _single(cfg_file, tmp_path / "b", ov + ["distributed.activation_checkpointing=true"])
    assert a.keys() == b.keys()
    assert max(float((a[k] - b[k]).abs().max()) for k in a) < 1e-6


def _children(pid: int) -> list[int]:
    out = []
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                fields = (d / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid:
                out.append(int(d.name))
    return out


def test_dead_rank_ends_the_job_with_an_error(corpus, cfg_file, tmp_path):
    ov = tiny_overrides(corpus, **{"optim.max_update": 100000, "checkpoint.save_interval_updates": 0,
                                   "distributed.timeout_minutes": 1})
    run_dir = tmp_path / "run"
    proc = subprocess.Popen(_torchrun(cfg_file, run_dir, ov), env=_env(), cwd=REPO,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    log = run_dir / "log.jsonl"
    deadline = time.time() + 90
    while time.time() < deadline and (not log.exists() or len(log.read_text().splitlines()) < 2):
        time.sleep(0.2)
    workers = _children(proc.pid)
    assert len(workers) == 2, workers
    os.kill(max(workers), signal.SIGKILL)  # one rank dies without a word
    t0 = time.time()
    _, err = proc.communicate(timeout=120)
    assert proc.returncode != 0
    assert time.time() - t0 < 60, "the surviving rank hung"
    assert "SIGKILL" in err or "Signal 9" in err or "exitcode" in err
