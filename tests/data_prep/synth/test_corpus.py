"""The synthetic corpus end to end: layouts, labels, audio properties, determinism (data_prep.synth.corpus)."""

import argparse
import csv
import hashlib
import json
import re
import time

import numpy as np
import pytest

pytest.importorskip("espeakng_loader")
sf = pytest.importorskip("soundfile")

from data_prep.synth import cli  # noqa: E402
from data_prep.synth.acoustics import estimate_f0  # noqa: E402
from data_prep.synth.corpus import CV_COLUMNS, CV_VERSION  # noqa: E402
from data_prep.synth.espeak import phonemize  # noqa: E402
from data_prep.synth.text import normalize_words  # noqa: E402


def _run(out, *extra):
    p = argparse.ArgumentParser()
    cli.add_arguments(p)
    return cli.run(p.parse_args(["--out", str(out), "--no-progress", *extra]))


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    out = tmp_path_factory.mktemp("synth")
    t = time.time()
    assert _run(out, "--languages", "en,de,tr", "--minutes-per-language", "0.5", "--babel-minutes", "0.5",
                "--librilight-scale", "0.002", "--augment-prob", "0.5", "--eval-minutes", "tr=0.75",
                "--workers", "2") == 0
    elapsed = time.time() - t
    info = json.loads((out / "synth_info.json").read_text())
    return out, info, elapsed


def _labels(path):
    with open(path, encoding="utf-8", newline="") as f:
        return list(csv.DictReader(f, delimiter="\t"))


def _cv_rows(path):
    with open(path, encoding="utf-8", newline="") as f:
        r = csv.reader(f, delimiter="\t")
        header = next(r)
        return header, [dict(zip(header, row)) for row in r]


def test_generated_in_seconds(corpus):
    out, info, elapsed = corpus
    assert info["audio_hours"] * 60 > 4  # minutes of audio ...
    assert elapsed < 60  # ... in seconds (about 70x real time per core)


def test_librispeech_layout(corpus):
    out, info, _ = corpus
    root = out / "LibriSpeech"
    subsets = {"train-clean-100": set(), "dev-clean": set(), "test-clean": set()}
    texts = {}
    for subset in subsets:
        flacs = sorted((root / subset).rglob("*.flac"))
        assert flacs, subset
        trans = {}
        for t in (root / subset).rglob("*.trans.txt"):
            spk, ch = t.name.split(".")[0].split("-")
            assert t.parent.name == ch and t.parent.parent.name == spk
            for line in t.read_text().splitlines():
                uid, text = line.split(" ", 1)
                assert re.fullmatch(rf"{spk}-{ch}-\d{{4}}", uid)
                assert text == text.upper() and re.fullmatch(r"[A-Z' ]+", text)
                trans[uid] = text
        assert {f.stem for f in flacs} == set(trans)
        for f in flacs:
            inf = sf.info(f)
            assert (inf.samplerate, inf.channels, inf.format, inf.subtype) == (16000, 1, "FLAC", "PCM_16")
            assert 1.0 < inf.duration < 15.0
            subsets[subset].add(f.parent.parent.name)
        texts[subset] = set(trans.values())
    a, b, c = subsets.values()
    assert not a & b and not a & c and not b & c, "speaker-disjoint"
    assert len(a | b | c) >= 20
    ta, tb, tc = texts.values()
    assert not ta & tb and not ta & tc and not tb & tc, "sentence-disjoint"
    lines = [ln for ln in (root / "SPEAKERS.TXT").read_text().splitlines() if not ln.startswith(";")]
    listed = {ln.split("|")[0].strip(): ln.split("|")[2].strip() for ln in lines}
    assert listed == {s: k for k, v in subsets.items() for s in v}


def test_librilight_layout(corpus):
    out, _, _ = corpus
    root = out / "librispeech_finetuning"
    train_spk = {p.name for p in (out / "LibriSpeech" / "train-clean-100").iterdir()}
    for part in [f"1h/{i}" for i in range(6)] + ["9h"]:
        for kind in ("clean", "other"):
            d = root / part / kind
            flacs = list(d.rglob("*.flac"))
            assert flacs, d
            assert {f.parent.parent.name for f in flacs} <= train_spk
            assert all(sf.info(f).samplerate == 16000 for f in flacs)
            trans = [ln.split(" ", 1)[0] for t in d.rglob("*.trans.txt") for ln in t.read_text().splitlines()]
            assert sorted(trans) == sorted(f.stem for f in flacs)
    other = _labels(out / "labels" / "librilight" / "9h_other.tsv")
    assert all(r["augment"] != "none" for r in other)  # 'other' is always noisy/reverberant


