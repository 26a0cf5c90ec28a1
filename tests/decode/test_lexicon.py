"""`speech-ssl lm lexicon`: letter lexicons of a text's words or of an ARPA file's unigrams
(speech_ssl.decode.lm.read_arpa_unigrams), filtered by a dictionary's symbols."""

from __future__ import annotations

import gzip

import pytest

from speech_ssl.cli import main
from speech_ssl.decode.lm import read_arpa_unigrams
from speech_ssl.errors import DataError

ARPA = """\\data\\
ngram 1=6
ngram 2=1

\\1-grams:
-1.0\t<unk>\t0
-99\t<s>\t-0.3
-1.0\t</s>\t0
-0.5\tHELLO\t-0.2
-0.6\tWORLD\t-0.2
-0.7\tNAÏVE\t-0.2

\\2-grams:
-0.1\tHELLO WORLD

\\end\\
"""
DICT = "| 5\nE 3\nL 3\nO 2\nH 1\nW 1\nR 1\nD 1\nA 1\nN 1\nV 1\n"


def test_read_arpa_unigrams_plain_and_gz(tmp_path):
    (tmp_path / "lm.arpa").write_text(ARPA, encoding="utf-8")
    words = ["<unk>", "<s>", "</s>", "HELLO", "WORLD", "NAÏVE"]
    assert read_arpa_unigrams(tmp_path / "lm.arpa") == words
    with gzip.open(tmp_path / "lm.arpa.gz", "wt", encoding="utf-8") as f:
        f.write(ARPA)
    assert read_arpa_unigrams(tmp_path / "lm.arpa.gz") == words


def test_read_arpa_unigrams_errors(tmp_path):
    (tmp_path / "bin").write_bytes(b"mmap lm \xff\xfe\x00\x01 binary")
    with pytest.raises(DataError, match="KenLM binary"):
        read_arpa_unigrams(tmp_path / "bin")
    (tmp_path / "t.arpa").write_text("\\data\\\nngram 1=0\n\n\\2-grams:\n-1\tA B\n")
    with pytest.raises(DataError, match="no .1-grams: section"):
        read_arpa_unigrams(tmp_path / "t.arpa")
    (tmp_path / "m.arpa").write_text("\\data\\\n\n\\1-grams:\n-1 HELLO\n")
    with pytest.raises(DataError, match=r"m.arpa:4: malformed 1-gram line"):
        read_arpa_unigrams(tmp_path / "m.arpa")
    with pytest.raises(DataError, match="not found"):
        read_arpa_unigrams(tmp_path / "none.arpa")


def test_lm_lexicon_from_arpa_with_dictionary(tmp_path, capsys):
    (tmp_path / "lm.arpa").write_text(ARPA, encoding="utf-8")
    (tmp_path / "dict.ltr.txt").write_text(DICT)
    out = tmp_path / "lex.txt"
    assert main(["lm", "lexicon", "--arpa", str(tmp_path / "lm.arpa"), "--dict", str(tmp_path / "dict.ltr.txt"),
                 "--out", str(out)]) == 0
    assert capsys.readouterr().out.strip() == f"2 words in {out}"
    # specials dropped; NAÏVE has a letter outside the dictionary
    assert out.read_text() == "HELLO\tH E L L O |\nWORLD\tW O R L D |\n"
    assert main(["lm", "lexicon", "--arpa", str(tmp_path / "lm.arpa"), "--out", str(out)]) == 0
    assert "NAÏVE\tN A Ï V E |" in out.read_text()


def test_lm_lexicon_from_text_and_errors(tmp_path, capsys):
    (tmp_path / "train.wrd").write_text("HELLO WORLD\nWORLD HOLD\n\n")
    (tmp_path / "dict.ltr.txt").write_text(DICT)
    out = tmp_path / "lex.txt"
    assert main(["lm", "lexicon", "--text", str(tmp_path / "train.wrd"),
                 "--dict", str(tmp_path / "dict.ltr.txt"), "--out", str(out)]) == 0
    assert out.read_text() == "HELLO\tH E L L O |\nHOLD\tH O L D |\nWORLD\tW O R L D |\n"
    capsys.readouterr()
    assert main(["lm", "lexicon", "--text", str(tmp_path / "none.wrd"), "--out", str(out)]) == 2
    assert "none.wrd" in capsys.readouterr().err
    (tmp_path / "bin").write_bytes(b"\xff\xfe binary")
    assert main(["lm", "lexicon", "--arpa", str(tmp_path / "bin"), "--out", str(out)]) == 2
    assert "KenLM binary" in capsys.readouterr().err
    with pytest.raises(SystemExit):  # exactly one of --text / --arpa
        main(["lm", "lexicon", "--out", str(out)])
