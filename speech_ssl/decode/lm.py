"""N-gram language models in ARPA format: build (KenLM ``lmplz`` or our own small-corpus writer), read, query.

``build_lm(text, order, out)`` runs KenLM's ``lmplz`` when it is on PATH. Otherwise it estimates an
**interpolated modified Kneser-Ney** model itself (Chen & Goodman 1998, the estimate ``lmplz``
makes) and writes ARPA. Our estimator is vectorized with numpy but holds every n-gram in memory and
does no pruning: it is meant for small and medium corpora (measured: 3M words, order 4, 9 s and
0.8 GB on one core; LibriSpeech's 960 h transcripts are ~9M words), not for the 800M-word
LibriSpeech LM corpus -- use ``lmplz`` (or the official 4-gram ARPA) for that.

Details of our estimate (following lmplz's documented estimate; not compared with lmplz output, which cannot
be installed here):
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
from pathlib import Path
from typing import Iterable, Literal, Sequence

import numpy as np

from speech_ssl.errors import DataError
from speech_ssl.files import atomic_open, read_text
from speech_ssl.progress import progress

BOS, EOS, UNK = "<s>", "</s>", "<unk>"
FALLBACK_DISCOUNTS = (0.5, 1.0, 1.5)
LOG10_ZERO = -99.0


def read_sentences(path: str | Path, units: Literal["word", "letter"] = "word") -> list[list[str]]:
    """Non-empty lines of a text file as token lists (words, or letters with ``|`` boundaries). For
    ``units="letter"`` a line of words is spelled out; a line that already holds ``|`` (fairseq ``.ltr`` labels:
    ``T H E | C A T |``) is taken as letters."""
    path = Path(path)
    if not path.is_file():
        raise DataError("text file not found", path)
    out = []
    for lineno, line in enumerate(read_text(path, "text file").splitlines(), 1):
        words = line.split()
        if not words:
            continue
        for w in words:
            if w in (BOS, EOS):
                raise DataError(f"the text contains the reserved token {w!r}", path, lineno)
        if units == "letter" and "|" in words:
            # already letters with | boundaries (a .ltr label file): spelling it again would make every letter
            # a word of its own
            out.append(words + ([] if words[-1] == "|" else ["|"]))
        elif units == "letter":
            toks = []
            for w in words:
                toks.extend(w)
                toks.append("|")
            out.append(toks)
        else:
            out.append(words)
    if not out:
        raise DataError("the text has no words", path)
    return out


def _discounts(adjusted: np.ndarray) -> tuple[float, float, float]:
    """Modified-KN discounts D1, D2, D3+ from the count-of-counts of one order's adjusted counts."""
    t = [0] + [int((adjusted == k).sum()) for k in (1, 2, 3, 4)]
    try:
        y = t[1] / (t[1] + 2 * t[2])
        d = tuple(k - (k + 1) * y * t[k + 1] / t[k] for k in (1, 2, 3))
    except ZeroDivisionError:
        return FALLBACK_DISCOUNTS
    if not all(0 < dk < k + 1 for k, dk in zip((1, 2, 3), d)):
        return FALLBACK_DISCOUNTS
    return d  # type: ignore[return-value]


def _keys(rows: np.ndarray, base: int) -> np.ndarray:
    """(M, n) ids in [0, base) -> (M,) keys that sort like the rows (lexicographically).

    int64 ``sum(id_k * base**(n-1-k))`` when it fits (fast to sort); otherwise big-endian int32 bytes
    viewed as one void scalar per row (byte order == numeric order)."""
    n = rows.shape[1]
    if base**n < 2**63:
        key = np.zeros(len(rows), dtype=np.int64)
        for k in range(n):
            key = key * base + rows[:, k]
        return key
    b = np.ascontiguousarray(rows.astype(">i4"))
    return b.view(np.dtype((np.void, 4 * n))).ravel()


