"""data_prep.librispeech and data_prep.librilight on tiny trees in the published layouts."""

import json

import numpy as np
import pytest
import soundfile as sf

from data_prep import librilight, librispeech
from speech_ssl.data.manifest import read_labels, read_manifest
from speech_ssl.data.units import Dictionary
from speech_ssl.errors import DataError

WORDS = ["THE", "CAT", "SAT", "ON", "A", "MAT", "IT'S", "GOOD", "DAY", "NIGHT"]


def make_chapter(base, spk, chap, n_utts, rng, length=None):
    """<base>/<spk>/<chap>/<spk>-<chap>-NNNN.flac + <spk>-<chap>.trans.txt; returns {id: (text, samples)}."""
    d = base / str(spk) / str(chap)
    d.mkdir(parents=True, exist_ok=True)
    made, lines = {}, []
    for u in range(n_utts):
        uid = f"{spk}-{chap}-{u:04d}"
        n = length or int(rng.integers(3000, 9000))
        sf.write(d / f"{uid}.flac", (0.1 * rng.standard_normal(n)).clip(-1, 1), 16000, subtype="PCM_16")
        text = " ".join(WORDS[int(i)] for i in rng.integers(0, len(WORDS), 1 + u % 4))
        lines.append(f"{uid} {text}")
        made[uid] = (text, n)
    (d / f"{spk}-{chap}.trans.txt").write_text("\n".join(lines) + "\n")
    return made


@pytest.fixture
def libri(tmp_path):
    rng = np.random.default_rng(0)
    root = tmp_path / "LibriSpeech"
    made = {}
    for i, sub in enumerate(["train-clean-100", "train-clean-360", "train-other-500", "dev-clean", "test-other"]):
        made[sub] = make_chapter(root / sub, 100 + i, 200 + i, 3, rng)
        made[sub].update(make_chapter(root / sub, 10 + i, 20 + i, 2, rng))
    return root, made


def test_librispeech_outputs_line_by_line(libri, tmp_path):
    root, made = libri
    out = tmp_path / "out"
    summary = librispeech.prepare(root, out, workers=1)
    assert "kept" in summary and "skipped 0" in summary
    for sub, utts in made.items():
        m = read_manifest(out / f"{sub}.tsv")
        assert m.root == str(root.resolve())
        ids = sorted(utts)
        assert [e.path for e in m.entries] == [
            f"{sub}/{i.split('-')[0]}/{i.split('-')[1]}/{i}.flac" for i in ids
        ]
        assert m.sizes == [utts[i][1] for i in ids]
        wrd = read_labels(out / f"{sub}.wrd", len(m))
        assert wrd == [utts[i][0] for i in ids]
        ltr = read_labels(out / f"{sub}.ltr", len(m))
        assert ltr == [" ".join(t.replace(" ", "|")) + " |" for t in wrd]
    m960 = read_manifest(out / "train-960.tsv")
    assert len(m960) == 15 and m960.entries[0].path.startswith("train-clean-100/")
    assert m960.entries[-1].path.startswith("train-other-500/")
    assert len(read_labels(out / "train-960.ltr")) == 15
    d = Dictionary.load(out / "dict.ltr.txt")
    assert d.symbols[4] == "|" and "'" in d and "Q" not in d
    # the dictionary counts only train letters
    train_ltr = sum((read_labels(out / f"{s}.ltr") for s in librispeech.TRAIN_960), [])
    assert d.count[4] == sum(line.split().count("|") for line in train_ltr)


def test_librispeech_is_idempotent_and_redoes_changed_subsets(libri, tmp_path):
    root, _ = libri
    out = tmp_path / "out"
    librispeech.prepare(root, out)
    before = {p.name: p.stat().st_mtime_ns for p in out.glob("*.tsv")}
    summary = librispeech.prepare(root, out)
    assert "(already done)" in summary
    after = {p.name: p.stat().st_mtime_ns for p in out.glob("*.tsv")}
    assert before["dev-clean.tsv"] == after["dev-clean.tsv"]
    # a new utterance in dev-clean: that subset is redone
    make_chapter(root / "dev-clean", 999, 1, 1, np.random.default_rng(5))
    librispeech.prepare(root, out)
    assert len(read_manifest(out / "dev-clean.tsv")) == 6
    assert json.loads((out / ".prep" / "dev-clean.json").read_text())["utterances"] == 6