@pytest.mark.parametrize("lang", ["de", "tr"])
def test_commonvoice_layout(corpus, lang):
    out, _, _ = corpus
    root = out / CV_VERSION / lang
    rows = {}
    for split in ("train", "dev", "test", "validated", "invalidated", "other"):
        header, rows[split] = _cv_rows(root / f"{split}.tsv")
        assert header == CV_COLUMNS
    assert rows["validated"] == rows["train"] + rows["dev"] + rows["test"]
    assert not rows["invalidated"] and not rows["other"]
    clients = [{r["client_id"] for r in rows[s]} for s in ("train", "dev", "test")]
    sents = [{r["sentence"] for r in rows[s]} for s in ("train", "dev", "test")]
    for x in (clients, sents):
        assert not x[0] & x[1] and not x[0] & x[2] and not x[1] & x[2]
    assert len(clients[0] | clients[1] | clients[2]) >= 20
    durs = dict(_cv_rows(root / "clip_durations.tsv")[1][i].values() for i in range(len(rows["validated"])))
    for r in rows["validated"][:12]:
        inf = sf.info(root / "clips" / r["path"])
        assert (inf.samplerate, inf.format) == (48000, "MP3")
        assert abs(inf.duration * 1000 - int(durs[r["path"]])) < 60
        assert r["locale"] == lang and r["sentence_id"] == hashlib.sha256(r["sentence"].encode()).hexdigest()
    assert len(list((root / "clips").glob("*.mp3"))) == len(rows["validated"])


def test_babel_layout(corpus):
    out, info, _ = corpus
    assert info["babel_codes"] == {"tr": 105}
    conv = out / "IARPA-babel105b-v0.5" / "conversational"
    for part in ("training", "dev"):
        sphs = sorted((conv / part / "audio").glob("*.sph"))
        assert sphs
        for s in sphs:
            assert re.fullmatch(r"BABEL_BP_105_\d{5}_\d{8}_\d{6}_inLine", s.stem)
            inf = sf.info(s)
            assert (inf.samplerate, inf.format, inf.subtype) == (8000, "NIST", "ULAW")  # telephone mu-law
            lines = (conv / part / "transcription" / f"{s.stem}.txt").read_text().splitlines()
            stamps = [float(ln[1:-1]) for ln in lines[::2]]
            assert all(re.fullmatch(r"\[\d+\.\d{3}\]", ln) for ln in lines[::2])
            assert stamps == sorted(stamps) and stamps[0] == 0.0
            assert abs(stamps[-1] - inf.duration) < 0.01
            texts = lines[1::2]
            assert "<no-speech>" in texts and sum(t != "<no-speech>" for t in texts) >= 4
            assert inf.duration > 10


def test_labels_consistent_with_text_and_audio(corpus):
    out, info, _ = corpus
    voices = {str(s["sid"]): s["voice"] for spks in info["speakers"].values() for s in spks}
    assert len({v for v in voices.values() if v.startswith("en")}) >= 3  # English speakers have accents
    checked = 0
    for f in sorted((out / "labels").rglob("*.tsv")):
        rows = _labels(f)
        assert rows, f
        exact = 0
        for r in rows:
            phones = r["phones"].split()
            onsets = [float(x) for x in r["phone_onsets"].split()]
            words = r["words"].split()
            assert phones and len(onsets) == len(phones) and words
            start, end = float(r["start"]), float(r["end"])
            assert start - 1e-3 <= onsets[0] and onsets == sorted(onsets) and onsets[-1] < end
            assert r["letters"] == " ".join(" ".join(w) + " |" for w in words)
            assert 0.4 < len(phones) / len(r["letters"].replace(" ", "").replace("|", "")) < 1.6
            style = dict(kv.split("=") for kv in r["style"].split("; "))
            assert set(style) == {"gap", "pitch", "range", "rate", "speed"}, r["style"]
            if style["gap"] == "0" and exact < 2:
                # phones are eSpeak's IPA for the words, in the same language (pauses between words drop
                # cross-word links such as English linking r, so only rows without a word gap are equal)
                assert phonemize(" ".join(words), voices[r["speaker"]]) == phones, (f, r["id"])
                exact += 1
                checked += 1
    assert checked >= 10
    # LibriSpeech transcripts are the label words upper-cased
    for r in _labels(out / "labels" / "librispeech" / "dev-clean.tsv"):
        p = out / r["path"]
        spk, ch, _ = p.stem.split("-")
        trans = dict(ln.split(" ", 1) for ln in (p.parent / f"{spk}-{ch}.trans.txt").read_text().splitlines())
        assert trans[p.stem] == r["words"].upper()


