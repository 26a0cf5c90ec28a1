"""Shipped natural sentences, their source filter, label normalization and user text (data_prep.synth.text, textsrc)."""

import numpy as np
import pytest

from data_prep.synth.corpus import DEFAULT_LANGUAGES
from data_prep.synth.text import (
    LANGUAGES,
    letters,
    normalize_words,
    read_text_file,
    shipped_sentences,
    split_sentences,
)
from data_prep.synth.textsrc import help_sentences, readable
from speech_ssl.errors import DataError


def test_every_default_language_has_thousands_of_natural_sentences():
    assert set(DEFAULT_LANGUAGES) <= set(LANGUAGES)
    for lang in DEFAULT_LANGUAGES:
        sents = shipped_sentences(lang)
        assert len(sents) >= (12_000 if lang == "en" else 5_000), lang
        assert len({s.lower() for s in sents}) == len(sents), lang
        assert not any(c.isdigit() for s in sents for c in s), lang
        assert all(3 <= len(s.split()) <= 14 and s[-1] in ".!?" for s in sents), lang
        # real text, not templates: a large vocabulary, most words rare
        counts: dict[str, int] = {}
        for s in sents[:5000]:
            for w in normalize_words(s, lang):
                counts[w] = counts.get(w, 0) + 1
        assert len(counts) > 2500, (lang, len(counts))  # the templates had fewer than 600
        assert sum(c == 1 for c in counts.values()) > 0.3 * len(counts), lang


def test_readable_keeps_sentences_read_as_written():
    assert readable("Choose a file and click the button.", "en")
    assert readable("Выберите нужный формат.", "ru")
    assert readable("Valitse tiedosto ja napsauta painiketta!", "fi")
    for bad in ("Press Ctrl+C to copy.", "Save it as PDF now.", "Open LibreOffice Writer now.",
                "Enter the value in cell A1.", "See section 3 for details.", "Too short.",
                "the lower-case start of a sentence.", "No final punctuation here",
                "Выберите file в меню.", "Click (here to open."):
        assert not readable(bad, "ru" if bad.startswith("Выб") else "en"), bad


def test_help_sentences_from_html_pages(tmp_path):
    page = tmp_path / "de" / "text" / "shared" / "a.html"
    page.parent.mkdir(parents=True)
    page.write_text("<html><body><h1>Titel</h1><p>Wählen Sie eine Datei aus. Klicken Sie auf "
                    "<b>Öffnen</b>.</p><p>Drücken Sie Strg+C.</p><p>wählen Sie eine Datei aus.</p>"
                    "<script>var x = 1;</script></body></html>", encoding="utf-8")
    assert help_sentences(tmp_path, "de") == ["Wählen Sie eine Datei aus.", "Klicken Sie auf Öffnen."]
    with pytest.raises(FileNotFoundError, match="libreoffice-help-fr"):
        help_sentences(tmp_path, "fr")


def test_normalize_words_and_letters():
    assert normalize_words("Forty-two apples, l'homme's “quoted” day!") == [
        "forty", "two", "apples", "l'homme's", "quoted", "day"]
    assert normalize_words("Über 'Straße'.", "de") == ["über", "straße"]
    assert letters(["ab", "c"]) == "a b | c |"
    assert normalize_words("IRMAK İSTİYOR", "tr") == ["ırmak", "istiyor"]


def test_read_text_file_errors_name_file_and_line(tmp_path):
    p = tmp_path / "en.txt"
    p.write_text("Hello there.\n\nHello there.\nI have 3 cats.\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"en\.txt:4: digits"):
        read_text_file(p)
    p.write_text("Hello there.\n\nHello there.\nGood night.\n", encoding="utf-8")
    assert read_text_file(p) == ["Hello there.", "Good night."]
    p.write_text("...\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"en\.txt:1: no words"):
        read_text_file(p)


def test_split_sentences_disjoint_even_when_short():
    rng = np.random.default_rng(0)
    sents = [f"s{i}" for i in range(100)]
    parts = split_sentences(sents, {"train": 60, "dev": 10, "test": 10}, rng)
    assert [len(parts[k]) for k in ("train", "dev", "test")] == [60, 10, 10]
    assert not set(parts["train"]) & set(parts["dev"]) and not set(parts["dev"]) & set(parts["test"])
    # fewer sentences than utterances: splits stay disjoint, sentences repeat inside a split
    parts = split_sentences(sents[:20], {"train": 80, "dev": 10, "test": 10}, rng)
    assert [len(parts[k]) for k in ("train", "dev", "test")] == [80, 10, 10]
    tr, dv, te = (set(parts[k]) for k in ("train", "dev", "test"))
    assert not tr & dv and not tr & te and not dv & te

