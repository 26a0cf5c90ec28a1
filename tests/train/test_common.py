"""Shared helpers for the trainer tests (tiny corpus written with soundfile, tiny configs), plus unit
tests of the schedules and the typed run config."""

from __future__ import annotations

import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from speech_ssl.config import ConfigError
from speech_ssl.train.schedules import (
    ScheduleConfig,
    lr_at,
    polynomial_decay_lr,
    tri_stage_lr,
)
from tests import REPO

SR = 16000


def make_corpus(root: Path, n: int = 24, seed: int = 0, min_s: float = 0.6, max_s: float = 1.2) -> Path:
    """``n`` utterances of 'phone-like' segments: each of 6 units is a pair of sinusoids (formants) with a
    pitch buzz, 40-120 ms long, plus a little noise. Structured enough for contrastive learning to find.
    Returns the manifest path (``root/train.tsv``; ``root/valid.tsv`` holds 6 more)."""
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    units = [(300 + 150 * i, 900 + 300 * ((i * 7) % 6)) for i in range(6)]

    def utterance() -> np.ndarray:
        total = int(rng.uniform(min_s, max_s) * SR)
        out = []
        size = 0
        while size < total:
            f1, f2 = units[rng.integers(len(units))]
            dur = int(rng.uniform(0.04, 0.12) * SR)
            t = np.arange(dur) / SR
            f0 = rng.uniform(90, 160)
            buzz = 0.5 + 0.5 * np.sign(np.sin(2 * np.pi * f0 * t))
            seg = (np.sin(2 * np.pi * f1 * t) + 0.6 * np.sin(2 * np.pi * f2 * t)) * (0.4 + 0.6 * buzz)
            out.append(seg * np.hanning(dur))
            size += dur
        x = np.concatenate(out)[:total]
        return (0.3 * x + 0.01 * rng.standard_normal(total)).astype(np.float32)

    for split, count in (("train", n), ("valid", 6)):
        lines = [str(root / "wav")]
        (root / "wav").mkdir(exist_ok=True)
        for i in range(count):
            x = utterance()
            name = f"{split}_{i:03d}.wav"
            sf.write(root / "wav" / name, x, SR, subtype="FLOAT")
            lines.append(f"{name}\t{len(x)}")
        (root / f"{split}.tsv").write_text("\n".join(lines) + "\n")
    return root / "train.tsv"


# Fixtures of the trainer test modules (registered by importing them; the names are what tests ask for).
@pytest.fixture(name="one_thread")
def one_thread_fixture():
    """These tests train small models: one intra-op thread is faster than two on a shared 2-core box."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="module", name="corpus")
def corpus_fixture(tmp_path_factory) -> Path:
    """A ``make_corpus`` folder of 24 training utterances, shared by a module's tests."""
    root = tmp_path_factory.mktemp("corpus")
    make_corpus(root, n=24)
    return root


@pytest.fixture(scope="module", name="cfg_file")
def cfg_file_fixture(tmp_path_factory) -> Path:
    """A minimal ``task: pretrain`` YAML config (the tests pass everything else as overrides)."""
    return write_config(tmp_path_factory.mktemp("cfg") / "pretrain.yaml")


def tiny_overrides(corpus: Path, **extra) -> list[str]:
    """Dotted overrides for a fast CPU run of the tiny preset on ``make_corpus`` data."""
    base = {
        "model.preset": "tiny",
        "data.train": f"[{corpus / 'train.tsv'}]",
        "data.valid": f"[{corpus / 'valid.tsv'}]",
        "data.max_tokens": 64000,
        "data.min_sample_size": 4000,
        "data.max_sample_size": 16000,
        "optim.lr": 2e-3,
        "optim.max_update": 8,
        "schedule.warmup_updates": 2,
        "checkpoint.save_interval_updates": 4,
        "checkpoint.keep_last": 2,
        "logging.log_interval": 1,
        "logging.valid_interval_updates": 0,
        "logging.progress_bar": False,
        "logging.tensorboard": False,
        "device": "cpu",
    }
    base.update(extra)
    return [f"{k}={v}" for k, v in base.items()]


def write_config(path: Path, text: str = "task: pretrain\n") -> Path:
    path.write_text(text)
    return path