def test_librispeech_bad_inputs(libri, tmp_path, monkeypatch):
    import data_prep.common

    monkeypatch.setattr(data_prep.common, "MIN_ITEMS_FOR_POOL", 0)  # exercise the worker pool
    root, made = libri
    chap = root / "dev-clean" / "103" / "203"
    (chap / "103-203-0001.flac").write_bytes(b"not a flac file")  # corrupt
    (chap / "103-203-0002.flac").write_bytes(b"")  # zero length
    sf.write(chap / "103-203-0009.flac", np.zeros(100), 16000)  # audio without transcript
    trans = chap / "103-203.trans.txt"
    trans.write_text(trans.read_text() + "103-203-0005 NO AUDIO\n103-203-0000 DUPLICATE LINE\n")
    with pytest.raises(DataError, match=r"103-203.trans.txt:5: duplicate utterance id '103-203-0000'"):
        librispeech.prepare(root, tmp_path / "strict")
    out = tmp_path / "out"
    summary = librispeech.prepare(root, out, workers=2, skip_bad=True)
    assert "skipped 5 bad inputs" in summary
    report = (out / "librispeech.bad.tsv").read_text().splitlines()
    reasons = {line.split("\t")[0].split("dev-clean/")[-1]: line.split("\t")[1] for line in report}
    assert reasons["103/203/103-203.trans.txt:5"].startswith("duplicate utterance id")
    assert reasons["103/203/103-203.trans.txt:4"] == "transcript without audio: 103-203-0005"
    assert reasons["103/203/103-203-0009.flac"] == "audio without transcript"
    assert reasons["103/203/103-203-0002.flac"] == "zero-length audio (empty file)"
    assert reasons["103/203/103-203-0001.flac"]== "cannot read audio header: Format not recognised."
    m = read_manifest(out / "dev-clean.tsv")
    assert [e.path.rsplit("/", 1)[1] for e in m.entries] == ["103-203-0000.flac", "13-23-0000.flac", "13-23-0001.flac"]
    assert read_labels(out / "dev-clean.wrd")[0] == made["dev-clean"]["103-203-0000"][0]
    js = json.loads((out / "librispeech.summary.json").read_text())
    assert js["skipped"] == 5 and js["splits"]["dev-clean"]["utterances"] == 3


def test_librilight_folds(tmp_path):
    rng = np.random.default_rng(1)
    root = tmp_path / "librispeech_finetuning"
    ids = {}
    for f in range(6):
        for kind, spk in (("clean", 1000 + f), ("other", 2000 + f)):
            ids[(f, kind)] = sorted(make_chapter(root / "1h" / str(f) / kind, spk, 7, 2, rng))
    for kind, spk in (("clean", 3000), ("other", 4000)):
        ids[("9h", kind)] = sorted(make_chapter(root / "9h" / kind, spk, 7, 3, rng))
    out = tmp_path / "out"
    summary = librilight.prepare(root, out, workers=2)
    for line in ("train-10m", "train-1h", "train-10h"):
        assert line in summary
    m10 = read_manifest(out / "train-10m.tsv")
    assert [e.path for e in m10.entries][:1] == [f"1h/0/clean/1000/7/{ids[(0, 'clean')][0]}.flac"]
    assert len(m10) == 4 and {e.path.split("/")[2] for e in m10.entries} == {"clean", "other"}
    m1 = read_manifest(out / "train-1h.tsv")
    assert len(m1) == 24 and {e.path.split("/")[1] for e in m1.entries} == {str(i) for i in range(6)}
    m10h = read_manifest(out / "train-10h.tsv")
    assert len(m10h) == 30 and [e.path for e in m10h.entries[:24]] == [e.path for e in m1.entries]
    assert all(e.path.startswith("9h/") for e in m10h.entries[24:])
    assert len(read_labels(out / "train-10h.ltr", 30)) == 30
    assert (out / "dict.ltr.txt").is_file()
    assert "(already done)" in librilight.prepare(root, out)


def test_librilight_missing_fold(tmp_path):
    root = tmp_path / "librispeech_finetuning"
    make_chapter(root / "1h" / "0" / "clean", 1, 2, 1, np.random.default_rng(0))
    with pytest.raises(DataError, match=r"fold\(s\) missing: 1h/1, 1h/2"):
        librilight.prepare(root, tmp_path / "out")


def test_verify_audio_finds_nan(libri, tmp_path):
    root, _ = libri
    x = np.zeros(1000, np.float32)
    x[10] = np.nan
    wav = root / "dev-clean" / "103" / "203" / "103-203-0000.wav"
    (root / "dev-clean" / "103" / "203" / "103-203-0000.flac").unlink()
    sf.write(wav, x, 16000, subtype="FLOAT")
    assert "skipped 0" in librispeech.prepare(root, tmp_path / "headers")  # a header read cannot see NaN
    with pytest.raises(DataError, match=r"103-203-0000.wav: NaN/Inf sample at frame 10"):
        librispeech.prepare(root, tmp_path / "verified", verify=True)


def test_skip_bad_decodes_every_file_so_nan_audio_is_skipped_now(libri, tmp_path, capsys):
    """--skip-bad implies --verify-audio: the NaN file is skipped and counted, not left for training to find."""
    from speech_ssl.cli import main

    root, _ = libri
    x = np.zeros(1000, np.float32)
    x[10] = np.nan
    (root / "dev-clean" / "103" / "203" / "103-203-0000.flac").unlink()
    sf.write(root / "dev-clean" / "103" / "203" / "103-203-0000.wav", x, 16000, subtype="FLOAT")
    assert main(["prepare", "librispeech", "--root", str(root), "--out", str(tmp_path / "o"), "--skip-bad"]) == 0
    out = capsys.readouterr().out
    assert "skipped 1" in out and "103-203-0000" in (tmp_path / "o" / "librispeech.bad.tsv").read_text()
