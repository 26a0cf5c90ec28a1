"""speech-ssl plan: the update_freq that keeps the recipe's batch on N GPUs (fairseq BASE: 64 GPUs x 1)."""

import pytest

from speech_ssl.cli import main
from tests import REPO

BASE = str(REPO / "recipes" / "librispeech" / "conf" / "pretrain_base.yaml")


@pytest.mark.parametrize("gpus,freq", [(64, 1), (8, 8), (3, 22), (1, 64)])
def test_update_freq_matches_the_reference_batch(gpus, freq, capsys):
    assert main(["plan", BASE, "--gpus", str(gpus), "--print", "update_freq"]) == 0
    assert capsys.readouterr().out.strip() == str(freq)


def test_plan_prints_hours_per_update(capsys):
    assert main(["plan", BASE, "optim.max_update=1000", "--gpus", "8"]) == 0
    out = capsys.readouterr().out
    # 1.4M samples x 64 micro-batches / 16 kHz / 3600 = 1.556 h per update (fairseq BASE)
    assert "x 8 GPU(s) x update_freq 8 = 1.556 h" in out and "1,000 updates: at most 1,555.6 h" in out


def test_plan_reproduces_fairseqs_published_runs(capsys):
    """wav2vec 2.0 (Baevski et al. 2020, section 4.2): BASE on 64 V100s for 1.6 days (400k updates, 1.4M samples
    per GPU); LARGE on LibriVox on 128 V100s for 5.2 days (600k updates, 1.2M samples per GPU). The throughputs
    those imply at full batches (253 and 100 audio-s/s per GPU) give the published days back."""
    large = str(REPO / "recipes" / "librispeech" / "conf" / "pretrain_large.yaml")
    assert main(["plan", BASE, "--gpus", "64", "--throughput", "253"]) == 0
    out = capsys.readouterr().out
    assert "x 64 GPU(s) x update_freq 1 = 1.556 h" in out and "1.60 days of wall time" in out
    assert main(["plan", large, "optim.max_update=600000", "--gpus", "128", "--throughput", "100"]) == 0
    out = capsys.readouterr().out
    assert "x 128 GPU(s) x update_freq 1 = 2.667 h" in out and "5.21 days of wall time, 16,000 GPU-hours" in out


def test_plan_memory_advice(capsys):
    assert main(["plan", BASE, "model.preset=xls_r_2b", "--gpus", "8", "--gpu-memory", "40"]) == 0
    out = capsys.readouterr().out
    assert "2,162.9M parameters; weights + gradients + Adam state: 34.6 GB on every GPU (DDP)" in out
    assert "does not fit a 40 GB GPU; use distributed.strategy=fsdp (4.3 GB of state per GPU over 8)" in out
    assert main(["plan", BASE, "model.preset=xls_r_2b", "distributed.strategy=fsdp",
                 "distributed.activation_checkpointing=true", "--gpus", "8", "--gpu-memory", "40"]) == 0
    out = capsys.readouterr().out
    assert "4.3 GB per GPU with FSDP" in out and "fits a 40 GB GPU" in out
    # fairseq's own BASE batch (1.4M samples, fp16) fits the V100s it was trained on
    assert main(["plan", BASE, "--gpus", "64", "--gpu-memory", "32"]) == 0
    assert "fits a 32 GB GPU" in capsys.readouterr().out
