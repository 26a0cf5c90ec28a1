"""data_prep.commonvoice on a tiny CommonVoice language folder (MP3 48 kHz, tsv with named columns)."""

import json
import unicodedata

import numpy as np
import pytest
import soundfile as sf

from data_prep import commonvoice
from data_prep.commonvoice import normalize_text
from speech_ssl.data.manifest import read_labels, read_manifest
from speech_ssl.data.units import Dictionary
from speech_ssl.errors import DataError

HEADER = ["client_id", "path", "sentence_id", "sentence", "sentence_domain", "up_votes", "down_votes", "age",
          "gender", "accents", "variant", "locale", "segment"]
SENTENCES = {
    "train": ["Bonjour, le monde !", "L’homme c'est « beau ».", "Il a 3 chats.", "Où est-il ?"],
    "dev": ["Merci beaucoup."],
    "test": ["À demain, Zoé."],
}


@pytest.mark.parametrize(
    "text,lang,expected",
    [
        ("L’homme, c'est «beau»!", "fr", "l'homme c'est beau"),
        ("'Quoted' words, don't.", "en", "quoted words don't"),
        ("İSTANBUL Irmak", "tr", "istanbul ırmak"),
        ("İSTANBUL Irmak", "de", "i̇stanbul irmak"),
        ("Straße—Über 3 Äpfel", "de", "straße über 3 äpfel"),
        (unicodedata.normalize("NFD", "Éléphant"), "fr", "éléphant"),
        ("नमस्ते दुनिया।", "hi", "नमस्ते दुनिया"),
        ("well-known ... co-op", "en", "well known co op"),
        ("?!", "en", ""),
    ],
)
def test_normalize_text(text, lang, expected):
    assert normalize_text(text, lang) == unicodedata.normalize("NFC", expected)


def _write_tsv(path, rows, header=HEADER):
    lines = ["\t".join(header)]
    for clip, sentence in rows:
        vals = {"client_id": "abc", "path": clip, "sentence": sentence, "locale": "fr", "up_votes": "2"}
        lines.append("\t".join(vals.get(c, "") for c in header))
    path.write_text("\n".join(lines) + "\n")