def test_audio_not_silent_and_varied(corpus):
    out, _, _ = corpus
    rows = _labels(out / "labels" / "librispeech" / "train-clean-100.tsv")
    levels, leads = [], []
    for r in rows:
        x, rate = sf.read(out / r["path"], dtype="float32")
        s, e = int(float(r["start"]) * rate), int(float(r["end"]) * rate)
        speech, lead = x[s:e], x[: max(1, s - 160)]
        levels.append(10 * np.log10(np.mean(speech**2)))
        assert levels[-1] > -45
        assert 10 * np.log10(np.mean(lead**2) + 1e-12) < levels[-1] - 30  # the leading part is silence
        leads.append(float(r["start"]))
    assert np.std(levels) > 2.0 and np.std(leads) > 0.08


def test_speakers_differ_measurably(corpus):
    """Per-speaker median F0 (autocorrelation) follows the speaker's configured base pitch."""
    out, info, _ = corpus
    base = {str(s["sid"]): s["pitch_base"] for s in info["speakers"]["en"]}
    f0 = {}
    for r in _labels(out / "labels" / "librispeech" / "train-clean-100.tsv"):
        x, rate = sf.read(out / r["path"], dtype="float32")
        f0.setdefault(r["speaker"], []).append(estimate_f0(x, rate))
    spk = sorted(f0)
    assert len(spk) >= 16
    measured = [np.median(f0[s]) for s in spk]
    # per-utterance pitch and speed draws move F0 around the speaker's own
    assert np.corrcoef([base[s] for s in spk], measured)[0, 1] > 0.6
    assert max(measured) - min(measured) > 60


def test_byte_identical_across_runs_and_worker_counts(tmp_path):
    args = ["--languages", "en,tr", "--minutes-per-language", "0.2", "--speakers-per-language", "6",
            "--dev-speakers", "1", "--test-speakers", "1", "--babel-minutes", "0.3", "--librilight-scale", "0.001",
            "--augment-prob", "0.5"]
    from data_prep.synth.espeak import get_engine

    hashes = []
    for i, w in enumerate(("1", "2")):
        # eSpeak's output depends on what its process synthesized before: this process's engine must
        # play no part in the corpus
        get_engine().synthesize("A different history of synthesis in this process." * i, "en-US")
        out = tmp_path / f"c{i}"
        assert _run(out, *args, "--workers", w) == 0
        hashes.append({str(p.relative_to(out)): hashlib.md5(p.read_bytes()).hexdigest()
                       for p in sorted(out.rglob("*")) if p.is_file()})
    assert len(hashes[0]) > 50 and hashes[0] == hashes[1]
    assert _run(tmp_path / "c0", *args) == 1  # refuses to overwrite without --overwrite
    assert _run(tmp_path / "c2", *args, "--seed", "1") == 0
    other = {str(p.relative_to(tmp_path / "c2")): hashlib.md5(p.read_bytes()).hexdigest()
             for p in sorted((tmp_path / "c2").rglob("*.flac"))}
    assert set(other.values()).isdisjoint(hashes[0].values())


