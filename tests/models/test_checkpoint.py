"""Our checkpoints: safetensors + config.json, folder or file prefix, strict loading, clear errors."""

from __future__ import annotations

import json

import pytest
import torch

from speech_ssl.errors import DataError
from speech_ssl.models import Wav2Vec2ForCTC, Wav2Vec2ForPretraining, Wav2Vec2Model, get_preset
from speech_ssl.models.checkpoint import load_backbone, load_model, read_checkpoint_config, save_model


@pytest.mark.parametrize("kind", ["model", "pretraining", "ctc"])
def test_round_trip_folder(tmp_path, kind):
    cfg = get_preset("tiny", mask_prob=0.3)
    model = {"model": lambda: Wav2Vec2Model(cfg), "pretraining": lambda: Wav2Vec2ForPretraining(cfg),
             "ctc": lambda: Wav2Vec2ForCTC(cfg, 6, ["<s>", "<pad>", "</s>", "<unk>", "a", "b"], 7)}[kind]().eval()
    save_model(model, tmp_path / "ck", extra={"normalize": True})
    assert sorted(p.name for p in (tmp_path / "ck").iterdir()) == ["config.json", "model.safetensors"]
    back = load_model(tmp_path / "ck").eval()
    assert type(back) is type(model) and back.cfg == model.cfg
    for (k, a), (_, b) in zip(model.state_dict().items(), back.state_dict().items()):
        assert torch.equal(a, b), k
    meta = read_checkpoint_config(tmp_path / "ck")
    assert meta["extra"] == {"normalize": True}
    if kind == "ctc":
        assert back.vocab == model.vocab and back.freeze_finetune_updates == 7
    assert isinstance(load_backbone(tmp_path / "ck"), Wav2Vec2Model)


def test_prefix_form_and_no_tmp_left(tmp_path):
    model = Wav2Vec2ForPretraining(get_preset("tiny"))
    save_model(model, tmp_path / "run" / "best.safetensors")
    names = sorted(p.name for p in (tmp_path / "run").iterdir())
    assert names == ["best.json", "best.safetensors"]
    assert isinstance(load_model(tmp_path / "run" / "best.safetensors"), Wav2Vec2ForPretraining)
    # a folder's model.safetensors named directly: the folder's config.json goes with it
    save_model(model, tmp_path / "ck")
    assert isinstance(load_model(tmp_path / "ck" / "model.safetensors"), Wav2Vec2ForPretraining)


def test_errors_name_the_file(tmp_path):
    with pytest.raises(DataError, match="config.json: checkpoint config not found"):
        load_model(tmp_path)
    (tmp_path / "config.json").write_text('{"model_type": "wav2vec2"}')
    with pytest.raises(DataError, match="HF transformers folder"):
        load_model(tmp_path)
    (tmp_path / "config.json").write_text("{bad json")
    with pytest.raises(DataError, match=r"config.json:1: invalid JSON"):
        load_model(tmp_path)
    model = Wav2Vec2ForPretraining(get_preset("tiny"))
    save_model(model, tmp_path / "a")
    meta = json.loads((tmp_path / "a" / "config.json").read_text())
    meta["model"]["encoder_layers"] = 3
    (tmp_path / "a" / "config.json").write_text(json.dumps(meta))
    with pytest.raises(DataError, match=r"model.safetensors: weights do not match config.json.*\n  \d+ missing: .*layers\.2"):
        load_model(tmp_path / "a")
    # a config naming a far bigger architecture than its weights fails on the header, before building it
    meta["model"] = {**meta["model"], "encoder_layers": 48, "encoder_embed_dim": 1920, "encoder_ffn_embed_dim": 7680,
                     "encoder_attention_heads": 16}
    (tmp_path / "a" / "config.json").write_text(json.dumps(meta))
    with pytest.raises(DataError, match=r"shape mismatches: .*\(file \(64,\), model \(1920,\)\)"):
        load_model(tmp_path / "a")
    meta["model"]["encoder_layers"] = "three"
    (tmp_path / "a" / "config.json").write_text(json.dumps(meta))
    with pytest.raises(DataError, match="encoder_layers"):
        load_model(tmp_path / "a")
    (tmp_path / "a" / "model.safetensors").write_bytes(b"not safetensors")
    meta["model"]["encoder_layers"] = 2
    (tmp_path / "a" / "config.json").write_text(json.dumps(meta))
    with pytest.raises(DataError, match="cannot read safetensors"):
        load_model(tmp_path / "a")


def test_refused_pickles_are_one_sentence_without_advice_to_disable_the_protection(tmp_path):
    import argparse

    from speech_ssl.errors import describe_load_error

    torch.save({"a": argparse.Namespace(x=1)}, tmp_path / "ns.pt")
    with pytest.raises(Exception) as info:
        torch.load(tmp_path / "ns.pt", weights_only=True)
    msg = describe_load_error(info.value)
    assert "argparse.Namespace" in msg and "weights_only" not in msg and "\n" not in msg
    (tmp_path / "cut.pt").write_bytes((tmp_path / "ns.pt").read_bytes()[:100])
    with pytest.raises(Exception) as info:
        torch.load(tmp_path / "cut.pt", weights_only=True)
    assert "truncated or corrupted" in describe_load_error(info.value)
