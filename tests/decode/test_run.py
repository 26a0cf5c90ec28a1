"""Decoding runner: chunked long-audio emissions equal the whole-utterance pass; end-to-end decode CLI."""

import torch
from torch import nn

from speech_ssl.decode.run import chunked_log_probs, utterance_ids
from speech_ssl.models.feature_encoder import ConvFeatureEncoder, conv_output_length
from speech_ssl.models.inference import length_batches
from speech_ssl.models.wav2vec2 import CTCOutput

LAYERS = [(16, 10, 5)] + [(16, 3, 2)] * 4 + [(16, 2, 2)] * 2


class ConvCTC(nn.Module):
    """A purely local CTC model (conv encoder with per-frame LayerNorm + linear head)."""

    def __init__(self, V=8):
        super().__init__()
        self.enc = ConvFeatureEncoder(LAYERS, mode="layer_norm", conv_bias=True)
        self.head = nn.Linear(16, V)

    def forward(self, x, lengths):
        feats = self.enc(x).transpose(1, 2)
        return CTCOutput(self.head(feats), self.enc.output_lengths(lengths))


def test_conv_output_length_matches_encoder():
    enc = ConvFeatureEncoder(LAYERS, mode="layer_norm")
    for n in [400, 401, 719, 720, 16000, 33333]:
        assert conv_output_length(n, LAYERS) == int(enc.output_lengths(torch.tensor([n]))[0])
        assert conv_output_length(n, LAYERS) == enc(torch.zeros(1, n)).shape[-1]


def test_chunked_emissions_equal_whole_pass():
    model = ConvCTC().eval()
    for L in [16000 * 3 + 1234, 16000 * 2, 16000 + 7]:
        wav = torch.randn(L)
        with torch.no_grad():
            out = model(wav[None], torch.tensor([L]))
            logits, n = out.logits, out.out_lengths
        whole = logits[0, : int(n[0])].log_softmax(-1)
        # 0.5 s chunks with 640 samples (> receptive field 400) of context on both sides
        chunked = chunked_log_probs(model, wav, LAYERS, chunk=8000, context=640, max_tokens=30000)
        assert chunked.shape == whole.shape
        torch.testing.assert_close(chunked, whole, atol=1e-4, rtol=1e-4)


def test_length_batches_cover_all_and_respect_budget():
    sizes = [5, 100, 40, 40, 7, 99, 1]
    batches = length_batches(sizes, 120)
    assert sorted(i for b in batches for i in b) == list(range(len(sizes)))
    for b in batches:
        assert len(b) == 1 or len(b) * max(sizes[i] for i in b) <= 120


def test_utterance_ids_unique():
    from speech_ssl.data.manifest import Manifest, ManifestEntry

    m = Manifest("/r", [ManifestEntry("a/1089-1-0.flac", 10), ManifestEntry("b/1089-1-0.flac", 10),
                        ManifestEntry("c/long.sph", 10, 0, 100)])
    assert utterance_ids(m) == ["1089-1-0", "1089-1-0#1", "long_0_100"]


def _make_corpus(tmp_path, durations, texts):
    import numpy as np
    import soundfile as sf

    root = tmp_path / "audio"
    root.mkdir()
    rng = np.random.default_rng(0)
    rows = []
    for i, d in enumerate(durations):
        n = int(d * 16000)
        name = f"84-121-{i:04d}.wav"
        sf.write(root / name, (0.1 * rng.standard_normal(n)).astype("float32"), 16000)
        rows.append(f"{name}\t{n}")
    man = tmp_path / "dev.tsv"
    man.write_text(str(root) + "\n" + "\n".join(rows) + "\n")
    (tmp_path / "dev.wrd").write_text("\n".join(texts) + "\n")
    return man


def _tiny_ctc(tmp_path):
    from speech_ssl.models.checkpoint import save_model
    from speech_ssl.models.config import get_preset
    from speech_ssl.models.wav2vec2 import Wav2Vec2ForCTC

    symbols = ["<s>", "<pad>", "</s>", "<unk>", "|", "A", "C", "D", "E", "O", "R", "T"]
    model = Wav2Vec2ForCTC(get_preset("tiny"), len(symbols), symbols)
    ck = tmp_path / "ck"
    save_model(model, ck, extra={"unit": "letter", "normalize": False})
    return ck, symbols