def test_text_dir(tmp_path, capsys):
    text = tmp_path / "text"
    text.mkdir()
    sents = [f"This is user sentence number {w}." for w in
             ["one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven", "twelve"]]
    (text / "en.txt").write_text("\n".join(sents) + "\n", encoding="utf-8")
    out = tmp_path / "c"
    assert _run(out, "--languages", "en", "--minutes-per-language", "0.2", "--speakers-per-language", "4",
                "--dev-speakers", "1", "--test-speakers", "1", "--librilight-scale", "0", "--babel-languages", "",
                "--text-dir", str(text), "--workers", "1") == 0
    allowed = {" ".join(normalize_words(s)) for s in sents}
    seen = {}
    for f in (out / "labels" / "librispeech").glob("*.tsv"):
        seen[f.stem] = {r["words"] for r in _labels(f)}
        assert seen[f.stem] <= allowed
    assert not seen["train-clean-100"] & seen["dev-clean"] and not seen["dev-clean"] & seen["test-clean"]
    (text / "en.txt").write_text("fine\nbad 42\n", encoding="utf-8")
    assert _run(tmp_path / "d", "--languages", "en", "--text-dir", str(text), "--workers", "1") == 1
    assert re.search(r"en\.txt:2: digits", capsys.readouterr().err)


def test_eval_minutes_enlarge_dev_and_test_only(corpus):
    """--eval-minutes tr=0.75: tr's dev and test hold ~45 s each (de: 10% of 30 s, at least one utterance
    per speaker), train as de's."""
    out, _, _ = corpus

    def seconds(lang, split):
        root = out / CV_VERSION / lang
        durs = dict(r.values() for r in _cv_rows(root / "clip_durations.tsv")[1])
        return sum(int(durs[r["path"]]) for r in _cv_rows(root / f"{split}.tsv")[1]) / 1000

    for split in ("dev", "test"):
        assert 38 <= seconds("tr", split) <= 60 and seconds("de", split) <= 30, split
    assert abs(seconds("tr", "train") / seconds("de", "train") - 1) < 0.25  # one sentence per train speaker at least


def test_bad_arguments_are_clear_errors(tmp_path, capsys):
    assert _run(tmp_path / "x", "--languages", "en,xx") == 2
    assert "no sentences for language 'xx'" in capsys.readouterr().err
    assert _run(tmp_path / "x", "--languages", "en", "--dev-fraction", "0.6", "--test-fraction", "0.5") == 2
    assert _run(tmp_path / "x", "--languages", "en", "--speakers-per-language", "8", "--dev-speakers", "4",
                "--test-speakers", "4") == 2
    assert "cannot be split" in capsys.readouterr().err
    assert _run(tmp_path / "x", "--languages", "en", "--eval-minutes", "de=1") == 2
    assert "eval_minutes" in capsys.readouterr().err
    assert not (tmp_path / "x" / "synth_info.json").exists()


def test_acoustic_draws_recorded_per_utterance(corpus):
    """Speaking style, noise kind and channel are drawn per utterance and written in the label files."""
    out, _, _ = corpus

    def cells(rows, col):
        return [dict(kv.split("=") for kv in r[col].split("; ")) if r[col] != "none" else {} for r in rows]

    cv = _labels(out / "labels" / "commonvoice-de" / "train.tsv") + _labels(
        out / "labels" / "commonvoice-tr" / "train.tsv")
    styles = cells(cv, "style")
    assert len({s["pitch"] for s in styles}) > 5 and len({s["gap"] for s in styles}) > 1
    speeds = [float(s["speed"]) for s in styles]
    assert 0.2 < np.mean([v != 1.0 for v in speeds]) < 0.8 and all(0.9 <= v <= 1.1 for v in speeds)
    channels = cells(cv, "channel")
    kbps = [float(c["mp3_kbps"]) for c in channels]
    assert min(kbps) < 45 and max(kbps) > 60  # MP3 at varied, low bitrates
    assert any("opus_kbps" in c and float(c["opus_kbps"]) < 35 for c in channels)
    noises = {a.get("noise", "") for a in cells(cv, "augment")}
    assert any(n.startswith("babble") for n in noises) and noises & {"white", "pink", "brown"}
    ls = _labels(out / "labels" / "librispeech" / "dev-clean.tsv")
    assert {r["augment"] for r in ls} == {"none"} and {r["channel"] for r in ls} == {"none"}
    babel = _labels(out / "labels" / "babel-tr" / "training.tsv")
    assert {r["channel"] for r in babel} == {"telephone=300-3400; ulaw=8"}