@pytest.fixture
def cv(tmp_path):
    root = tmp_path / "cv-corpus-99.0" / "fr"
    (root / "clips").mkdir(parents=True)
    rng = np.random.default_rng(0)
    lengths = {}
    for split, sents in SENTENCES.items():
        rows = []
        for i, s in enumerate(sents):
            clip = f"common_voice_fr_{split}{i}.mp3"
            n = int(rng.integers(48000 // 4, 48000 // 2))
            t = np.arange(n) / 48000
            sf.write(root / "clips" / clip, 0.3 * np.sin(2 * np.pi * 300 * t), 48000, format="MP3")
            lengths[clip] = n
            rows.append((clip, s))
        _write_tsv(root / f"{split}.tsv", rows)
    sf.write(root / "clips" / "unlisted.mp3", np.zeros(4800), 48000, format="MP3")  # in other.tsv: fine
    return root, lengths


def test_commonvoice_outputs(cv, tmp_path, monkeypatch):
    import data_prep.common

    monkeypatch.setattr(data_prep.common, "MIN_ITEMS_FOR_POOL", 0)  # eSpeak NG inside worker processes
    pytest.importorskip("espeakng_loader")
    pytest.importorskip("data_prep.synth.espeak")
    root, lengths = cv
    out = tmp_path / "out"
    summary = commonvoice.prepare(root, out, workers=2)
    assert "skipped 0" in summary
    for split, sents in SENTENCES.items():
        m = read_manifest(out / f"{split}.tsv")
        assert m.root == str(out.resolve())
        assert [e.path for e in m.entries] == [f"clips/common_voice_fr_{split}{i}.flac" for i in range(len(sents))]
        for e in m.entries:
            info = sf.info(out / e.path)
            assert info.samplerate == 16000 and info.channels == 1 and info.format == "FLAC"
            assert info.frames == e.num_samples
            src = lengths[e.path.split("/")[1].replace(".flac", ".mp3")]
            assert abs(e.num_samples - src / 3) < 1200  # MP3 decoders add up to a frame of padding
        wrd = read_labels(out / f"{split}.wrd", len(m))
        assert wrd == [normalize_text(s, "fr") for s in sents]
        assert read_labels(out / f"{split}.ltr") == [" ".join(w.replace(" ", "|")) + " |" for w in wrd]
        phn = read_labels(out / f"{split}.phn", len(m))
        assert all(p and "ˈ" not in p for p in phn)
    assert read_labels(out / "train.wrd")[:2] == ["bonjour le monde", "l'homme c'est beau"]
    assert read_labels(out / "train.phn")[0].split()[:4] == ["b", "ɔ̃", "ʒ", "u"]
    d = Dictionary.load(out / "dict.ltr.txt")
    assert {"é", "à", "ù", "'", "3"} <= set(d.symbols) and "," not in d
    Dictionary.load(out / "dict.phn.txt").encode(read_labels(out / "test.phn")[0])
    sizes = json.loads((out / "sizes.json").read_text())
    assert sizes["lang"] == "fr" and sizes["splits"]["train"]["utterances"] == 4
    m = read_manifest(out / "train.tsv")
    assert sizes["splits"]["train"]["samples"] == sum(m.sizes)
    assert not (out / "clips" / "unlisted.flac").exists()
    # idempotent: nothing is redone
    mtime = (out / "clips" / "common_voice_fr_train0.flac").stat().st_mtime_ns
    assert commonvoice.prepare(root, out).count("(already done)") == 3
    assert (out / "clips" / "common_voice_fr_train0.flac").stat().st_mtime_ns == mtime


def test_commonvoice_resumes_after_interruption(cv, tmp_path):
    root, _ = cv
    out = tmp_path / "out"
    commonvoice.prepare(root, out, phones=False)
    # simulate an interrupted run: one converted clip and the stamps are gone
    (out / "clips" / "common_voice_fr_train1.flac").unlink()
    kept = (out / "clips" / "common_voice_fr_train0.flac").stat().st_mtime_ns
    for p in (out / ".prep").iterdir():
        p.unlink()
    commonvoice.prepare(root, out, phones=False)
    assert (out / "clips" / "common_voice_fr_train1.flac").is_file()
    assert (out / "clips" / "common_voice_fr_train0.flac").stat().st_mtime_ns == kept
    assert not (out / "train.phn").exists()


def test_commonvoice_bad_inputs(cv, tmp_path):
    root, _ = cv
    rows = [("common_voice_fr_train0.mp3", "Bonjour !"), ("missing.mp3", "Absent."), ("common_voice_fr_train0.mp3", "Encore"),
            ("common_voice_fr_train1.mp3", "?!"), ("broken.mp3", "Cassé.")]
    (root / "clips" / "broken.mp3").write_bytes(b"ID3\x03\x00\x00\x00\x00\x00\x00garbage" * 3)
    _write_tsv(root / "train.tsv", rows)
    with open(root / "train.tsv", "a") as f:
        f.write("only\ttwo\n")
    with pytest.raises(DataError, match=r"train.tsv:7: malformed row: 2 columns, header has 13"):
        commonvoice.prepare(root, tmp_path / "strict", phones=False)
    out = tmp_path / "out"
    summary = commonvoice.prepare(root, out, skip_bad=True, phones=False)
    report = (out / "commonvoice.bad.tsv").read_text().splitlines()
    assert len(report) == 5 and "skipped 5 bad inputs" in summary
    where = [r.split("\t")[0] for r in report]
    assert where[0].endswith("train.tsv:7") and "malformed row" in report[0]
    assert where[1].endswith("train.tsv:4") and "duplicate clip" in report[1]
    assert where[2].endswith("train.tsv:5") and "empty sentence" in report[2]
    assert where[3].endswith("missing.mp3") and "(listed at " in report[3] and report[3].endswith("train.tsv:3)")
    assert where[4].endswith("broken.mp3") and "cannot decode" in report[4]
    assert read_labels(out / "train.wrd") == ["bonjour"]
    # strict mode names the missing clip and the tsv line that lists it
    _write_tsv(root / "train.tsv", rows[:2])
    with pytest.raises(DataError, match=r"missing.mp3: audio file not found \(listed at .*train.tsv:3\)"):
        commonvoice.prepare(root, tmp_path / "strict2", phones=False)


def test_commonvoice_missing_column(cv, tmp_path):
    root, _ = cv
    (root / "dev.tsv").write_text("client_id\tfile\tsentence\nx\ty.mp3\tHi\n")
    with pytest.raises(DataError, match=r"dev.tsv:1: header lacks column\(s\) \['path'\]"):
        commonvoice.prepare(root, tmp_path / "out", phones=False)
