"""Sentences of the synthetic corpus: natural text shipped per language, or the user's, and its normalization.

Every built-in language reads real sentences from ``data_prep/synth/sentences/<lang>.txt`` (cut from
LibreOffice's translated help, MPL-2.0; :mod:`data_prep.synth.textsrc` makes them and the folder's README
names the packages and versions). ``--text-dir`` gives other text. Sentences are drawn without repetition
and split so that train, dev, test and LM text share no sentence (:func:`split_sentences`).
"""

from __future__ import annotations

import re
import unicodedata
from pathlib import Path

import numpy as np

from speech_ssl.errors import DataError

SENTENCE_DIR = Path(__file__).parent / "sentences"
LANGUAGES = tuple(sorted(p.stem for p in SENTENCE_DIR.glob("*.txt")))

_WORD_RE = re.compile(r"[^\w' ]+")
_DOTTED_I = ("tr", "az")  # languages whose i/ı case pairs are İ/I


def normalize_words(sentence: str, lang: str = "") -> list[str]:
    """Label words of a sentence: NFC, lowercase, hyphens to spaces, punctuation dropped, apostrophes kept
    inside words (LibriSpeech/CommonVoice-style normalization)."""
    s = unicodedata.normalize("NFC", sentence)
    if lang in _DOTTED_I:
        s = s.replace("İ", "i").replace("I", "ı")
    s = s.lower().replace("-", " ").replace("’", "'")
    s = _WORD_RE.sub(" ", s)
    words = [w.strip("'") for w in s.split()]
    return [w for w in words if w and not w.isdigit()]


def letters(words: list[str]) -> str:
    """fairseq letter labels: ``'h e l l o | w o r l d |'``."""
    return " ".join(" ".join(w) + " |" for w in words)


def shipped_sentences(lang: str) -> list[str]:
    """The built-in natural sentences of ``lang`` (distinct, in the file's shuffled order)."""
    path = SENTENCE_DIR / f"{lang}.txt"
    if not path.is_file():
        raise ValueError(f"no built-in sentences for language {lang!r} (have {', '.join(LANGUAGES)}); "
                         "give its sentences in --text-dir DIR/LANG.txt")
    return read_text_file(path)


def read_text_file(path: str | Path) -> list[str]:
    """User sentences, one per line (blank lines skipped, duplicates dropped, order kept).

    Digits are rejected (labels need numbers spelled out) with a :class:`DataError` naming file:line.
    """
    path = Path(path)
    out, seen = [], set()
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError as e:
        raise DataError(f"not UTF-8 text: {e}", path) from None
    for i, line in enumerate(lines, 1):
        s = " ".join(line.split())
        if not s:
            continue
        if any(c.isdigit() for c in s):
            raise DataError(f"digits in {s!r}: spell numbers out as words", path, i)
        if not normalize_words(s):
            raise DataError(f"no words in {s!r}", path, i)
        if s not in seen:
            seen.add(s)
            out.append(s)
    if not out:
        raise DataError("no sentences", path)
    return out


def split_sentences(sentences: list[str], counts: dict[str, int], rng: np.random.Generator) -> dict[str, list[str]]:
    """Partition distinct ``sentences`` into sentence-disjoint splits with ``counts[split]`` items each.

    When there are fewer sentences than requested, each split gets a proportional share and its
    sentences repeat (read by different speakers), keeping the splits disjoint.
    """
    sentences = list(sentences)
    order = rng.permutation(len(sentences))
    sentences = [sentences[i] for i in order]
    total = sum(counts.values())
    names = list(counts)
    if total <= len(sentences):
        sizes = dict(counts)
    else:
        if len(sentences) < sum(1 for c in counts.values() if c > 0):
            raise ValueError(f"{len(sentences)} distinct sentences cannot make {len(names)} disjoint splits")
        sizes = {k: (max(1, len(sentences) * c // total) if c > 0 else 0) for k, c in counts.items()}
        sizes[names[0]] = len(sentences) - sum(v for k, v in sizes.items() if k != names[0])
    out, start = {}, 0
    for k in names:
        part = sentences[start: start + sizes[k]]
        start += sizes[k]
        out[k] = [part[i % len(part)] for i in range(counts[k])] if part else []
    return out
