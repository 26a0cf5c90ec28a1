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
    assert "x 8 GPU(s) x update_freq 8 = 1.556 h" in out and "1,000 updates: at most 1,556 h" in out
