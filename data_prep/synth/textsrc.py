"""Natural sentences for the synthetic corpus, cut from LibreOffice's translated help (MPL-2.0).

The corpus reads real sentences, one file per language in ``data_prep/synth/sentences/<lang>.txt``
(shipped with the package; see the README there for the source, version and licence). This module makes
those files from Debian's ``libreoffice-help-<lang>`` packages, the one openly licensed source on the
package registries with thousands of natural sentences in every corpus language:

    apt-get install libreoffice-help-en-us libreoffice-help-de ...   # or apt-get download + dpkg -x
    python -m data_prep.synth.textsrc --help-root /usr/share/libreoffice/help --out data_prep/synth/sentences

Sentences are the ``<p>`` paragraphs of the help pages split at sentence ends, kept when they read aloud as
written: 3-14 words (CommonVoice's own limit for its sentences), a capital first letter and a final ``. ! ?``, letters of the language's script,
common punctuation only, no digits (labels need numbers in words), no acronyms or CamelCase names (eSpeak
spells them), no sentence left untranslated (equal to one of the English help). A fixed-seed sample of
``--count`` per language is written, shuffled, one per line.
"""

from __future__ import annotations

import argparse
import re
import sys
import unicodedata
from html.parser import HTMLParser
from pathlib import Path

import numpy as np

# language -> folder of libreoffice-help-<pkg> under the help root
HELP_FOLDERS = {"en": "en-US", "de": "de", "fr": "fr", "es": "es", "it": "it", "nl": "nl", "pt": "pt",
                "ru": "ru", "sv": "sv", "tr": "tr", "et": "et", "fi": "fi", "hu": "hu", "pl": "pl"}
CYRILLIC = {"ru", "uk", "bg", "kk", "ky", "tt"}
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")
_ALLOWED_PUNCT = set(" .,;:!?'’\"«»„“”()-–")
_INNER_CAPITAL = re.compile(r"\w\w*[A-ZÀ-ÞА-Я]")


class _Paragraphs(HTMLParser):
    """Text of every ``<p>`` element of an HTML page."""

    def __init__(self):
        super().__init__()
        self.paragraphs: list[str] = []
        self._buf: list[str] | None = None

    def handle_starttag(self, tag, attrs):
        if tag == "p":
            self._buf = []

    def handle_endtag(self, tag):
        if tag == "p" and self._buf is not None:
            self.paragraphs.append("".join(self._buf))
            self._buf = None

    def handle_data(self, data):
        if self._buf is not None:
            self._buf.append(data)


def _script_ok(s: str, lang: str) -> bool:
    names = [unicodedata.name(c, "") for c in s if c.isalpha()]
    want = "CYRILLIC" if lang in CYRILLIC else "LATIN"
    return bool(names) and all(n.startswith(want) for n in names)


def readable(s: str, lang: str, min_words: int = 3, max_words: int = 14) -> bool:
    """True when sentence ``s`` reads aloud as written (see the module docstring)."""
    words = s.split()
    if not (min_words <= len(words) <= max_words) or s[-1] not in ".!?":
        return False
    if not (s[0].isalpha() and s[0].isupper()):
        return False
    if any(not (c.isalpha() or c in _ALLOWED_PUNCT) for c in s):
        return False  # digits, symbols, paths, key names with '+'
    if any(_INNER_CAPITAL.match(w.strip("«»„“”\"'()")) for w in words):
        return False  # acronyms (PDF), CamelCase (LibreOffice): eSpeak spells them or the label splits them
    if s.count("(") != s.count(")") or s.count('"') % 2:
        return False
    return _script_ok(s, lang) and max(len(w) for w in words) <= 24


def help_sentences(help_root: str | Path, lang: str) -> list[str]:
    """Distinct readable sentences of one language's help pages, in file order (case-insensitive dedup)."""
    folder = Path(help_root) / HELP_FOLDERS.get(lang, lang)
    pages = sorted(folder.rglob("*.html"))
    if not pages:
        raise FileNotFoundError(f"no help pages under {folder} (install libreoffice-help-{lang.lower()})")
    seen: dict[str, str] = {}
    for page in pages:
        parser = _Paragraphs()
        parser.feed(page.read_text(encoding="utf-8", errors="replace"))
        for para in parser.paragraphs:
            for s in _SENTENCE_END.split(" ".join(para.split())):
                s = unicodedata.normalize("NFC", s.strip())
                if s and readable(s, lang):
                    seen.setdefault(s.lower(), s)
    return list(seen.values())


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m data_prep.synth.textsrc", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--help-root", required=True, help="folder with <lang>/text/**/*.html (the help packages')")
    p.add_argument("--out", required=True, help="output folder for <lang>.txt")
    p.add_argument("--languages", default="en,de,fr,es,it,nl,pt,ru,sv,tr,et,fi")
    p.add_argument("--count", type=int, default=6000, help="sentences per language (default 6000)")
    p.add_argument("--english-count", type=int, default=12000, help="sentences for English (default 12000)")
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args(argv)
    english = {s.lower() for s in help_sentences(a.help_root, "en")}
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    for lang in a.languages.split(","):
        found = help_sentences(a.help_root, lang)
        if lang != "en":
            found = [s for s in found if s.lower() not in english]  # left untranslated
        n = min(len(found), a.english_count if lang == "en" else a.count)
        rng = np.random.default_rng([a.seed, sum(map(ord, lang))])
        pick = [found[i] for i in rng.permutation(len(found))[:n]]
        (out / f"{lang}.txt").write_text("\n".join(pick) + "\n", encoding="utf-8")
        print(f"{lang}: {len(found)} readable sentences, wrote {n}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
