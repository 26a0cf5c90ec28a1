"""N-gram language models in ARPA format: build (KenLM ``lmplz`` or our own small-corpus writer), read, query.

``build_lm(text, order, out)`` runs KenLM's ``lmplz`` when it is on PATH. Otherwise it estimates an
**interpolated modified Kneser-Ney** model itself (Chen & Goodman 1998, the estimate ``lmplz``
makes) and writes ARPA. Our writer holds every n-gram in Python dicts: it is meant for small
corpora (up to a few million words, e.g. LibriSpeech transcripts or a test fixture), not for the
800M-word LibriSpeech LM corpus -- use ``lmplz`` (or the official 4-gram ARPA) for that.

Details of our estimate (matching ``lmplz`` where it matters):
* sentences are padded with one ``<s>`` and one ``</s>``; ``<s>`` is never predicted (log10 -99);
* the highest order uses raw counts, lower orders use continuation counts (number of distinct
  left extensions), except n-grams starting with ``<s>`` which keep raw counts;
* three discounts D1, D2, D3+ per order from the count-of-counts ``t1..t4`` of the (adjusted) counts,
  ``Y = t1/(t1+2 t2)``, ``Dk = k - (k+1) Y t_{k+1}/t_k``; when a discount is undefined or out of
  range (tiny corpora) the fallback ``0.5, 1.0, 1.5`` is used (lmplz's ``--discount_fallback``);
* unigrams interpolate with the uniform distribution over the vocabulary (words + ``</s>`` +
  ``<unk>``), so ``<unk>`` gets only the uniform share;
* backoff weights are written for every n-gram that is the context of a longer n-gram.
Pruning is not supported. ``units="letter"`` turns each sentence into letters with ``|`` word
boundaries (``H E L L O | W O R L D |``) for lexicon-free beam search over letter vocabularies.
"""

from __future__ import annotations

import math
import shutil
import subprocess
from collections import defaultdict
from pathlib import Path
from typing import Iterable, Literal, Sequence

from speech_ssl.decode.io import atomic_write_text
from speech_ssl.errors import DataError

BOS, EOS, UNK = "<s>", "</s>", "<unk>"
FALLBACK_DISCOUNTS = (0.5, 1.0, 1.5)
LOG10_ZERO = -99.0


def read_sentences(path: str | Path, units: Literal["word", "letter"] = "word") -> list[list[str]]:
    """Non-empty lines of a text file as token lists (words, or letters with ``|`` boundaries)."""
    path = Path(path)
    if not path.is_file():
        raise DataError("LM training text not found", path)
    out = []
    for lineno, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        words = line.split()
        if not words:
            continue
        for w in words:
            if w in (BOS, EOS):
                raise DataError(f"the text contains the reserved token {w!r}", path, lineno)
        if units == "letter":
            toks = []
            for w in words:
                toks.extend(w)
                toks.append("|")
            out.append(toks)
        else:
            out.append(words)
    if not out:
        raise DataError("LM training text has no words", path)
    return out


def _discounts(counts: dict, order: int) -> tuple[float, float, float]:
    t = [0, 0, 0, 0, 0]
    for c in counts.values():
        if c <= 4:
            t[c] += 1
    try:
        y = t[1] / (t[1] + 2 * t[2])
        d = tuple(k - (k + 1) * y * t[k + 1] / t[k] for k in (1, 2, 3))
    except ZeroDivisionError:
        return FALLBACK_DISCOUNTS
    if not all(0 < dk < k + 1 for k, dk in zip((1, 2, 3), d)):
        return FALLBACK_DISCOUNTS
    return d  # type: ignore[return-value]