def _cli(argv):
    import argparse

    from speech_ssl.cli import decode as decode_cli

    parser = argparse.ArgumentParser()
    decode_cli.add_parser(parser.add_subparsers())
    args = parser.parse_args(argv)
    return args.func(args)


def test_decode_cli_end_to_end(tmp_path, capsys):
    import json

    ck, symbols = _tiny_ctc(tmp_path)
    man = _make_corpus(tmp_path, [0.5, 1.2, 0.8, 2.6], ["RED CAT", "A COT", "RED", "A RED CAT"])
    out = tmp_path / "dec"
    # chunk 1 s: the 2.6 s utterance goes through the chunked path
    rc = _cli(["decode", "--checkpoint", str(ck), "--manifest", str(man), "--out", str(out),
               "--chunk-seconds", "1.0", "--chunk-context-seconds", "0.2", "--max-tokens", "40000"])
    assert rc == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert "RTF" in lines[-2] and lines[-1].startswith("WER ")
    hyp = (out / "hyp.txt").read_text().splitlines()
    assert [h.split("\t")[0] for h in hyp] == [f"84-121-{i:04d}" for i in range(4)]
    rows = [json.loads(x) for x in (out / "results.jsonl").read_text().splitlines()]
    assert len(rows) == 4 and rows[1]["ref"] == "A COT" and "errors" in rows[1]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["utterances"] == 4 and summary["rtf"] > 0 and summary["decoder"] == "greedy"


def test_decode_cli_chunking_and_bad_numbers(tmp_path, capsys):
    ck, _ = _tiny_ctc(tmp_path)
    man = _make_corpus(tmp_path, [0.5, 2.6], ["RED CAT", "A RED CAT"])
    base = ["decode", "--checkpoint", str(ck), "--manifest", str(man)]
    # --chunk-seconds 0: whole utterances (as embed's 0), the same as a chunk longer than any of them
    assert _cli([*base, "--out", str(tmp_path / "zero"), "--chunk-seconds", "0"]) == 0
    assert _cli([*base, "--out", str(tmp_path / "long"), "--chunk-seconds", "100"]) == 0
    assert (tmp_path / "zero" / "hyp.txt").read_text() == (tmp_path / "long" / "hyp.txt").read_text()
    capsys.readouterr()
    for bad, named in ((["--chunk-seconds", "-1"], "chunk_seconds must be >= 0"),
                       (["--chunk-context-seconds", "-1"], "chunk_context_seconds must be >= 0"),
                       (["--limit", "-2"], "limit must be >= 1"), (["--max-tokens", "0"], "max_tokens must be >= 1"),
                       (["--device", "gpu"], "device 'gpu' is not a device name")):
        assert _cli([*base, "--out", str(tmp_path / "bad"), *bad]) == 2, bad
        assert named in capsys.readouterr().err, bad
    assert not (tmp_path / "bad").exists()
    # a unit other than the one the model was fine-tuned with is said, not silently scored
    assert _cli([*base, "--out", str(tmp_path / "ph"), "--unit", "phone"]) == 0
    assert "warning: --unit phone, but" in capsys.readouterr().out


def test_a_word_lm_without_lexicon_is_refused(tmp_path, capsys):
    import pytest

    pytest.importorskip("flashlight.lib.text")
    from speech_ssl.decode.lm import write_arpa

    ck, _ = _tiny_ctc(tmp_path)
    texts = ["RED CAT", "A COT", "RED"]
    man = _make_corpus(tmp_path, [0.5, 1.2, 0.8], texts)
    write_arpa([t.split() for t in texts * 3], 2, tmp_path / "words.arpa")
    write_arpa([list(" ".join(t.split()).replace(" ", "|")) + ["|"] for t in texts * 3], 3, tmp_path / "letters.arpa")
    base = ["decode", "--checkpoint", str(ck), "--manifest", str(man), "--beam", "4"]
    assert _cli([*base, "--out", str(tmp_path / "w"), "--lm", str(tmp_path / "words.arpa")]) == 2
    err = capsys.readouterr().err
    assert "words.arpa: its 1-grams are not this model's output symbols" in err and "needs --lexicon" in err
    assert _cli([*base, "--out", str(tmp_path / "l"), "--lm", str(tmp_path / "letters.arpa")]) == 0


