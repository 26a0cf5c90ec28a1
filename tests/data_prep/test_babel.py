"""data_prep.babel on a tiny BABEL language pack (8 kHz SPHERE + timestamped transcripts)."""

import numpy as np
import pytest
import soundfile as sf

from data_prep import babel
from data_prep.babel import clean_line
from speech_ssl.data.datasets import PretrainDataset
from speech_ssl.data.manifest import read_labels, read_manifest
from speech_ssl.data.units import Dictionary
from speech_ssl.errors import DataError

TRANSCRIPT = """[0.000]
<no-speech>
[0.500]
merhaba <breath> nasılsın
[1.250]
<hes> iyi-yim *teşekkür* ederim
[2.000]
<foreign> hello
[2.400]
bu (()) değil
[2.800]
yarım kelime~
[3.000]
((belki)) evet
[3.600]
"""


@pytest.mark.parametrize(
    "text,expected",
    [
        ("<no-speech>", ("non-speech", None)),
        ("<breath> <cough>", ("non-speech", None)),
        ("merhaba <breath> nasılsın", ("ok", "merhaba nasılsın")),
        ("<hes> wor- -ord *mispro*", ("ok", "wor ord mispro")),
        ("((maybe)) yes", ("ok", "maybe yes")),
        ("<foreign> hello", ("excluded", None)),
        ("<overlap> x", ("excluded", None)),
        ("a (( )) b", ("excluded", None)),
        ("cut~", ("excluded", None)),
        ("<weird> x", ("bad-tag", "<weird>")),
    ],
)
def test_clean_line_rules(text, expected):
    assert clean_line(text) == expected


def _pack(tmp_path, rng):
    root = tmp_path / "BABEL_OP2_205"
    waves = {}
    for src, names in (("training", ["BABEL_A_1", "BABEL_A_2"]), ("dev", ["BABEL_B_1"])):
        (root / "conversational" / src / "audio").mkdir(parents=True)
        (root / "conversational" / src / "transcription").mkdir(parents=True)
        for name in names:
            x = (0.2 * rng.standard_normal(8000 * 4)).clip(-1, 1).astype(np.float32)
            sf.write(root / "conversational" / src / "audio" / f"{name}.sph", x, 8000, format="NIST", subtype="PCM_16")
            waves[name] = sf.read(root / "conversational" / src / "audio" / f"{name}.sph", dtype="float32")[0]
            (root / "conversational" / src / "transcription" / f"{name}.txt").write_text(TRANSCRIPT)
    return root, waves


def test_babel_cut_flac(tmp_path):
    import soxr

    root, waves = _pack(tmp_path, np.random.default_rng(0))
    out = tmp_path / "out"
    summary = babel.prepare(root, out, workers=2, lang="tr")
    assert "train: dropped by the tag rules: 6 excluded, 2 non-speech" in summary
    m = read_manifest(out / "train.tsv")
    assert m.root == str(out.resolve()) and len(m) == 6
    assert [e.path for e in m.entries[:3]] == [
        "audio/train/BABEL_A_1_00004.flac", "audio/train/BABEL_A_1_00006.flac", "audio/train/BABEL_A_1_00014.flac"]
    assert read_labels(out / "train.wrd", 6)[:3] == ["merhaba nasılsın", "iyi yim teşekkür ederim", "belki evet"]
    assert read_labels(out / "train.ltr")[2] == "b e l k i | e v e t |"
    # the first utterance is seconds 0.5..1.25 of the recording, resampled to 16 kHz
    y, sr = sf.read(out / m.entries[0].path, dtype="float32")
    assert sr == 16000 and len(y) == m.entries[0].num_samples == 12000
    ref = soxr.resample(waves["BABEL_A_1"][4000:10000], 8000, 16000, quality="HQ")
    np.testing.assert_allclose(y, ref, atol=2 / 32768)
    # the last utterance closes at the final timestamp
    assert m.entries[2].num_samples == 9600
    assert len(read_manifest(out / "dev.tsv")) == 3
    d = Dictionary.load(out / "dict.ltr.txt")
    assert "ı" in d and "ş" in d and "<" not in d
    assert "(already done)" in babel.prepare(root, out, lang="tr")


def test_babel_segments_mode_reads_like_the_cut_files(tmp_path):
    root, _ = _pack(tmp_path, np.random.default_rng(1))
    cut = tmp_path / "cut"
    babel.prepare(root, cut)
    seg = tmp_path / "seg"
    babel.prepare(root, seg, segments=True)
    m = read_manifest(seg / "train.tsv")
    assert m.root == str(root.resolve())
    assert m.entries[0].path == "conversational/training/audio/BABEL_A_1.sph"
    assert (m.entries[0].start, m.entries[0].end, m.entries[0].num_samples) == (4000, 10000, 12000)
    assert not (seg / "audio").exists()
    a, b = PretrainDataset(cut / "train.tsv"), PretrainDataset(seg / "train.tsv")
    assert a.sizes.tolist() == b.sizes.tolist()
    np.testing.assert_allclose(a[1]["source"].numpy(), b[1]["source"].numpy(), atol=2 / 32768)


def test_babel_bad_inputs(tmp_path):
    root, _ = _pack(tmp_path, np.random.default_rng(2))
    tdir = root / "conversational" / "training" / "transcription"
    (tdir / "BABEL_A_2.txt").write_text("[0.000]\nfine words\n[1.000]\n<weird> tag\n[0.5]\nback\n[9.0]\n")
    with pytest.raises(DataError, match=r"BABEL_A_2.txt:5: timestamp 0.5 goes back"):
        babel.prepare(root, tmp_path / "strict")
    (tdir / "BABEL_A_9.txt").write_text(TRANSCRIPT)  # transcript without audio
    (tdir / "BABEL_A_2.txt").write_text("[0.000]\nfine words\n[1.000]\n<weird> tag\n[2.0]\nlate\n[9.0]\n[10.0]\nlater\n")
    out = tmp_path / "out"
    summary = babel.prepare(root, out, skip_bad=True)
    report = (out / "babel.bad.tsv").read_text().splitlines()
    assert any(r.endswith("BABEL_A_9.txt\ttranscript without audio") for r in report)
    assert any("BABEL_A_2.txt:4\tunknown tag <weird>" in r for r in report)
    assert any("BABEL_A_2.txt:9\tsegment starts at 10.0 s, after the audio ends (4.000 s)" in r for r in report)
    assert "skipped 3 bad inputs" in summary
    wrd = read_labels(out / "train.wrd")
    assert "fine words" in wrd and "late" in wrd  # [2.0, 9.0] is clamped to the audio's 4 s
    m = read_manifest(out / "train.tsv")
    assert m.entries[wrd.index("late")].num_samples == 2 * 16000