def estimate_kneser_ney(sentences: Iterable[Sequence[str]], order: int) -> list[dict[tuple, tuple[float, float | None]]]:
    """Interpolated modified Kneser-Ney estimate.

    Returns, for n = 1..order, a dict ``ngram tuple -> (log10 prob, log10 backoff or None)``.
    """
    if order < 2:
        raise ValueError("order must be >= 2 (flashlight/KenLM reject unigram-only ARPA files)")
    raw: list[dict[tuple, int]] = [defaultdict(int) for _ in range(order + 1)]  # raw[n][ngram]
    vocab = set()
    for sent in sentences:
        toks = [BOS, *sent, EOS]
        vocab.update(sent)
        L = len(toks)
        for n in range(1, order + 1):
            for i in range(L - n + 1):
                raw[n][tuple(toks[i : i + n])] += 1
    raw[1].pop((BOS,), None)
    # Adjusted counts: highest order raw; lower orders = number of distinct left extensions,
    # except n-grams starting with <s> (they cannot be extended to the left).
    adj: list[dict[tuple, int]] = [dict() for _ in range(order + 1)]
    adj[order] = dict(raw[order])
    for n in range(order - 1, 0, -1):
        cont: dict[tuple, int] = defaultdict(int)
        for g in raw[n + 1]:
            cont[g[1:]] += 1
        for g, c in raw[n].items():
            adj[n][g] = c if g[0] == BOS else cont.get(g, c)
    # Vocabulary: every word, </s>, <unk>; <s> listed but never predicted.
    predicted = sorted(vocab | {EOS}) + [UNK]
    probs: list[dict[tuple, float]] = [dict() for _ in range(order + 1)]
    gammas: list[dict[tuple, float]] = [dict() for _ in range(order + 1)]  # gamma[n][context of length n]
    for n in range(1, order + 1):
        d = _discounts(adj[n], n)
        # Per-context totals and N1/N2/N3+ counts.
        tot: dict[tuple, int] = defaultdict(int)
        nk: dict[tuple, list[int]] = defaultdict(lambda: [0, 0, 0])
        for g, c in adj[n].items():
            ctx = g[:-1]
            tot[ctx] += c
            nk[ctx][min(c, 3) - 1] += 1
        for ctx, s in tot.items():
            n1, n2, n3 = nk[ctx]
            gammas[n - 1][ctx] = (d[0] * n1 + d[1] * n2 + d[2] * n3) / s
        for g, c in adj[n].items():
            ctx = g[:-1]
            u = (c - d[min(c, 3) - 1]) / tot[ctx]
            if n == 1:
                lower = 1.0 / len(predicted)
            else:
                lower = probs[n - 1].get(g[1:])
                if lower is None:  # cannot happen for n-grams read from text; guard anyway
                    lower = _backoff_prob(probs, gammas, g[1:])
            probs[n][g] = u + gammas[n - 1][ctx] * lower
    # Unigrams never seen as predicted words: <unk> (and nothing else) -> uniform share.
    probs[1][(UNK,)] = gammas[0][()] / len(predicted)
    result: list[dict[tuple, tuple[float, float | None]]] = []
    for n in range(1, order + 1):
        table: dict[tuple, tuple[float, float | None]] = {}
        items = list(probs[n].items())
        if n == 1:
            items.append(((BOS,), 0.0))
        for g, p in items:
            lp = LOG10_ZERO if g == (BOS,) else math.log10(p)
            bo = None
            if n < order and g in gammas[n]:
                bo = math.log10(gammas[n][g]) if gammas[n][g] > 0 else LOG10_ZERO
            table[g] = (lp, bo)
        result.append(table)
    return result


def _backoff_prob(probs, gammas, g: tuple) -> float:
    n = len(g)
    if g in probs[n]:
        return probs[n][g]
    if n == 1:
        return probs[1][(UNK,)]
    return gammas[n - 1].get(g[:-1], 1.0) * _backoff_prob(probs, gammas, g[1:])


def format_arpa(tables: list[dict[tuple, tuple[float, float | None]]]) -> str:
    lines = ["", "\\data\\"]
    for n, t in enumerate(tables, 1):
        lines.append(f"ngram {n}={len(t)}")
    for n, t in enumerate(tables, 1):
        lines += ["", f"\\{n}-grams:"]
        for g in sorted(t):
            lp, bo = t[g]
            row = f"{lp:.7g}\t{' '.join(g)}"
            if bo is not None:
                row += f"\t{bo:.7g}"
            lines.append(row)
    lines += ["", "\\end\\", ""]
    return "\n".join(lines)


