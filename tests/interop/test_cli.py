"""CLI: presets, convert (HF <-> speech_ssl), embed (layer N == HF hidden_states[N])."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import soundfile as sf
import torch

from speech_ssl.cli import main

transformers = pytest.importorskip("transformers")


def tiny_hf_config(**kw):
    c = dict(hidden_size=32, num_hidden_layers=3, num_attention_heads=2, intermediate_size=64, conv_dim=(16,) * 7,
             num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=2, num_codevectors_per_group=8,
             codevector_dim=16, proj_codevector_dim=16, do_stable_layer_norm=True, feat_extract_norm="layer",
             conv_bias=True, vocab_size=9)
    c.update(kw)
    return transformers.Wav2Vec2Config(**c)


def test_presets_table(capsys):
    assert main(["presets"]) == 0
    out = capsys.readouterr().out
    assert "base" in out and "95.0M" in out and "317.4M" in out and "post-LN" in out and "pre-LN" in out
    assert main(["presets", "--show", "large"]) == 0
    assert "layer_norm_first: true" in capsys.readouterr().out


def test_version(capsys):
    from importlib import metadata

    import speech_ssl

    with pytest.raises(SystemExit) as e:
        main(["--version"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith(f"speech-ssl {speech_ssl.__version__} (torch {metadata.version('torch')}")


def test_convert_round_trip(tmp_path):
    torch.manual_seed(0)
    hf = transformers.Wav2Vec2ForCTC(tiny_hf_config()).eval()
    hf.save_pretrained(tmp_path / "hf")
    assert main(["convert", "--from", "hf", str(tmp_path / "hf"), "--to", "speech_ssl", str(tmp_path / "ours")]) == 0
    assert (tmp_path / "ours" / "model.safetensors").is_file() and (tmp_path / "ours" / "config.json").is_file()
    assert main(["convert", "--from", "speech_ssl", str(tmp_path / "ours"), "--to", "hf", str(tmp_path / "hf2"),
                 "--weight-norm-keys", "weight_g"]) == 0
    hf2 = transformers.Wav2Vec2ForCTC.from_pretrained(tmp_path / "hf2").eval()
    x = torch.randn(1, 5000)
    with torch.no_grad():
        assert torch.equal(hf(x).logits, hf2(x).logits)
    assert main(["convert", "--from", "hf", str(tmp_path / "nowhere"), "--to", "hf", str(tmp_path / "x")]) == 1


def test_embed_matches_hf_hidden_states(tmp_path):
    torch.manual_seed(1)
    hf = transformers.Wav2Vec2Model(tiny_hf_config()).eval()
    hf.save_pretrained(tmp_path / "hf")
    rng = np.random.default_rng(0)
    audio = (rng.standard_normal((22050, 2)) * 0.1).astype(np.float32)  # 1 s stereo at 22.05 kHz
    sf.write(tmp_path / "a.wav", audio, 22050)
    from speech_ssl.data.audio import read_audio

    wav = torch.from_numpy(read_audio(tmp_path / "a.wav"))
    with torch.no_grad():
        ref = hf(wav[None], output_hidden_states=True)
    for layer in ("0", "2", "3"):
        out = tmp_path / f"e{layer}.npy"
        assert main(["embed", "--checkpoint", str(tmp_path / "hf"), "--layer", layer, "--out", str(out),
                     str(tmp_path / "a.wav")]) == 0
        arr = np.load(out)
        assert arr.dtype == np.float32 and arr.shape == (49, 32)
        assert np.abs(arr - ref.hidden_states[int(layer)][0].numpy()).max() <= 1e-4
    assert main(["embed", "--checkpoint", str(tmp_path / "hf"), "--layer", "last", "--out", str(tmp_path / "l.npy"),
                 str(tmp_path / "a.wav")]) == 0
    assert np.abs(np.load(tmp_path / "l.npy") - ref.last_hidden_state[0].numpy()).max() <= 1e-4
    assert main(["embed", "--checkpoint", str(tmp_path / "hf"), "--layer", "4", "--out", str(tmp_path / "z.npy"),
                 str(tmp_path / "a.wav")]) == 1
    assert main(["embed", "--checkpoint", str(tmp_path / "hf"), "--out", str(tmp_path / "z.npy"),
                 str(tmp_path / "missing.wav")]) == 1


def _tiny_checkpoint(root):
    from speech_ssl.models.checkpoint import save_model
    from speech_ssl.models.config import get_preset
    from speech_ssl.models.wav2vec2 import Wav2Vec2ForPretraining

    torch.manual_seed(2)
    cfg = get_preset("tiny")
    assert cfg.extractor_mode == "layer_norm"  # frame-local conv features: chunking can be exact at layer 0
    save_model(Wav2Vec2ForPretraining(cfg), root / "ck")
    return root / "ck"


def test_embed_chunked_long_audio_keeps_every_frame(tmp_path):
    """--chunk-seconds: same frame count as one pass; layer 0 (conv + positional conv, both local) is
    identical when the context covers their reach; deeper layers differ only through the attention context."""
    ck = _tiny_checkpoint(tmp_path)
    rng = np.random.default_rng(0)
    sf.write(tmp_path / "long.wav", (rng.standard_normal(16000 * 7 + 123) * 0.1).astype(np.float32), 16000)
    outs = {}
    for name, extra in [("whole", []), ("chunked", ["--chunk-seconds", "2", "--chunk-context-seconds", "0.5"])]:
        for layer in ("0", "last"):
            out = tmp_path / f"{name}{layer}.npy"
            assert main(["embed", "--checkpoint", str(ck), "--layer", layer, "--out", str(out), *extra,
                         str(tmp_path / "long.wav")]) == 0
            outs[name, layer] = np.load(out)
    assert outs["whole", "0"].shape == outs["chunked", "0"].shape == (350, 64)
    assert np.abs(outs["whole", "0"] - outs["chunked", "0"]).max() <= 1e-5
    diff = np.abs(outs["whole", "last"] - outs["chunked", "last"])
    assert outs["whole", "last"].shape == outs["chunked", "last"].shape and 0 < diff.max()


def test_embed_manifest_writes_one_file_per_row_and_resumes(tmp_path, capsys):
    ck = _tiny_checkpoint(tmp_path)
    rng = np.random.default_rng(1)
    (tmp_path / "a" / "s1").mkdir(parents=True)
    lens = [8000, 12000]
    for i, n in enumerate(lens):
        sf.write(tmp_path / "a" / "s1" / f"u{i}.flac", (rng.standard_normal(n) * 0.1).astype(np.float32), 16000)
    man = tmp_path / "m.tsv"
    man.write_text(f"{tmp_path / 'a'}\ns1/u0.flac\t8000\ns1/u1.flac\t12000\n")
    out = tmp_path / "feats"
    args = ["embed", "--checkpoint", str(ck), "--layer", "1", "--manifest", str(man), "--out", str(out)]
    assert main(args) == 0
    a0 = np.load(out / "s1__u0.npy")
    assert a0.shape == (24, 64) and np.load(out / "s1__u1.npy").shape == (37, 64)
    index = (out / "index.tsv").read_text().splitlines()
    assert index[0] == "id\tframes\tsource" and index[1] == f"s1__u0\t24\t{man}:2"
    (out / "s1__u1.npy").unlink()
    assert main(args) == 0 and "1 utterances embedded, 1 already there" in capsys.readouterr().out
    # other settings into the same folder: refused with the differences named, nothing written or mixed
    (out / "s1__u1.npy").unlink()
    for other, named in ((["--layer", "2"], "layer 1 there, 2 now"), (["--normalize", "yes"], "normalize False there, True now"),
                         (["--chunk-seconds", "30"], "chunk_seconds 0.0 there, 30.0 now")):
        assert main(args + other) == 1
        err = capsys.readouterr().err
        assert "holds embeddings made with other settings" in err and named in err, err
    assert not (out / "s1__u1.npy").exists()
    other_ck = tmp_path / "ck2"
    shutil.copytree(ck, other_ck)
    assert main([*args[:2], str(other_ck), *args[3:]]) == 1 and "checkpoint " in capsys.readouterr().err
    # a folder of arrays without the record: what made them cannot be checked
    (out / "embed_settings.json").unlink()
    assert main(args) == 1 and "no embed_settings.json" in capsys.readouterr().err
    assert main([*args[:-1], str(tmp_path / "feats2")]) == 0
    shutil.rmtree(out)
    # a row whose audio is missing names the manifest line
    man.write_text(f"{tmp_path / 'a'}\ns1/u0.flac\t8000\ns1/gone.flac\t12000\n")
    assert main(args) == 1 and f"{man}:3" in capsys.readouterr().err
    assert main(["embed", "--checkpoint", str(ck), "--out", str(out)]) == 2


def test_convert_never_overwrites_its_source_or_what_is_not_a_checkpoint(tmp_path, capsys):
    from speech_ssl.models import Wav2Vec2ForPretraining, get_preset
    from speech_ssl.models.checkpoint import save_model

    ck = tmp_path / "ck"
    save_model(Wav2Vec2ForPretraining(get_preset("tiny")), ck)
    before = {f.name: f.read_bytes() for f in ck.iterdir()}
    data = tmp_path / "data"
    data.mkdir()
    (data / "train.tsv").write_text("/x\n")
    (tmp_path / "notes.txt").write_text("keep me\n")
    for dst_fmt, dst, named in (("hf", ck, "is the source"), ("hf", tmp_path, "is the source (or holds it)"),
                                ("hf", data, "is not a hf checkpoint"), ("hf", tmp_path / "notes.txt", "is a file"),
                                ("fairseq", data, "is a folder"), ("fairseq", tmp_path / "notes.txt", "not a fairseq")):
        assert main(["convert", "--from", "speech_ssl", str(ck), "--to", dst_fmt, str(dst)]) == 2, (dst_fmt, dst)
        assert named in capsys.readouterr().err, (dst_fmt, dst)
    assert {f.name: f.read_bytes() for f in ck.iterdir()} == before
    assert sorted(f.name for f in data.iterdir()) == ["train.tsv"] and (tmp_path / "notes.txt").read_text() == "keep me\n"
    # a new folder, and then the same again: an existing checkpoint of the target format is replaced
    for _ in range(2):
        assert main(["convert", "--from", "speech_ssl", str(ck), "--to", "hf", str(tmp_path / "hf")]) == 0
    assert main(["convert", "--from", "hf", str(tmp_path / "hf"), "--to", "speech_ssl", str(tmp_path / "hf")]) == 2


def test_convert_detect_prints_the_format(tmp_path, capsys):
    from speech_ssl.cli import main
    from speech_ssl.models import Wav2Vec2ForPretraining, get_preset
    from speech_ssl.models.checkpoint import save_model

    save_model(Wav2Vec2ForPretraining(get_preset("tiny")), tmp_path / "ck")
    assert main(["convert", "--detect", str(tmp_path / "ck")]) == 0
    assert capsys.readouterr().out.strip() == "speech_ssl"
    assert main(["convert", "--detect", str(tmp_path / "nothing")]) == 1



def test_convert_to_fairseq_and_back_keeps_the_vocabulary(tmp_path):
    """fairseq keeps a CTC model's dictionary apart from the .pt: `--to fairseq` writes dict.<name>.txt beside it,
    and `--from fairseq` takes it from there, so the round trip decodes without --dict."""
    from speech_ssl.interop.auto import load_any
    from speech_ssl.models import Wav2Vec2ForCTC, get_preset
    from speech_ssl.models.checkpoint import save_model

    symbols = ["<s>", "<pad>", "</s>", "<unk>", "|", "E", "T", "A", "O", "N"]
    save_model(Wav2Vec2ForCTC(get_preset("tiny"), len(symbols), symbols), tmp_path / "ours")
    assert main(["convert", "--from", "speech_ssl", str(tmp_path / "ours"), "--to", "fairseq",
                 str(tmp_path / "ft.pt")]) == 0
    assert (tmp_path / "dict.ft.txt").is_file()
    assert main(["convert", "--from", "fairseq", str(tmp_path / "ft.pt"), "--to", "speech_ssl",
                 str(tmp_path / "back")]) == 0
    assert load_any(tmp_path / "back").vocab == symbols
    from speech_ssl.errors import DataError
    from speech_ssl.models.checkpoint import load_model

    with pytest.raises(DataError, match="a fairseq checkpoint, not ours: convert it first"):
        load_model(tmp_path / "ft.pt")  # e.g. finetune.pretrained=ft.pt
    (tmp_path / "dict.ft.txt").unlink()  # without it: no vocabulary, as fairseq's own .pt
    assert load_any(tmp_path / "ft.pt").vocab is None
