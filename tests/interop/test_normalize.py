"""``normalize`` travels with the model: recorded by training and every converter, applied by default by
embed and decode (an explicit flag overrides), written for HF's own tools as ``do_normalize``."""

import json

import numpy as np
import pytest
import soundfile as sf
import torch

from speech_ssl.cli import main
from speech_ssl.interop.auto import load_any
from speech_ssl.interop.hf import load_hf, save_hf
from speech_ssl.models import Wav2Vec2ForCTC, Wav2Vec2ForPretraining, get_preset
from speech_ssl.models.checkpoint import load_model, save_model


def _model(normalize):
    m = Wav2Vec2ForPretraining(get_preset("tiny")).eval()
    m.normalize_input = normalize
    return m


@pytest.mark.parametrize("normalize", [True, False, None])
def test_our_checkpoints_record_it(tmp_path, normalize):
    save_model(_model(normalize), tmp_path / "ck")
    extra = json.loads((tmp_path / "ck" / "config.json").read_text()).get("extra") or {}
    assert extra.get("normalize") == normalize
    assert load_model(tmp_path / "ck").normalize_input == normalize


def test_hf_folders_carry_do_normalize_both_ways(tmp_path):
    transformers = pytest.importorskip("transformers")
    model = Wav2Vec2ForCTC(get_preset("tiny"), 8, ["<s>", "<pad>", "</s>", "<unk>", "|", "A", "B", "C"]).eval()
    model.normalize_input = True
    save_hf(model, tmp_path / "hf")
    fe = transformers.AutoFeatureExtractor.from_pretrained(tmp_path / "hf")  # HF's own reader
    assert fe.do_normalize is True and fe.sampling_rate == 16000
    assert load_hf(tmp_path / "hf").normalize_input is True
    # converted to ours, the record stays
    assert main(["convert", "--from", "hf", str(tmp_path / "hf"), "--to", "speech_ssl", str(tmp_path / "ours")]) == 0
    assert load_model(tmp_path / "ours").normalize_input is True


def test_fairseq_task_normalize_is_read(tmp_path):
    from tests.interop.test_fairseq import fairseq_model_cfg, to_fairseq_state

    cfg = get_preset("tiny", extractor_mode="default", conv_bias=False, layer_norm_first=False)
    model = Wav2Vec2ForPretraining(cfg)
    ckpt = {"cfg": {"model": fairseq_model_cfg(cfg), "criterion": {"_name": "wav2vec"}, "task": {"normalize": True}},
            "model": to_fairseq_state(model, "Wav2Vec2ForPretraining")}
    torch.save(ckpt, tmp_path / "ck.pt")
    assert load_any(tmp_path / "ck.pt").normalize_input is True


def test_embed_applies_the_checkpoints_normalize_by_default(tmp_path):
    save_model(_model(True), tmp_path / "ck")
    rng = np.random.default_rng(0)
    sf.write(tmp_path / "a.wav", (0.3 * rng.standard_normal(16000) + 0.2).astype(np.float32), 16000)
    outs = {}
    for flag in ("auto", "yes", "no"):
        assert main(["embed", "--checkpoint", str(tmp_path / "ck"), "--layer", "1", "--normalize", flag,
                     "--out", str(tmp_path / f"{flag}.npy"), str(tmp_path / "a.wav")]) == 0
        outs[flag] = np.load(tmp_path / f"{flag}.npy")
    assert np.array_equal(outs["auto"], outs["yes"]) and not np.allclose(outs["auto"], outs["no"])
