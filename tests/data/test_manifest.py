"""speech_ssl.data.manifest and units: fairseq tsv, segment rows, label files, dictionaries, vocabularies."""

import pytest
import torch

from speech_ssl.data.manifest import (
    ManifestEntry,
    read_labels,
    read_manifest,
    write_labels,
    write_manifest,
)
from speech_ssl.data.units import (
    Dictionary,
    SentencePieceVocab,
    build_dictionary,
    labels_to_text,
    text_to_letters,
    train_sentencepiece,
)
from speech_ssl.errors import DataError


def test_manifest_roundtrip_fairseq_format(tmp_path):
    entries = [ManifestEntry("a/b.flac", 1234), ManifestEntry("long.sph", 16000, 8000, 16000)]
    write_manifest(tmp_path / "m.tsv", tmp_path, entries)
    lines = (tmp_path / "m.tsv").read_text().split("\n")
    assert lines == [str(tmp_path.resolve()), "a/b.flac\t1234", "long.sph\t16000\t8000\t16000", ""]
    m = read_manifest(tmp_path / "m.tsv")
    assert m.entries == entries and m.root == str(tmp_path.resolve())
    assert m.full_path(0) == tmp_path.resolve() / "a/b.flac" and m.line_of(1) == 3
    assert m.sizes == [1234, 16000]


@pytest.mark.parametrize(
    "body,line,msg",
    [
        ("a.flac\t10\nb.flac\n", 3, "expected 2 tab-separated columns"),
        ("a.flac\t10\nb.flac\tten\n", 3, "num_samples 'ten' is not an integer"),
        ("a.flac\t-5\n", 2, "negative num_samples"),
        ("a.flac\t0\n", 2, "num_samples is 0"),
        ("a.flac\t10\n\nb.flac\t3\n", 3, "empty line"),
        ("a.flac\t10\t5\t5\n", 2, "end 5 <= start 5"),
        ("a.flac\t10\t5\n", 2, "got 3"),
        ("\t10\n", 2, "empty path"),
    ],
)
def test_malformed_manifest_rows_name_file_and_line(tmp_path, body, line, msg):
    p = tmp_path / "bad.tsv"
    p.write_text("/root\n" + body)
    with pytest.raises(DataError, match=msg) as e:
        read_manifest(p)
    assert str(e.value).startswith(f"{p}:{line}:")


def test_manifest_root_checks(tmp_path):
    (tmp_path / "e.tsv").write_text("")
    with pytest.raises(DataError, match=r"e.tsv:1: empty manifest"):
        read_manifest(tmp_path / "e.tsv")
    (tmp_path / "r.tsv").write_text("a.flac\t10\n")
    with pytest.raises(DataError, match=r"r.tsv:1: the first line must be the root"):
        read_manifest(tmp_path / "r.tsv")


def test_labels_aligned_by_line(tmp_path):
    write_labels(tmp_path / "x.ltr", ["A |", "B C |"])
    assert read_labels(tmp_path / "x.ltr", 2) == ["A |", "B C |"]
    with pytest.raises(DataError, match=r"x.ltr:3: label file has 2 lines but the manifest \(m.tsv\) has 3"):
        read_labels(tmp_path / "x.ltr", 3, "m.tsv")


def test_dictionary_fairseq_specials_and_order(tmp_path):
    p = tmp_path / "dict.ltr.txt"
    p.write_text("| 94802\nE 51860\nT 38431\n' 1000\n")
    d = Dictionary.load(p)
    assert d.symbols[:4] == ["<s>", "<pad>", "</s>", "<unk>"]
    assert (d.bos_index, d.pad_index, d.eos_index, d.unk_index, d.blank_index) == (0, 1, 2, 3, 0)
    assert d.index("|") == 4 and d.index("'") == 7 and len(d) == 8
    ids = d.encode("T E E |")
    assert ids.dtype == torch.long and ids.tolist() == [6, 5, 5, 4]
    assert d.encode("T", append_eos=True).tolist() == [6, 2]
    assert d.decode(torch.tensor([0, 6, 1, 5, 4])) == "T E |"
    d.save(tmp_path / "copy.txt")
    assert (tmp_path / "copy.txt").read_text() == p.read_text()


def test_dictionary_errors_name_file_and_line(tmp_path):
    d = Dictionary(["A", "B"])
    with pytest.raises(DataError, match=r"train.ltr:7: symbol 'Z' is not in the dictionary"):
        d.encode("A Z", "train.ltr", 7)
    assert d.encode("A Z", unk_ok=True).tolist() == [4, 3]
    for body, line, msg in [
        ("A 1\nB\n", 2, "expected 'SYMBOL COUNT'"),
        ("A 1\nB x\n", 2, "count 'x' is not an integer"),
        ("A 1\nB 2\nA 3\n", 3, "duplicate symbol 'A'"),
        ("A 1\n\n", 2, "empty"),
    ]:
        p = tmp_path / "dict.txt"
        p.write_text(body)
        with pytest.raises(DataError, match=msg) as e:
            Dictionary.load(p)
        assert str(e.value).startswith(f"{p}:{line}:")
    p.write_text("A 1\nA 5 #fairseq:overwrite\n")
    d = Dictionary.load(p)
    assert len(d) == 5 and d.count[4] == 5


def test_letters_fairseq_style():
    text = "HELLO WORLD"
    assert text_to_letters(text) == " ".join(text.replace(" ", "|")) + " |" == "H E L L O | W O R L D |"
    assert text_to_letters("  IT'S   OK ") == "I T ' S | O K |"
    assert labels_to_text("H E L L O | W O R L D |") == "HELLO WORLD"
    assert text_to_letters("") == ""
    d = build_dictionary([text_to_letters("AB A"), text_to_letters("B")])
    # by count descending, ties by symbol: | (3), A (2), B (2)
    assert d.symbols[4:] == ["|", "A", "B"] and d.count[4:] == [3, 2, 2]


@pytest.mark.parametrize("model_type", ["unigram", "bpe"])
def test_sentencepiece_trains_and_roundtrips(tmp_path, model_type):
    words = ["speech", "model", "audio", "learning", "self", "supervised", "wave", "vector", "data", "train"]
    texts = [" ".join(words[(i * 7 + j) % 10] for j in range(5 + i % 4)) for i in range(200)]
    model = train_sentencepiece(texts, tmp_path / "spm" / "sp", vocab_size=40, model_type=model_type)
    assert model.is_file()
    sp = SentencePieceVocab(model)
    pieces = sp.encode_line("self supervised speech")
    assert sp.decode_line(pieces) == "self supervised speech"
    d = sp.dictionary()
    assert d.symbols[:4] == list(Dictionary.SPECIALS)
    ids = d.encode(pieces)  # every piece is in the dictionary
    assert len(ids) == len(pieces.split())
