"""Error rates (WER / CER / PER) through jiwer, with S/D/I counts and breakdowns.

* ``unit="word"``: WER over whitespace-separated words.
* ``unit="phone"``: PER; phones are whitespace-separated symbols, so this is the same alignment as
  words (multi-character phones such as ``aɪ`` stay one unit).
* ``unit="char"``: CER over characters, spaces included (jiwer's ``cer``). Note: fairseq's logged
  "uer" counts letters with ``|`` as the word boundary; the two agree when ``|`` is mapped to a space.

Texts are compared as given after stripping and collapsing whitespace; ``normalize`` upper-cases and
removes punctuation other than apostrophes (use it for both sides or neither).

    result = score(ref_texts, hyp_texts, unit="word", ids=ids)
    print(result.summary_line())   # "WER 12.50 % [ 5 / 40, 2 sub, 1 del, 2 ins ] (4 utterances)"
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
from typing import Callable, Literal

import jiwer

Unit = Literal["word", "char", "phone"]
_NAMES = {"word": "WER", "char": "CER", "phone": "PER"}


@dataclass
class Counts:
    """Edit counts against a reference of ``ref_len`` units."""

    sub: int = 0
    dele: int = 0
    ins: int = 0
    hits: int = 0

    @property
    def ref_len(self) -> int:
        return self.sub + self.dele + self.hits

    @property
    def errors(self) -> int:
        return self.sub + self.dele + self.ins

    @property
    def rate(self) -> float:
        """Errors / reference length (inf when the reference is empty but the hypothesis is not)."""
        if self.ref_len == 0:
            return 0.0 if self.errors == 0 else float("inf")
        return self.errors / self.ref_len

    def add(self, other: "Counts") -> None:
        self.sub += other.sub
        self.dele += other.dele
        self.ins += other.ins
        self.hits += other.hits

    def as_dict(self) -> dict:
        return {
            "error_rate": self.rate if self.rate != float("inf") else None,
            "errors": self.errors,
            "ref_len": self.ref_len,
            "sub": self.sub,
            "del": self.dele,
            "ins": self.ins,
            "hits": self.hits,
        }


@dataclass
class UttScore:
    id: str
    ref: str
    hyp: str
    counts: Counts


@dataclass
class ScoreResult:
    unit: str
    total: Counts
    utterances: list[UttScore]
    speakers: dict[str, Counts] = field(default_factory=dict)
    confusions: list[tuple[str, str, int]] = field(default_factory=list)  # (ref, hyp, count); "" = none

    @property
    def name(self) -> str:
        return _NAMES[self.unit]

    @property
    def error_rate(self) -> float:
        return self.total.rate

    def summary_line(self) -> str:
        t = self.total
        return (
            f"{self.name} {100 * t.rate:.2f} % [ {t.errors} / {t.ref_len}, {t.sub} sub, {t.dele} del, "
            f"{t.ins} ins ] ({len(self.utterances)} utterances)"
        )

    def as_dict(self) -> dict:
        return {
            "metric": self.name,
            "unit": self.unit,
            **self.total.as_dict(),
            "num_utterances": len(self.utterances),
            "speakers": {k: v.as_dict() for k, v in sorted(self.speakers.items())},
            "confusions": [{"ref": r, "hyp": h, "count": c} for r, h, c in self.confusions],
            "utterances": [
                {"id": u.id, "ref": u.ref, "hyp": u.hyp, **u.counts.as_dict()} for u in self.utterances
            ],
        }


_PUNCT = re.compile(r"[^\w\s'’]", flags=re.UNICODE)


def normalize_text(text: str) -> str:
    """Upper-case, drop punctuation except apostrophes, collapse whitespace."""
    return " ".join(_PUNCT.sub(" ", text.upper()).split())


def default_speaker(utt_id: str) -> str:
    """Speaker of an utterance id: the part before the first ``-`` (LibriSpeech ``1089-134686-0000``
    -> ``1089``), else before the first ``_``, else the id itself."""
    for sep in ("-", "_"):
        if sep in utt_id:
            return utt_id.split(sep, 1)[0]
    return utt_id


def score(
    refs: list[str],
    hyps: list[str],
    unit: Unit = "word",
    ids: list[str] | None = None,
    speaker_of: Callable[[str], str] | None = None,
    normalize: bool = False,
    top_confusions: int = 10,
) -> ScoreResult:
    """Score line-aligned ``refs`` against ``hyps``.

    The totals are jiwer's (one ``process_words``/``process_characters`` call over all pairs);
    per-utterance counts are read from jiwer's alignment chunks, so they sum to the totals.
    ``speaker_of`` maps an id to a speaker for the per-speaker breakdown (skipped when None).
    """
    if unit not in _NAMES:
        raise ValueError(f"unit must be one of {sorted(_NAMES)}, got {unit!r}")
    if len(refs) != len(hyps):
        raise ValueError(f"{len(refs)} references but {len(hyps)} hypotheses")
    ids = ids if ids is not None else [str(i + 1) for i in range(len(refs))]
    clean = normalize_text if normalize else (lambda s: " ".join(s.split()))
    refs = [clean(r) for r in refs]
    hyps = [clean(h) for h in hyps]
    if not refs:
        return ScoreResult(unit, Counts(), [])
    if unit == "char":
        out = jiwer.process_characters(refs, hyps)
    else:
        out = jiwer.process_words(refs, hyps)
    total = Counts(out.substitutions, out.deletions, out.insertions, out.hits)
    confusions: Counter = Counter()
    utts = []
    for uid, r, h, chunks, rtok, htok in zip(ids, refs, hyps, out.alignments, out.references, out.hypotheses):
        c = Counts()
        for ch in chunks:
            nr = ch.ref_end_idx - ch.ref_start_idx
            nh = ch.hyp_end_idx - ch.hyp_start_idx
            if ch.type == "equal":
                c.hits += nr
            elif ch.type == "substitute":
                c.sub += nr
                for a, b in zip(rtok[ch.ref_start_idx : ch.ref_end_idx], htok[ch.hyp_start_idx : ch.hyp_end_idx]):
                    confusions[(a, b)] += 1
            elif ch.type == "delete":
                c.dele += nr
                for a in rtok[ch.ref_start_idx : ch.ref_end_idx]:
                    confusions[(a, "")] += 1
            elif ch.type == "insert":
                c.ins += nh
                for b in htok[ch.hyp_start_idx : ch.hyp_end_idx]:
                    confusions[("", b)] += 1
        utts.append(UttScore(uid, r, h, c))
    speakers: dict[str, Counts] = {}
    if speaker_of is not None:
        for u in utts:
            speakers.setdefault(speaker_of(u.id), Counts()).add(u.counts)
    top = sorted(confusions.items(), key=lambda kv: (-kv[1], kv[0]))[:top_confusions]
    return ScoreResult(unit, total, utts, speakers, [(a, b, n) for (a, b), n in top])


def format_report(result: ScoreResult, max_utts: int = 10, max_speakers: int = 20) -> str:
    """Human-readable report; its last line is :meth:`ScoreResult.summary_line` (the headline)."""
    lines = []
    name = result.name
    worst = sorted(result.utterances, key=lambda u: (-u.counts.errors, u.id))[:max_utts]
    worst = [u for u in worst if u.counts.errors > 0]
    if worst:
        lines.append(f"Utterances with most errors (of {len(result.utterances)}):")
        for u in worst:
            c = u.counts
            lines.append(
                f"  {u.id}: {c.errors} err / {c.ref_len} (S {c.sub} D {c.dele} I {c.ins})"
                f"\n    REF: {u.ref}\n    HYP: {u.hyp}"
            )
    if len(result.speakers) > 1:
        lines.append(f"Per speaker ({len(result.speakers)}), worst first:")
        spk = sorted(result.speakers.items(), key=lambda kv: (-kv[1].rate, kv[0]))[:max_speakers]
        for s, c in spk:
            lines.append(
                f"  {s:>12s}  {name} {100 * c.rate:6.2f} %  [ {c.errors} / {c.ref_len}, "
                f"S {c.sub} D {c.dele} I {c.ins} ]"
            )
    if result.confusions:
        lines.append("Most frequent errors (ref -> hyp, * = nothing):")
        def show(x: str) -> str:
            return "*" if x == "" else ("<space>" if x == " " else x)

        for a, b, n in result.confusions:
            lines.append(f"  {n:5d}  {show(a)} -> {show(b)}")
    lines.append(result.summary_line())
    return "\n".join(lines)
