"""Checkpoints that HF's own tools use as they are: `convert --to hf` gives a folder that
transformers.pipeline("automatic-speech-recognition") transcribes as `speech-ssl decode` does (same words), and an
HF-made fine-tuned folder converted with `convert --from hf` decodes exactly as HF's pipeline transcribes it."""

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from speech_ssl.cli import main
from speech_ssl.models import Wav2Vec2ForCTC, get_preset
from speech_ssl.models.checkpoint import save_model

transformers = pytest.importorskip("transformers")
LETTERS = ["|", "A", "B", "C", "D"]


def _audio(tmp_path, n=4) -> Path:
    rng = np.random.default_rng(0)
    rows = []
    for i in range(n):
        x = (0.3 * rng.standard_normal(16000 + 3000 * i) + 0.05).astype(np.float32)
        sf.write(tmp_path / f"a{i}.wav", x, 16000)
        rows.append(f"a{i}.wav\t{len(x)}")
    (tmp_path / "m.tsv").write_text(f"{tmp_path}\n" + "\n".join(rows) + "\n")
    return tmp_path / "m.tsv"


def _ours(ck, manifest, out) -> list[str]:
    assert main(["decode", "--checkpoint", str(ck), "--manifest", str(manifest), "--out", str(out)]) == 0
    return [ln.split("\t", 1)[1] if "\t" in ln else "" for ln in (out / "hyp.txt").read_text().splitlines()]


def _pipeline(folder, manifest) -> list[str]:
    asr = transformers.pipeline("automatic-speech-recognition", model=str(folder), device="cpu")
    root, *rows = manifest.read_text().splitlines()
    texts = [asr({"raw": sf.read(Path(root) / r.split("\t")[0], dtype="float32")[0], "sampling_rate": 16000})["text"]
             for r in rows]
    # The one difference: HF keeps two spaces where two word separators surround a blank ("| _ |"), we write
    # one (the words, hence WER, are the same; fairseq's post-processing keeps both, its WER splits them).
    return [" ".join(t.split()) for t in texts]


@pytest.mark.parametrize("extractor_mode,normalize", [("layer_norm", False), ("default", True)])
def test_exported_folder_transcribes_in_hf_pipeline_as_we_decode(tmp_path, extractor_mode, normalize):
    torch.manual_seed(0)
    vocab = ["<s>", "<pad>", "</s>", "<unk>", *LETTERS]
    model = Wav2Vec2ForCTC(get_preset("tiny", extractor_mode=extractor_mode), len(vocab), vocab).eval()
    with torch.no_grad():
        model.head.bias[1:4] = -100.0  # no specials (HF's decode drops <unk>, ours keeps it)
    model.normalize_input = normalize
    save_model(model, tmp_path / "ck")
    assert main(["convert", "--from", "speech_ssl", str(tmp_path / "ck"), "--to", "hf", str(tmp_path / "hf")]) == 0
    manifest = _audio(tmp_path)
    ours = _ours(tmp_path / "ck", manifest, tmp_path / "dec")
    assert any(ours) and ours == _pipeline(tmp_path / "hf", manifest)


def test_hf_made_folder_decodes_as_hf_pipeline(tmp_path):
    """A folder written by transformers itself (group-norm encoder, do_normalize, HF's vocabulary order with
    <pad> as the blank): convert it, decode it, get HF's transcripts."""
    torch.manual_seed(1)
    vocab = {"<pad>": 0, "<s>": 1, "</s>": 2, "<unk>": 3, **{s: 4 + i for i, s in enumerate(LETTERS)}}
    (tmp_path / "vocab.json").write_text(json.dumps(vocab))
    tok = transformers.Wav2Vec2CTCTokenizer(str(tmp_path / "vocab.json"), word_delimiter_token="|")
    fe = transformers.Wav2Vec2FeatureExtractor(feature_size=1, sampling_rate=16000, do_normalize=True,
                                               return_attention_mask=False)
    cfg = transformers.Wav2Vec2Config(
        vocab_size=len(vocab), hidden_size=64, num_hidden_layers=2, num_attention_heads=4, intermediate_size=128,
        conv_dim=(32,) * 7, num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=4, feat_extract_norm="group",
        do_stable_layer_norm=False, pad_token_id=0, ctc_loss_reduction="sum",
    )
    hf = transformers.Wav2Vec2ForCTC(cfg).eval()
    with torch.no_grad():
        hf.lm_head.bias[1:4] = -100.0
    hf.save_pretrained(tmp_path / "hf")
    transformers.Wav2Vec2Processor(feature_extractor=fe, tokenizer=tok).save_pretrained(tmp_path / "hf")
    assert main(["convert", "--from", "hf", str(tmp_path / "hf"), "--to", "speech_ssl", str(tmp_path / "ck")]) == 0
    manifest = _audio(tmp_path)
    ours = _ours(tmp_path / "ck", manifest, tmp_path / "dec")
    assert any(ours) and ours == _pipeline(tmp_path / "hf", manifest)
