"""speech_ssl.models.random_init.random_like and `speech-ssl init`: random weights with another checkpoint's
architecture, reproducible from the seed, an existing output kept."""

from __future__ import annotations

import pytest
import torch

from speech_ssl.cli import main
from speech_ssl.errors import DataError
from speech_ssl.models.checkpoint import load_model, read_checkpoint_config, save_model
from speech_ssl.models.config import get_preset
from speech_ssl.models.random_init import random_like
from speech_ssl.models.wav2vec2 import Wav2Vec2ForPretraining


def _like(tmp_path):
    model = Wav2Vec2ForPretraining(get_preset("tiny"))
    save_model(model, tmp_path / "like")
    return tmp_path / "like", model


def test_random_like_architecture_seed_and_kept(tmp_path):
    like, trained = _like(tmp_path)
    a = random_like(like, tmp_path / "a", seed=3)
    assert read_checkpoint_config(a)["model"] == read_checkpoint_config(like)["model"]
    ma, mb = load_model(a), load_model(random_like(like, tmp_path / "b", seed=3))
    mc = load_model(random_like(like, tmp_path / "c", seed=4))
    assert isinstance(ma, Wav2Vec2ForPretraining)
    sa, sb, sc, st = ma.state_dict(), mb.state_dict(), mc.state_dict(), trained.state_dict()
    assert sa.keys() == st.keys()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)  # same seed, same weights
    # another seed draws other weights wherever the init is random (not the constant ones: norms, biases)
    random_keys = {k for k in sa if not torch.equal(sa[k], st[k])}
    assert len(random_keys) > 10 and random_keys == {k for k in sa if not torch.equal(sa[k], sc[k])}
    # an existing output made the same way is kept; asked with another seed, it is an error (not silently kept)
    stamp = (a / "model.safetensors").stat().st_mtime_ns
    assert random_like(like, a, seed=3) == a
    with pytest.raises(DataError, match="made with seed 3"):
        random_like(like, a, seed=99)
    assert (a / "model.safetensors").stat().st_mtime_ns == stamp
    (tmp_path / "file").write_text("x\n")
    with pytest.raises(DataError, match="exists and is a file"):
        random_like(like, tmp_path / "file", seed=3)


def test_init_command(tmp_path, capsys):
    like, _ = _like(tmp_path)
    assert main(["init", str(like), str(tmp_path / "r"), "--seed", "3"]) == 0
    assert capsys.readouterr().out.strip() == str(tmp_path / "r")
    random_like(like, tmp_path / "f", seed=3)
    made, direct = load_model(tmp_path / "r").state_dict(), load_model(tmp_path / "f").state_dict()
    assert made.keys() == direct.keys() and all(torch.equal(made[k], direct[k]) for k in made)
    assert main(["init", str(tmp_path / "none"), str(tmp_path / "x")]) == 2
    assert "config" in capsys.readouterr().err and not (tmp_path / "x").exists()