def write_arpa(sentences: Iterable[Sequence[str]], order: int, out: str | Path) -> dict[int, int]:
    """Estimate with :func:`estimate_kneser_ney` and write ``out`` atomically; returns n-gram counts."""
    tables = estimate_kneser_ney(list(sentences), order)
    atomic_write_text(out, format_arpa(tables))
    return {n: len(t) for n, t in enumerate(tables, 1)}


def build_lm(
    text: str | Path,
    order: int,
    out: str | Path,
    units: Literal["word", "letter"] = "word",
    use_lmplz: bool | None = None,
) -> str:
    """Build an ARPA LM from ``text`` (one sentence per line). Returns ``"lmplz"`` or ``"ours"``.

    ``use_lmplz``: None = use ``lmplz`` when on PATH (and ``units == "word"``), True = require it,
    False = always use our writer.
    """
    lmplz = shutil.which("lmplz")
    if use_lmplz is True and lmplz is None:
        raise FileNotFoundError("lmplz (KenLM) is not on PATH")
    if use_lmplz is None:
        use_lmplz = lmplz is not None and units == "word"
    if order < 2:
        raise ValueError("order must be >= 2 (flashlight/KenLM reject unigram-only ARPA files)")
    if use_lmplz:
        out = Path(out)
        tmp = out.with_name(f".{out.name}.tmp")
        with open(text, "rb") as fin, open(tmp, "wb") as fout:
            subprocess.run(
                [lmplz, "-o", str(order), "--discount_fallback", "-S", "20%"], stdin=fin, stdout=fout, check=True
            )
        tmp.replace(out)
        return "lmplz"
    write_arpa(read_sentences(text, units), order, out)
    return "ours"


class ArpaLM:
    """A backoff n-gram model read from an ARPA file, for scoring and tests (not fast)."""

    def __init__(self, path: str | Path):
        path = Path(path)
        if not path.is_file():
            raise DataError("ARPA file not found", path)
        self.path = path
        self.prob: dict[tuple, float] = {}
        self.backoff: dict[tuple, float] = {}
        section = 0
        self.order = 0
        for lineno, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            line = line.strip()
            if not line or line.startswith("ngram ") or line == "\\data\\":
                continue
            if line == "\\end\\":
                break
            if line.startswith("\\") and line.endswith("-grams:"):
                section = int(line[1:].split("-")[0])
                self.order = max(self.order, section)
                continue
            if section == 0:
                raise DataError(f"unexpected line before the n-gram sections: {line!r}", path, lineno)
            parts = line.split()
            if len(parts) not in (section + 1, section + 2):
                raise DataError(f"expected {section}-gram row, got {line!r}", path, lineno)
            try:
                g = tuple(parts[1 : 1 + section])
                self.prob[g] = float(parts[0])
                if len(parts) == section + 2:
                    self.backoff[g] = float(parts[-1])
            except ValueError as e:
                raise DataError(f"bad number in {line!r}", path, lineno) from e
        self.vocab = sorted(g[0] for g in self.prob if len(g) == 1)

    def log10_prob(self, context: Sequence[str], word: str) -> float:
        """log10 p(word | context) with ARPA backoff (context truncated to order-1 words)."""
        ctx = tuple(context)[-(self.order - 1) :] if self.order > 1 else ()
        if word not in self.vocab:
            word = UNK
        bo = 0.0
        while True:
            g = ctx + (word,)
            if g in self.prob:
                return bo + self.prob[g]
            if not ctx:
                return bo + LOG10_ZERO
            bo += self.backoff.get(ctx, 0.0)
            ctx = ctx[1:]

    def sentence_log10(self, words: Sequence[str]) -> float:
        """log10 p(sentence </s> | <s>)."""
        ctx = [BOS]
        total = 0.0
        for w in [*words, EOS]:
            total += self.log10_prob(ctx, w)
            ctx.append(w)
        return total
