"""fairseq .pt checkpoints: restricted unpickling, config parsing, key tables (pretrained + fine-tuned)."""

from __future__ import annotations

import argparse
import os
import pickle
import sys
import types

import numpy as np
import pytest
import torch

from speech_ssl.config import to_dict
from speech_ssl.errors import DataError
from speech_ssl.interop.fairseq import key_table, literal_arith, load_fairseq, read_fairseq_checkpoint
from speech_ssl.models import Wav2Vec2ForCTC, Wav2Vec2ForPretraining, get_preset


@pytest.fixture()
def fake_fairseq_module():
    """A stand-in ``fairseq.logging.meters`` so a checkpoint can pickle a 'fairseq' object."""
    mod = types.ModuleType("fairseq.logging.meters")

    class AverageMeter:
        def __init__(self):
            self.val, self.count = 1.5, 3

    AverageMeter.__module__ = "fairseq.logging.meters"
    AverageMeter.__qualname__ = "AverageMeter"
    mod.AverageMeter = AverageMeter
    names = ["fairseq", "fairseq.logging", "fairseq.logging.meters"]
    saved = {n: sys.modules.get(n) for n in names}
    sys.modules["fairseq"] = types.ModuleType("fairseq")
    sys.modules["fairseq.logging"] = types.ModuleType("fairseq.logging")
    sys.modules["fairseq.logging.meters"] = mod
    yield mod
    for n, m in saved.items():
        if m is None:
            sys.modules.pop(n, None)
        else:
            sys.modules[n] = m


def fairseq_model_cfg(cfg):
    d = to_dict(cfg)
    d["conv_feature_layers"] = "[" + ", ".join(str(tuple(t)) for t in cfg.conv_feature_layers) + "]"
    d["_name"] = "wav2vec2"
    d["quantize_targets"] = True
    d["loss_weights"] = None
    return d


def to_fairseq_state(model, arch):
    ours = model.state_dict()
    return {fs: ours[o].clone() for o, fs in key_table(model.cfg, arch)}


def test_pretrained_checkpoint_with_cfg_dict(tmp_path, fake_fairseq_module):
    cfg = get_preset("tiny", extractor_mode="default", conv_bias=False, layer_norm_first=False)
    model = Wav2Vec2ForPretraining(cfg).eval()
    ckpt = {
        "cfg": {"model": fairseq_model_cfg(cfg), "criterion": {"_name": "wav2vec", "loss_weights": list(cfg.loss_weights)},
                "task": {"normalize": False}},
        "model": to_fairseq_state(model, "Wav2Vec2ForPretraining"),
        "optimizer_history": [{"num_updates": np.int64(400), "lr_scheduler_state": {"best": np.float64(3.25)}}],
        "extra_state": {"metrics": {"train": fake_fairseq_module.AverageMeter()}},
    }
    torch.save(ckpt, tmp_path / "ck.pt")
    raw = read_fairseq_checkpoint(tmp_path / "ck.pt")
    assert float(raw["optimizer_history"][0]["lr_scheduler_state"]["best"]) == 3.25
    assert "fairseq.logging.meters.AverageMeter" in repr(raw["extra_state"]["metrics"]["train"])
    loaded = load_fairseq(tmp_path / "ck.pt").eval()
    assert isinstance(loaded, Wav2Vec2ForPretraining) and loaded.cfg == cfg
    x = torch.randn(1, 4000)
    with torch.no_grad():
        assert torch.equal(model.wav2vec2(x).last_hidden_state, loaded.wav2vec2(x).last_hidden_state)


def test_finetuned_checkpoint_with_namespace_args_and_dict(tmp_path):
    cfg = get_preset("tiny")
    model = Wav2Vec2ForCTC(cfg, 8).eval()
    pre = argparse.Namespace(**fairseq_model_cfg(cfg))
    ft = {"_name": "wav2vec_ctc", "w2v_args": {"model": vars(pre)}, "mask_prob": 0.5, "layerdrop": 0.1,
          "final_dropout": 0.0, "feature_grad_mult": 0.0}
    state = to_fairseq_state(model, "Wav2Vec2ForCTC")
    state["w2v_encoder.w2v_model.quantizer.vars"] = torch.zeros(1, 4, 4)  # kept by some fine-tuned files
    torch.save({"args": None, "cfg": {"model": ft}, "model": state}, tmp_path / "ft.pt")
    (tmp_path / "dict.ltr.txt").write_text("| 10\nE 5\nT 4\nA 3\n")
    loaded = load_fairseq(tmp_path / "ft.pt", tmp_path / "dict.ltr.txt").eval()
    assert isinstance(loaded, Wav2Vec2ForCTC)
    assert loaded.vocab == ["<s>", "<pad>", "</s>", "<unk>", "|", "E", "T", "A"]
    assert loaded.cfg.mask_prob == 0.5 and loaded.cfg.encoder_layerdrop == 0.1 and loaded.cfg.feature_grad_mult == 0
    x = torch.randn(1, 4000)
    with torch.no_grad():
        assert torch.equal(model(x).logits, loaded(x).logits)


def test_malicious_pickle_is_refused(tmp_path):
    class Evil:
        def __reduce__(self):
            return (os.system, ("echo pwned > " + str(tmp_path / "pwned"),))

    torch.save({"model": {}, "x": Evil()}, tmp_path / "evil.pt")
    with pytest.raises(DataError, match="refusing to load global .*system"):
        read_fairseq_checkpoint(tmp_path / "evil.pt")
    assert not (tmp_path / "pwned").exists()
    with open(tmp_path / "plain.pt", "wb") as f:
        pickle.dump({"model": {}, "f": eval}, f)
    with pytest.raises(DataError, match="evil|eval|refusing|cannot read"):
        read_fairseq_checkpoint(tmp_path / "plain.pt")


def test_literal_arith_and_key_errors(tmp_path):
    assert literal_arith("[(512, 10, 5)] + [(512, 3, 2)] * 4 + [(512,2,2)] * 2") == \
        [(512, 10, 5)] + [(512, 3, 2)] * 4 + [(512, 2, 2)] * 2
    with pytest.raises(ValueError):
        literal_arith("__import__('os').system('x')")
    cfg = get_preset("tiny")
    model = Wav2Vec2ForPretraining(cfg)
    state = to_fairseq_state(model, "Wav2Vec2ForPretraining")
    del state["encoder.layers.0.fc1.weight"]
    state["encoder.bogus"] = torch.zeros(1)
    torch.save({"cfg": {"model": fairseq_model_cfg(cfg)}, "model": state}, tmp_path / "bad.pt")
    with pytest.raises(DataError, match=r"1 missing: encoder.layers.0.fc1.weight\n  1 unexpected: encoder.bogus"):
        load_fairseq(tmp_path / "bad.pt")