def test_decode_cli_lm_and_tune(tmp_path, capsys):
    import json

    import pytest

    pytest.importorskip("flashlight.lib.text")
    from speech_ssl.decode.ctc import write_letter_lexicon
    from speech_ssl.decode.lm import write_arpa

    ck, symbols = _tiny_ctc(tmp_path)
    texts = ["RED CAT", "A COT", "RED", "A RED CAT"]
    man = _make_corpus(tmp_path, [0.5, 1.2, 0.8, 1.0], texts)
    write_arpa([t.split() for t in texts * 3], 3, tmp_path / "lm.arpa")
    write_letter_lexicon(["RED", "CAT", "COT", "A"], tmp_path / "lex.txt", symbols)
    out = tmp_path / "dec"
    rc = _cli(["decode", "--checkpoint", str(ck), "--manifest", str(man), "--out", str(out),
               "--lm", str(tmp_path / "lm.arpa"), "--lexicon", str(tmp_path / "lex.txt"), "--beam", "8",
               "--tune", "--tune-lm-weights", "0,1", "--tune-word-scores", "0,1"])
    assert rc == 0
    tune = json.loads((out / "tune.json").read_text())
    assert len(tune["grid"]) == 4
    best = tune["best"]
    assert best["error_rate"] == min(g["error_rate"] for g in tune["grid"])
    # a best point on the grid's edge is named (and warned about): the optimum may lie beyond it
    want = (["lm_weight:largest"] if best["lm_weight"] == 1 else []) + (
        ["word_score:largest"] if best["word_score"] == 1 else ["word_score:smallest"])
    assert tune["at_edge"] == want
    # lexicon search only outputs lexicon words
    for line in (out / "hyp.txt").read_text().splitlines():
        words = line.split("\t")[1].split()
        assert set(words) <= {"RED", "CAT", "COT", "A"}
    assert (out / "hyp.greedy.txt").is_file()
    assert capsys.readouterr().out.strip().splitlines()[-1].startswith("WER ")


def test_grid_edges():
    from speech_ssl.decode.run import grid_edges

    lw, ws = [0.0, 1.0, 2.0, 3.0], [-1.0, 0.0, 1.0]
    assert grid_edges({"lm_weight": 2.0, "word_score": 0.0}, lw, ws) == []
    assert grid_edges({"lm_weight": 0.0, "word_score": 0.0}, lw, ws) == []  # lm_weight 0 is a floor
    assert grid_edges({"lm_weight": 3.0, "word_score": -1.0}, lw, ws) == [
        ("lm_weight", "largest"), ("word_score", "smallest")]
    assert grid_edges({"lm_weight": 1.0, "word_score": 1.0}, lw, ws) == [("word_score", "largest")]
    assert grid_edges({"lm_weight": 2.0, "word_score": 0.0}, [2.0], [0.0]) == []  # nothing searched


def test_decode_rejects_non_ctc_checkpoint(tmp_path, capsys):
    from speech_ssl.models.checkpoint import save_model
    from speech_ssl.models.config import get_preset
    from speech_ssl.models.wav2vec2 import Wav2Vec2ForPretraining

    save_model(Wav2Vec2ForPretraining(get_preset("tiny")), tmp_path / "pt")
    man = _make_corpus(tmp_path, [0.5], ["A"])
    rc = _cli(["decode", "--checkpoint", str(tmp_path / "pt"), "--manifest", str(man), "--out", str(tmp_path / "o")])
    assert rc == 2
    assert "not a CTC model" in capsys.readouterr().err


def test_decode_bf16_autocast_runs(tmp_path, capsys):
    import json

    ck, _ = _tiny_ctc(tmp_path)
    man = _make_corpus(tmp_path, [0.7, 1.1], ["RED CAT", "A COT"])
    for prec in ["fp32", "bf16"]:
        rc = _cli(["decode", "--checkpoint", str(ck), "--manifest", str(man), "--out", str(tmp_path / prec),
                   "--precision", prec, "--num-workers", "0"])
        assert rc == 0
    capsys.readouterr()
    a = json.loads((tmp_path / "fp32" / "summary.json").read_text())
    b = json.loads((tmp_path / "bf16" / "summary.json").read_text())
    assert a["utterances"] == b["utterances"] == 2