def _unique_rows(rows: np.ndarray, base: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Sorted unique rows of (M, n) ``rows``, their keys and their counts."""
    keys = _keys(rows, base)
    order = np.argsort(keys, kind="stable")
    sk = keys[order]
    first = np.ones(len(sk), dtype=bool)
    first[1:] = sk[1:] != sk[:-1]
    starts = np.flatnonzero(first)
    counts = np.diff(np.append(starts, len(sk)))
    return rows[order[starts]], sk[starts], counts


def _lookup(table_keys: np.ndarray, keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Positions of ``keys`` in the sorted ``table_keys`` and whether each was found."""
    if len(table_keys) == 0:
        return np.zeros(len(keys), dtype=np.int64), np.zeros(len(keys), dtype=bool)
    pos = np.searchsorted(table_keys, keys)
    pos_c = np.minimum(pos, len(table_keys) - 1)
    return pos_c, table_keys[pos_c] == keys


def estimate_kneser_ney(
    sentences: Iterable[Sequence[str]], order: int
) -> list[dict[tuple, tuple[float, float | None]]]:
    """Interpolated modified Kneser-Ney estimate (vectorized with numpy; see the module docstring).

    Returns, for n = 1..order, a dict ``ngram tuple -> (log10 prob, log10 backoff or None)``.
    """
    words, tables = _estimate_arrays(sentences, order)
    out = []
    for rows, lp, bo in tables:
        table = {}
        for r, p, b in zip(rows.tolist(), lp.tolist(), bo.tolist()):
            table[tuple(words[i] for i in r)] = (p, None if math.isnan(b) else b)
        out.append(table)
    return out


def _estimate_arrays(sentences: Iterable[Sequence[str]], order: int):
    """The estimate as arrays: ``(words, [(rows (M, n) int32, log10 p (M,), log10 backoff (M,) NaN=none)])``."""
    if order < 2:
        raise ValueError("order must be >= 2 (flashlight/KenLM reject unigram-only ARPA files)")
    index: dict[str, int] = {BOS: 0, EOS: 1, UNK: 2}
    flat: list[int] = []
    sent_ids: list[int] = []
    for j, sent in enumerate(sentences):
        ids = [index.setdefault(w, len(index)) for w in sent]
        flat += [0, *ids, 1]
        sent_ids += [j] * (len(ids) + 2)
    if not flat:
        raise ValueError("no sentences")
    words = list(index)
    V = len(words)
    tok = np.asarray(flat, dtype=np.int32)
    sid = np.asarray(sent_ids, dtype=np.int64)
    # Unique n-grams (sorted) and raw counts, n = 1..order; never across sentences.
    uniq: list[np.ndarray] = [np.zeros(0)]
    raw: list[np.ndarray] = [np.zeros(0)]
    for n in progress(range(1, order + 1), total=order, desc="count n-grams", unit="order"):
        m = len(tok) - n + 1
        if m <= 0:
            uniq.append(np.zeros((0, n), np.int32))
            raw.append(np.zeros(0, np.int64))
            continue
        ok = sid[:m] == sid[n - 1 :]
        grams = np.stack([tok[k : k + m] for k in range(n)], axis=1)[ok]
        rows, _, counts = _unique_rows(grams, V)
        if n == 1:  # <s> is never predicted
            keep = rows[:, 0] != 0
            counts, rows = counts[keep], rows[keep]
        uniq.append(rows)
        raw.append(counts.astype(np.int64))
    # Adjusted counts: continuation counts for lower orders, except n-grams starting with <s>.
    adj = [np.zeros(0)] * (order + 1)
    adj[order] = raw[order]
    for n in range(order - 1, 0, -1):
        _, sfx_keys, n_left = _unique_rows(uniq[n + 1][:, 1:], V)
        pos, found = _lookup(sfx_keys, _keys(uniq[n], V))
        a = np.where(found, n_left[pos], raw[n])
        adj[n] = np.where(uniq[n][:, 0] == 0, raw[n], a)
    num_predicted = len(words) - 1  # every word type, </s> and <unk>; not <s>
    probs: list[np.ndarray] = [np.zeros(0)] * (order + 1)
    gammas: list[tuple[np.ndarray, np.ndarray]] = []  # per order n: (context keys, gamma)
    for n in range(1, order + 1):
        rows, a = uniq[n], adj[n]
        d = np.asarray(_discounts(a))
        if n == 1:
            ctx_id = np.zeros(len(rows), dtype=np.int64)
            ctx_keys = np.zeros(1, dtype=np.int64)
        else:
            new_ctx = np.ones(len(rows), dtype=bool)
            new_ctx[1:] = (rows[1:, :-1] != rows[:-1, :-1]).any(axis=1)
            ctx_id = np.cumsum(new_ctx) - 1
            ctx_keys = _keys(rows[new_ctx, :-1], V)
        tot = np.bincount(ctx_id, weights=a)
        nk = [np.bincount(ctx_id, weights=(np.minimum(a, 3) == k)) for k in (1, 2, 3)]
        gamma = (d[0] * nk[0] + d[1] * nk[1] + d[2] * nk[2]) / tot
        gammas.append((ctx_keys, gamma))
        u = (a - d[np.minimum(a, 3) - 1]) / tot[ctx_id]
        if n == 1:
            lower = np.full(len(rows), 1.0 / num_predicted)
        else:
            pos, found = _lookup(_keys(uniq[n - 1], V), _keys(rows[:, 1:], V))
            if not found.all():  # cannot happen for n-grams read from text
                raise AssertionError("an n-gram's suffix is missing from the lower order")
            lower = probs[n - 1][pos]
        probs[n] = u + gamma[ctx_id] * lower
    tables = []
    for n in range(1, order + 1):
        rows, p = uniq[n], probs[n]
        if n == 1:
            unk_share = gammas[0][1][0] / num_predicted
            is_unk = rows[:, 0] == 2
            if is_unk.any():
                pass  # <unk> occurred in the text: it already has its uniform share
            else:
                rows = np.concatenate([rows, np.array([[2]], np.int32)])
                p = np.concatenate([p, [unk_share]])
            rows = np.concatenate([rows, np.array([[0]], np.int32)])  # <s>: listed, never predicted
            p = np.concatenate([p, [1.0]])
        lp = np.log10(p)
        if n == 1:
            lp[-1] = LOG10_ZERO
        bo = np.full(len(rows), np.nan)
        if n < order:
            ctx_keys, gamma = gammas[n]
            pos, found = _lookup(ctx_keys, _keys(rows, V))
            bo[found] = np.log10(gamma[pos[found]])
        tables.append((rows, lp, bo))
    return words, tables


def _write_arpa_arrays(words: list[str], tables, out: str | Path) -> None:
    w = np.asarray(words, dtype=object)
    with atomic_open(out, "w") as f:
        f.write("\n\\data\\\n")
        for n, (rows, _, _) in enumerate(tables, 1):
            f.write(f"ngram {n}={len(rows)}\n")
        for n, (rows, lp, bo) in progress(enumerate(tables, 1), total=len(tables), desc="write ARPA", unit="order"):
            f.write(f"\n\\{n}-grams:\n")
            text = w[rows[:, 0]]
            for k in range(1, n):
                text = text + " " + w[rows[:, k]]
            has_bo = ~np.isnan(bo)
            for t, p, b, hb in zip(text.tolist(), lp.tolist(), bo.tolist(), has_bo.tolist()):
                f.write(f"{p:.7g}\t{t}\t{b:.7g}\n" if hb else f"{p:.7g}\t{t}\n")
        f.write("\n\\end\\\n")


def write_arpa(sentences: Iterable[Sequence[str]], order: int, out: str | Path) -> dict[int, int]:
    """Estimate (interpolated modified Kneser-Ney) and write ``out`` atomically; returns n-gram counts."""
    words, tables = _estimate_arrays(sentences, order)
    _write_arpa_arrays(words, tables, out)
    return {n: len(t[0]) for n, t in enumerate(tables, 1)}


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
        with open(text, "rb") as fin, atomic_open(out, "wb") as fout:
            subprocess.run(
                [lmplz, "-o", str(order), "--discount_fallback", "-S", "20%"], stdin=fin, stdout=fout, check=True
            )
        return "lmplz"
    write_arpa(read_sentences(text, units), order, out)
    return "ours"


def read_arpa_unigrams(path: str | Path) -> list[str]:
    """The words of the ``\\1-grams:`` section of an ARPA file (``.gz`` too), in file order, reading no further
    than that section (an official 4-gram ARPA is large). A KenLM binary or a file without the section is a
    DataError naming the file."""
    import gzip

    path = Path(path)
    if not path.is_file():
        raise DataError("ARPA file not found", path)
    opener = gzip.open if path.name.endswith(".gz") else open
    words: list[str] = []
    in_unigrams = False
    try:
        with opener(path, "rt", encoding="utf-8") as f:
            for lineno, line in enumerate(f, 1):
                line = line.strip()
                if line.startswith("\\"):
                    if in_unigrams:
                        break
                    in_unigrams = line == "\\1-grams:"
                    continue
                if in_unigrams and line:
                    parts = line.split("\t")
                    if len(parts) < 2:
                        raise DataError(f"malformed 1-gram line: {line[:80]!r}", path, lineno)
                    words.append(parts[1])
    except UnicodeDecodeError:
        raise DataError("not an ARPA text file (a KenLM binary?)", path) from None
    if not words:
        raise DataError("no \\1-grams: section (not an ARPA file?)", path)
    return words


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
        for lineno, line in enumerate(read_text(path, "text file").splitlines(), 1):
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
        self._vocab = set(self.vocab)

    def log10_prob(self, context: Sequence[str], word: str) -> float:
        """log10 p(word | context) with ARPA backoff (context truncated to order-1 words)."""
        ctx = tuple(context)[-(self.order - 1) :] if self.order > 1 else ()
        if word not in self._vocab:
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


def evaluate(lm: ArpaLM, sentences: Iterable[Sequence[str]]) -> dict:
    """Perplexity and out-of-vocabulary rate of ``lm`` on word sentences (e.g. test transcripts).

    ``oov_rate``: words not in the LM's vocabulary / words. ``ppl``: 10^(-log10 p / (words + sentences)),
    every word and each ``</s>`` counted, OOVs scored as ``<unk>`` (KenLM's "including OOVs");
    ``ppl_in_vocab``: the OOVs left out of both the sum and the count (SRILM's ``ppl``).
    """
    n_sent = n_words = n_oov = 0
    total = in_vocab = 0.0
    for words in sentences:
        ctx = [BOS]
        n_sent += 1
        for w in [*words, EOS]:
            lp = lm.log10_prob(ctx, w)
            total += lp
            if w != EOS:
                n_words += 1
                if w not in lm._vocab:
                    n_oov += 1
                    ctx.append(w)
                    continue
            in_vocab += lp
            ctx.append(w)
    if not n_sent:
        raise ValueError("no sentences to evaluate the LM on")
    return {"sentences": n_sent, "words": n_words, "oov": n_oov, "oov_rate": n_oov / max(1, n_words),
            "ppl": 10 ** (-total / (n_words + n_sent)),
            "ppl_in_vocab": 10 ** (-in_vocab / max(1, n_words - n_oov + n_sent))}
