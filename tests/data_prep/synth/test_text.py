"""Sentence grammars, label normalization and user text (data_prep.synth.text)."""

import numpy as np
import pytest

from data_prep.synth.text import (
    LANGUAGES,
    Grammar,
    capitalize,
    letters,
    normalize_words,
    number_words,
    read_text_file,
    split_sentences,
)
from speech_ssl.errors import DataError


def test_at_least_ten_languages_with_10k_distinct_sentences():
    assert len(LANGUAGES) >= 10
    for lang in LANGUAGES:
        g = Grammar(lang)
        assert len(g) >= 10_000, lang
        sents = g.sample(10_000, np.random.default_rng(0))
        assert len(set(sents)) == 10_000, lang
        assert all(s[0].isupper() and s.endswith(".") for s in sents[:50]), lang
        # n-gram structure: a small vocabulary shared by many sentences
        vocab = {w for s in sents for w in normalize_words(s, lang)}
        assert 50 < len(vocab) < 600, (lang, len(vocab))


def test_sampling_is_deterministic_and_seed_dependent():
    g = Grammar("de")
    a = g.sample(100, np.random.default_rng(1))
    assert a == g.sample(100, np.random.default_rng(1))
    assert a != g.sample(100, np.random.default_rng(2))


def test_every_template_is_used():
    g = Grammar("en")
    sents = g.sample(400, np.random.default_rng(0))
    assert any(" and " in s for s in sents)
    assert any(s.split()[0] in ("In", "Every", "At", "On", "After", "This", "Before", "Right") for s in sents)


def test_numbers_spelled_out():
    assert number_words(42, "en") == "forty-two"
    assert number_words(42, "de") == "zweiundvierzig"
    assert number_words(42, "tr") == "kırk iki"
    assert number_words(10, "ky") == "он"
    assert number_words(99, "tt") == "туксан тугыз"
    with pytest.raises(ValueError):
        number_words(0, "en")
    for lang in LANGUAGES:
        s = Grammar(lang).sample(300, np.random.default_rng(3))
        assert not any(c.isdigit() for x in s for c in x), lang


def test_normalize_words_and_letters():
    assert normalize_words("Forty-two apples, l'homme's “quoted” day!") == [
        "forty", "two", "apples", "l'homme's", "quoted", "day"]
    assert normalize_words("Über 'Straße'.", "de") == ["über", "straße"]
    assert letters(["ab", "c"]) == "a b | c |"
    assert normalize_words("IRMAK İSTİYOR", "tr") == ["ırmak", "istiyor"]
    assert capitalize("istiyor", "tr") == "İstiyor" and capitalize("istiyor", "en") == "Istiyor"


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

