"""The real-corpus preparers (data_prep.librispeech, librilight, commonvoice, babel) on the synthetic corpus:
manifests, sample counts, words, letters and phones agree with what the generator recorded in ``labels/``.

Also runs the generator through ``speech-ssl prepare synth``. Skipped only while a preparer is missing.
"""

import csv
from pathlib import Path

import jiwer
import pytest

pytest.importorskip("espeakng_loader")
sf = pytest.importorskip("soundfile")
librispeech = pytest.importorskip("data_prep.librispeech")
librilight = pytest.importorskip("data_prep.librilight")
commonvoice = pytest.importorskip("data_prep.commonvoice")
babel = pytest.importorskip("data_prep.babel")

from speech_ssl.cli import main as speech_ssl_main  # noqa: E402
from speech_ssl.data.manifest import read_labels, read_manifest  # noqa: E402


def _labels(path):
    with open(path, encoding="utf-8", newline="") as f:
        return list(csv.DictReader(f, delimiter="\t"))


def _stem(p):
    return Path(p).name.rsplit(".", 1)[0]


@pytest.fixture(scope="module")
def synth(tmp_path_factory):
    out = tmp_path_factory.mktemp("synth")
    rc = speech_ssl_main(["prepare", "synth", "--out", str(out), "--languages", "en,de,tr",
                          "--minutes-per-language", "0.3", "--speakers-per-language", "6", "--dev-speakers", "1",
                          "--test-speakers", "1", "--babel-minutes", "0.4", "--librilight-scale", "0.001",
                          "--workers", "2", "--no-progress"])
    assert rc == 0
    return out


def test_librispeech(synth, tmp_path):
    librispeech.prepare(synth / "LibriSpeech", tmp_path / "ls")
    for f in sorted((synth / "labels" / "librispeech").glob("*.tsv")):
        rows = {_stem(r["path"]): r for r in _labels(f)}
        m = read_manifest(tmp_path / "ls" / f"{f.stem}.tsv")
        wrd = read_labels(tmp_path / "ls" / f"{f.stem}.wrd", len(m))
        ltr = read_labels(tmp_path / "ls" / f"{f.stem}.ltr", len(m))
        assert len(m) == len(rows)
        for i, (e, w, lt) in enumerate(zip(m.entries, wrd, ltr)):
            r = rows[_stem(e.path)]
            assert e.num_samples == sf.info(m.full_path(i)).frames
            assert w.lower() == r["words"] and lt.lower() == r["letters"]


def test_librilight(synth, tmp_path):
    librilight.prepare(synth / "librispeech_finetuning", tmp_path / "ll")
    folds = {f.stem: {_stem(r["path"]) for r in _labels(f)} for f in (synth / "labels" / "librilight").glob("*.tsv")}
    expect = {
        "train-10m": folds["1h_0_clean"] | folds["1h_0_other"],
        "train-1h": set().union(*(v for k, v in folds.items() if k.startswith("1h_"))),
        "train-10h": set().union(*folds.values()),
    }
    for split, names in expect.items():
        assert {_stem(e.path) for e in read_manifest(tmp_path / "ll" / f"{split}.tsv").entries} == names


def test_commonvoice_words_phones_and_lengths(synth, tmp_path):
    for lang in ("de", "tr"):
        root = next(synth.glob(f"cv-corpus-*/{lang}"))
        commonvoice.prepare(root, tmp_path / lang)
        for split in ("train", "dev", "test"):
            rows = {_stem(r["path"]): r for r in _labels(synth / "labels" / f"commonvoice-{lang}" / f"{split}.tsv")}
            m = read_manifest(tmp_path / lang / f"{split}.tsv")
            wrd = read_labels(tmp_path / lang / f"{split}.wrd", len(m))
            phn = read_labels(tmp_path / lang / f"{split}.phn", len(m))
            assert {_stem(e.path) for e in m.entries} == set(rows)
            ours, spoken = [], []
            for e, w, p in zip(m.entries, wrd, phn):
                r = rows[_stem(e.path)]
                assert w == r["words"]
                ours.append(p)
                spoken.append(r["phones"])
                # 48 kHz MP3 -> 16 kHz FLAC keeps the duration the generator recorded
                duration = float(_labels_duration(root, e.path))
                assert abs(e.num_samples / 16000 - duration) < 0.06
            # phones of the normalized words (preparer, G2P of the text as for real CommonVoice) against the
            # phones the generator spoke: equal but for pauses between words, which change cross-word
            # pronunciation (and for the speakers' accents)
            per = jiwer.wer(spoken, ours)
            assert per < 0.1, (lang, split, per)


def _labels_duration(root, flac_path):
    name = Path(flac_path).name.replace(".flac", ".mp3")
    with open(root / "clip_durations.tsv", encoding="utf-8") as f:
        for line in f:
            clip, ms = line.rstrip("\n").split("\t")
            if clip == name:
                return int(ms) / 1000
    raise KeyError(name)


def test_babel(synth, tmp_path):
    root = next(synth.glob("IARPA-babel*"))
    babel.prepare(root, tmp_path / "babel", lang="tr")
    for part, split in (("training", "train"), ("dev", "dev")):
        rows = _labels(synth / "labels" / "babel-tr" / f"{part}.tsv")
        m = read_manifest(tmp_path / "babel" / f"{split}.tsv")
        wrd = read_labels(tmp_path / "babel" / f"{split}.wrd", len(m))
        assert sorted(wrd) == sorted(r["words"] for r in rows)
        # each cut segment covers its speech: from the turn's timestamp to the next one
        speech = sorted(float(r["end"]) - float(r["start"]) for r in rows)
        cut = sorted(e.num_samples / 16000 for e in m.entries)
        assert all(c >= s - 0.01 for c, s in zip(cut, speech))
