"""speech_ssl.data.subsets and `speech-ssl manifest subset | split | dict`: seeded subsets (nested, labels
aligned), the BABEL conversation hold-out, and the fixed-order dictionary."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

from speech_ssl.cli import main
from speech_ssl.data.manifest import read_labels, read_manifest
from speech_ssl.data.subsets import conversation_of, hold_out, ordered_dictionary, subset_split
from speech_ssl.errors import DataError


def _split(tmp_path, n=20):
    rng = np.random.default_rng(0)
    rows, ltr, wrd = [], [], []
    for i in range(n):
        secs = 0.5 + 0.1 * (i % 5)
        x = (0.1 * rng.standard_normal(int(secs * 16000))).astype(np.float32)
        sf.write(tmp_path / f"u{i:02d}.flac", x, 16000)
        rows.append(f"u{i:02d}.flac\t{len(x)}")
        w = f"WORD{i}"
        wrd.append(w)
        ltr.append(" ".join(w) + " |")
    (tmp_path / "train.tsv").write_text(str(tmp_path) + "\n" + "\n".join(rows) + "\n")
    (tmp_path / "train.ltr").write_text("\n".join(ltr) + "\n")
    (tmp_path / "train.wrd").write_text("\n".join(wrd) + "\n")
    (tmp_path / "dict.ltr.txt").write_text("W 20\nO 20\n")
    return tmp_path / "train.tsv"


def test_subset_split_seconds_alignment_and_nesting(tmp_path):
    src = _split(tmp_path)
    small = subset_split(src, tmp_path / "sub" / "a.tsv", seconds=3.0, seed=3)
    big = subset_split(src, tmp_path / "sub" / "b.tsv", seconds=6.0, seed=3)
    assert 3.0 <= small["seconds"] < 3.0 + 0.9 and 6.0 <= big["seconds"] < 6.0 + 0.9
    assert small["labels"] == ["ltr", "wrd"]
    m = read_manifest(tmp_path / "sub" / "a.tsv")
    assert sum(m.sizes) / 16000 == pytest.approx(small["seconds"])
    wrd = read_labels(tmp_path / "sub" / "a.wrd", len(m))
    ltr = read_labels(tmp_path / "sub" / "a.ltr", len(m))
    for e, w, lt in zip(m.entries, wrd, ltr):  # labels stay with their audio
        i = int(e.path[1:3])
        assert w == f"WORD{i}" and lt == " ".join(w) + " |"
    assert (tmp_path / "sub" / "dict.ltr.txt").read_text() == "W 20\nO 20\n"
    # the smaller subset is inside the bigger one (same seed = prefix of the same shuffled order)
    assert {e.path for e in m.entries} <= {e.path for e in read_manifest(tmp_path / "sub" / "b.tsv").entries}
    # manifest order is kept
    assert [e.path for e in m.entries] == sorted(e.path for e in m.entries)


def test_subset_split_too_little_audio(tmp_path):
    src = _split(tmp_path, n=3)
    with pytest.raises(DataError, match="train.tsv"):
        subset_split(src, tmp_path / "x.tsv", seconds=60)


def test_manifest_subset_command(tmp_path, capsys):
    src = _split(tmp_path)
    assert main(["manifest", "subset", str(src), str(tmp_path / "s" / "a.tsv"), "3", "--seed", "3"]) == 0
    assert "utterances" in capsys.readouterr().out
    # the command writes what the function writes
    subset_split(src, tmp_path / "f" / "a.tsv", seconds=3.0, seed=3)
    for ext in ("tsv", "wrd", "ltr"):
        assert (tmp_path / "s" / f"a.{ext}").read_text() == (tmp_path / "f" / f"a.{ext}").read_text()
    # too little audio: exit 1, the source named
    assert main(["manifest", "subset", str(src), str(tmp_path / "s" / "b.tsv"), "600"]) == 1
    assert "train.tsv" in capsys.readouterr().err and not (tmp_path / "s" / "b.tsv").exists()


def test_outputs_that_would_overwrite_the_source_or_each_other_are_refused(tmp_path, capsys):
    src = _split(tmp_path)
    before = {ext: (tmp_path / f"train.{ext}").read_text() for ext in ("tsv", "ltr", "wrd")}
    for args, named in (
        (["subset", str(src), str(src), "3"], "dest " + str(src) + " is the source"),
        (["subset", str(src), str(tmp_path / "." / "train.tsv"), "3"], "is the source"),
        (["subset", str(src), str(tmp_path / "train.ltr"), "3"], "expected a manifest name ending in .tsv"),
        (["subset", str(src), str(tmp_path / "a.tsv"), "0"], "seconds must be > 0"),
        (["subset", str(src), str(tmp_path / "a.tsv"), "-5"], "seconds must be > 0"),
        (["split", str(src), "--rest", str(src), "--held", str(tmp_path / "h.tsv")], "rest " + str(src) + " is the source"),
        (["split", str(src), "--rest", str(tmp_path / "x.tsv"), "--held", str(tmp_path / "x.tsv")],
         "held " + str(tmp_path / "x.tsv") + " is also --rest"),
    ):
        assert main(["manifest", *args]) == 1, args
        assert named in capsys.readouterr().err, args
    assert {ext: (tmp_path / f"train.{ext}").read_text() for ext in ("tsv", "ltr", "wrd")} == before
    assert not (tmp_path / "a.tsv").exists() and not (tmp_path / "x.tsv").exists()


def test_conversation_of_babel_names():
    # cut audio: <conversation side>_<line>; segment rows keep the side's file name
    assert conversation_of("audio/BABEL_BP_105_11223_20120101_123456_inLine_0003.flac", False) == \
        "BABEL_BP_105_11223_20120101_123456"
    assert conversation_of("BABEL_BP_105_11223_20120101_123456_outLine.sph", True) == \
        "BABEL_BP_105_11223_20120101_123456"
    assert conversation_of("x/call7_inLine_12.flac", False) == conversation_of("x/call7_outLine_3.flac", False)


def _babel_split(tmp_path, calls=12, per_side=2):
    rows, wrd, ltr = [], [], []
    for c in range(calls):
        for side in ("inLine", "outLine"):
            for k in range(per_side):
                rows.append(f"audio/call{c:02d}_{side}_{k}.flac\t{1600 * (k + 1)}")
                wrd.append(f"W{c}{side}{k}")
                ltr.append(" ".join(f"W{c}") + " |")
    (tmp_path / "train.tsv").write_text(str(tmp_path) + "\n" + "\n".join(rows) + "\n")
    (tmp_path / "train.wrd").write_text("\n".join(wrd) + "\n")
    (tmp_path / "train.ltr").write_text("\n".join(ltr) + "\n")
    return tmp_path / "train.tsv"


def test_hold_out_every_nth_conversation(tmp_path):
    src = _babel_split(tmp_path, calls=12)
    s = hold_out(src, tmp_path / "train-ft.tsv", tmp_path / "valid.tsv", every=5)
    # sorted conversations call00..call11: every 5th = call04, call09, both sides and all lines of each
    held = read_manifest(tmp_path / "valid.tsv")
    assert {conversation_of(e.path, False) for e in held.entries} == {"call04", "call09"}
    assert s == {"held": 8, "rest": 40, "how": "2 of 12 conversations"}
    rest = read_manifest(tmp_path / "train-ft.tsv")
    full = read_manifest(src)
    assert sorted(e.path for e in held.entries + rest.entries) == sorted(e.path for e in full.entries)
    # manifest order kept
    assert [e.path for e in rest.entries] == [e.path for e in full.entries if e not in held.entries]
    wrd = read_labels(tmp_path / "valid.wrd", len(held))
    for e, w in zip(held.entries, wrd):  # labels stay with their rows
        stem = e.path.split("/")[1].split(".")[0]
        call, side, k = stem.split("_")
        assert w == f"W{int(call[4:])}{side}{k}"
    assert len(read_labels(tmp_path / "train-ft.ltr")) == 40


def test_hold_out_few_conversations_and_by_utterance(tmp_path):
    src = _babel_split(tmp_path, calls=2, per_side=3)  # 12 rows, 2 conversations < every
    s = hold_out(src, tmp_path / "a.tsv", tmp_path / "b.tsv", every=5)
    assert s == {"held": 2, "rest": 10, "how": "every 5th utterance (2 conversations)"}
    full = read_manifest(src).entries
    assert [e.path for e in read_manifest(tmp_path / "b.tsv").entries] == [full[4].path, full[9].path]
    s = hold_out(src, tmp_path / "c.tsv", tmp_path / "d.tsv", every=20, by="utterance")
    assert s["held"] == 1 and read_manifest(tmp_path / "d.tsv").entries[0].path == full[-1].path  # at least one
    with pytest.raises(ValueError, match="every"):
        hold_out(src, tmp_path / "e.tsv", tmp_path / "f.tsv", every=1)


def test_manifest_split_command(tmp_path, capsys):
    src = _babel_split(tmp_path, calls=12)
    args = ["manifest", "split", str(src), "--rest", str(tmp_path / "train-ft.tsv"), "--held",
            str(tmp_path / "valid.tsv"), "--every", "5"]
    assert main(args) == 0
    assert "2 of 12 conversations: 8 utterances" in capsys.readouterr().out
    assert len(read_manifest(tmp_path / "valid.tsv")) == 8 and (tmp_path / "valid.ltr").exists()
    (tmp_path / "train.wrd").write_text("too few lines\n")
    assert main(args) == 1
    assert "train.wrd" in capsys.readouterr().err


def test_ordered_dictionary_counts_and_errors(tmp_path):
    (tmp_path / "a.ltr").write_text("A B | A\n")
    (tmp_path / "b.ltr").write_text("B | C\n")
    files = [tmp_path / "a.ltr", tmp_path / "b.ltr"]
    n = ordered_dictionary(files, ["|", "B", "A", "C", "Z"], tmp_path / "d.txt")
    assert n == {"|": 2, "B": 2, "A": 2, "C": 1, "Z": 0}
    assert (tmp_path / "d.txt").read_text() == "| 2\nB 2\nA 2\nC 1\nZ 0\n"  # the given order, unseen kept at 0
    with pytest.raises(DataError, match=r"\['C'\]"):
        ordered_dictionary([tmp_path / "b.ltr"], ["|", "B"], tmp_path / "e.txt")
    assert not (tmp_path / "e.txt").exists()
    with pytest.raises(DataError, match="not found"):
        ordered_dictionary([tmp_path / "none.ltr"], ["|"], tmp_path / "e.txt")


def test_manifest_dict_command(tmp_path, capsys):
    (tmp_path / "a.ltr").write_text("E T | T\n")
    out = tmp_path / "dict.ltr.txt"
    assert main(["manifest", "dict", "--symbols", "| E T A", "--out", str(out), str(tmp_path / "a.ltr")]) == 0
    assert out.read_text() == "| 1\nE 1\nT 2\nA 0\n"
    assert main(["manifest", "dict", "--symbols", "| E", "--out", str(tmp_path / "x.txt"),
                 str(tmp_path / "a.ltr")]) == 1
    assert "['T']" in capsys.readouterr().err