def run_cli(args: list[str], env_extra: dict | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
    env = dict(os.environ, OMP_NUM_THREADS="1", SPEECH_SSL_NO_BAR="1", PYTHONPATH=str(REPO))
    env.update(env_extra or {})
    return subprocess.run(
        [sys.executable, "-m", "speech_ssl", *args], capture_output=True, text=True, env=env, timeout=timeout, cwd=REPO
    )


# ------------------------------------------------------------------------------------------------ tests
def test_polynomial_decay_matches_fairseq():
    lr, W, T = 5e-4, 10, 110
    assert polynomial_decay_lr(0, lr, W, T) == pytest.approx(lr / W)  # fairseq sets lr/W at construction
    assert polynomial_decay_lr(1, lr, W, T) == pytest.approx(lr / W)
    assert polynomial_decay_lr(5, lr, W, T) == pytest.approx(lr * 0.5)
    assert polynomial_decay_lr(10, lr, W, T) == pytest.approx(lr)
    assert polynomial_decay_lr(60, lr, W, T) == pytest.approx(lr * 0.5)
    assert polynomial_decay_lr(110, lr, W, T) == 0.0
    assert polynomial_decay_lr(60, lr, W, T, end_lr=1e-5, power=2.0) == pytest.approx((lr - 1e-5) * 0.25 + 1e-5)


def test_tri_stage_matches_fairseq():
    lr = 1e-4
    cfg = ScheduleConfig(name="tri_stage", phase_ratio=(0.1, 0.4, 0.5))
    f = lambda n: lr_at(cfg, n, lr, 1000)  # noqa: E731
    assert f(0) == pytest.approx(0.01 * lr)
    assert f(50) == pytest.approx(0.01 * lr + (lr - 0.01 * lr) / 100 * 50)
    assert f(100) == pytest.approx(lr)
    assert f(499) == pytest.approx(lr)
    assert f(500) == pytest.approx(lr)
    assert f(1000) == pytest.approx(0.05 * lr)  # end of decay: final_lr_scale
    assert f(750) == pytest.approx(lr * math.exp(math.log(0.05) * 250 / 500))
    assert f(5000) == pytest.approx(0.05 * lr)
    assert tri_stage_lr(10, lr, 0, 0, 100) == pytest.approx(lr * math.exp(math.log(0.05) / 100 * 10))


def test_bad_config_names_key_and_line(tmp_path):
    from speech_ssl.train.config import load_train_config

    cfg = tmp_path / "bad.yaml"
    cfg.write_text("task: pretrain\ndata:\n  train: [a.tsv]\noptim:\n  lr: 1e-3\n  warmup: 10\n")
    with pytest.raises(ConfigError, match=r"bad.yaml:6: key 'optim.warmup': unknown key"):
        load_train_config(cfg)
    cfg.write_text("task: pretrain\ndata:\n  train: [a.tsv]\n  max_tokens: lots\n")
    with pytest.raises(ConfigError, match=r"bad.yaml:4: key 'data.max_tokens': expected an integer"):
        load_train_config(cfg)
    cfg.write_text("task: pretrain\n")
    with pytest.raises(ConfigError, match="data.train"):
        load_train_config(cfg)


def test_bad_model_override_names_key_and_line(tmp_path):
    from speech_ssl.train.config import load_train_config
    from speech_ssl.train.tasks import build_task

    cfg = tmp_path / "m.yaml"
    cfg.write_text("data:\n  train: [a.tsv]\nmodel:\n  preset: tiny\n  overrides:\n    mask_prob: 0.5\n    mask_lenght: 3\n")
    c = load_train_config(cfg)
    with pytest.raises(ConfigError, match=r"m.yaml:7: key 'model.overrides.mask_lenght': unknown key"):
        build_task(c, str(cfg))
    cfg.write_text("data:\n  train: [a.tsv]\nmodel:\n  preset: tinyy\n")
    with pytest.raises(ConfigError, match="unknown preset 'tinyy'"):
        build_task(load_train_config(cfg), str(cfg))


def test_load_checkpoint_weights_names_file_model_and_hint(tmp_path):
    """Strict loading refuses a checkpoint of another shape, naming the weights file, the model and what to
    check; non-strict loading takes the matching keys."""
    from speech_ssl.models.checkpoint import save_model
    from speech_ssl.models.config import get_preset
    from speech_ssl.models.wav2vec2 import Wav2Vec2ForPretraining
    from speech_ssl.train.task import load_checkpoint_weights

    cfg = get_preset("tiny")
    src = Wav2Vec2ForPretraining(cfg)
    save_model(src, tmp_path / "ck")
    same = Wav2Vec2ForPretraining(cfg)
    load_checkpoint_weights(same, tmp_path / "ck", True, "the model", "nothing")
    assert all(torch.equal(v, same.state_dict()[k]) for k, v in src.state_dict().items())
    other = Wav2Vec2ForPretraining(cfg.replace(encoder_layers=cfg.encoder_layers + 1))
    with pytest.raises(ConfigError, match=r"model.safetensors: weights do not match the CTC model \(check "
                       r"finetune.pretrained and the dictionary\):\n  \d+ missing: "):
        load_checkpoint_weights(other, tmp_path / "ck", True, "the CTC model", "finetune.pretrained and the dictionary")
    load_checkpoint_weights(other, tmp_path / "ck", False, "the model", "nothing")
    key = "wav2vec2.encoder.layers.0.attn.q_proj.weight"
    assert torch.equal(other.state_dict()[key], src.state_dict()[key])


def test_load_checkpoint_weights_refuses_a_folder_whose_config_does_not_describe_its_weights(tmp_path):
    """--init-from / --resume: the folder's config.json must describe its own weights, even when the weights
    happen to fit the run's model."""
    import json

    from speech_ssl.errors import DataError
    from speech_ssl.models.checkpoint import save_model
    from speech_ssl.models.config import get_preset
    from speech_ssl.models.wav2vec2 import Wav2Vec2ForPretraining
    from speech_ssl.train.task import load_checkpoint_weights

    cfg = get_preset("tiny")
    save_model(Wav2Vec2ForPretraining(cfg), tmp_path / "ck")
    meta = json.loads((tmp_path / "ck" / "config.json").read_text())
    meta["model"]["encoder_layers"] = 5
    (tmp_path / "ck" / "config.json").write_text(json.dumps(meta))
    with pytest.raises(DataError, match=r"config.json \(architecture Wav2Vec2ForPretraining\):\n  \d+ missing: "):
        load_checkpoint_weights(Wav2Vec2ForPretraining(cfg), tmp_path / "ck", True, "the model", "nothing")


def test_checkpoint_write_failure_keeps_the_previous_one_and_stale_temp_folders_go(tmp_path):
    """A full disk / file-size limit while saving: a one-line CheckpointError, the previous checkpoint intact and
    no temp folder left; a temp folder of a killed writer is removed by the next successful save."""
    import subprocess
    import sys

    code = f"""
import resource, signal, torch
from pathlib import Path
from speech_ssl.train.checkpoint import CheckpointError, save_checkpoint, verify_checkpoint
dest = Path({str(tmp_path / "ck" / "checkpoint_00000001")!r})
def weights(f):
    (f / "model.safetensors").write_bytes(b"x" * 100)
save_checkpoint(dest, weights, {{"num_updates": 1}}, {{"num_updates": 1}})
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
resource.setrlimit(resource.RLIMIT_FSIZE, (2000, 2000))
try:
    save_checkpoint(dest, weights, {{"num_updates": 2, "big": torch.zeros(10000)}}, {{"num_updates": 2}})
except CheckpointError as e:
    print("ERROR", e)
verify_checkpoint(dest)
print("INTACT")
"""
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert "INTACT" in res.stdout, res.stderr
    (line,) = [x for x in res.stdout.splitlines() if x.startswith("ERROR")]
    assert "could not write the checkpoint" in line and "checkpoint_00000001 is unchanged" in line
    assert "--resume" in line
    assert sorted(p.name for p in (tmp_path / "ck").iterdir()) == ["checkpoint_00000001"]
    from speech_ssl.train.checkpoint import save_checkpoint

    stale = tmp_path / "ck" / ".tmp-checkpoint_00000002-999999999"  # a writer killed mid-save
    stale.mkdir()
    save_checkpoint(tmp_path / "ck" / "checkpoint_00000003", lambda f: (f / "model.safetensors").write_bytes(b"y"),
                    None, {"num_updates": 3})
    assert not stale.exists()
