"""Subsets of a prepared split, a held-out validation split, and a dictionary in a fixed symbol order.

    subset_split("data/librispeech/train-clean-100.tsv", "data/en/train-10m.tsv", seconds=600, seed=1)
    hold_out("data/tr/train.tsv", "data/tr/train-ft.tsv", "data/tr/valid.tsv", every=10, by="conversation")
    ordered_dictionary(["data/librispeech/train-clean-100.ltr"], "| E T A ...".split(), "data/dict.ltr.txt")

A prepared split is a manifest ``NAME.tsv`` with line-aligned label files next to it (``NAME.ltr``,
``NAME.wrd``, ``NAME.phn``, ``NAME.spm``); every function here carries those label files along with the rows
it picks, keeps the manifest order, and writes the manifest last (its presence marks the step as done).
The recipes call these through ``speech-ssl manifest subset | split | dict``.
"""

from __future__ import annotations

import re
import shutil
from collections import Counter
from pathlib import Path
from typing import Sequence

import numpy as np

from speech_ssl.data.manifest import (
    Manifest,
    atomic_write_text,
    read_labels,
    read_manifest,
    write_labels,
    write_manifest,
)
from speech_ssl.errors import DataError

SAMPLE_RATE = 16000
LABEL_EXTS = ("ltr", "wrd", "phn", "spm")


def _labels_of(src: Path, m: Manifest) -> dict[str, list[str]]:
    """``{ext: lines}`` of every label file next to the manifest ``src`` (checked against its row count)."""
    out = {}
    for ext in LABEL_EXTS:
        lp = src.with_suffix("." + ext)
        if lp.is_file():
            out[ext] = read_labels(lp, len(m), str(src))
    return out


def _write_rows(dest: Path, m: Manifest, labels: dict[str, list[str]], rows: Sequence[int]) -> None:
    """``dest`` (.tsv) and its label files holding ``rows`` of ``m``; the manifest is written last."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    for ext, lines in labels.items():
        write_labels(dest.with_suffix("." + ext), [lines[i] for i in rows])
    write_manifest(dest, m.root, [m.entries[i] for i in rows])


def _check_outputs(src: Path, **outs: Path) -> None:
    """Refuse an output that is the source split or another output (same stem: the label files go with it),
    which would overwrite rows that cannot be got back."""
    def key(p: Path) -> Path:
        return p.parent.resolve() / p.stem

    seen = {key(src): "the source"}
    for name, out in outs.items():
        if out.suffix != ".tsv":
            raise ValueError(f"{name} {out}: expected a manifest name ending in .tsv")
        if key(out) in seen:
            raise ValueError(f"{name} {out} is {seen[key(out)]} (its .tsv and label files would be overwritten): "
                             "write to another name")
        seen[key(out)] = f"also --{name}" if len(outs) > 1 else name


def subset_split(src: str | Path, dest: str | Path, seconds: float, seed: int = 1) -> dict:
    """Write ``dest`` (.tsv + label files + dictionaries) holding ``seconds`` of ``src``; returns a summary
    ``{"rows", "seconds", "labels"}``.

    A random (seeded) choice of whole utterances until ``seconds`` of audio are reached, in manifest order;
    the ``dict.*.txt`` files next to ``src`` are copied next to ``dest``. Nested subsets (10 min inside 1 h)
    come from the same seed: the shuffled order is fixed and each subset takes a prefix of it, like
    Libri-light's folds. Raises DataError (naming ``src``) when the source holds less audio than asked for.
    """
    src, dest = Path(src), Path(dest)
    if not seconds > 0:
        raise ValueError(f"seconds must be > 0, got {seconds:g}")
    _check_outputs(src, dest=dest)
    m = read_manifest(src)
    sizes = np.asarray(m.sizes, dtype=np.int64)
    total = float(sizes.sum()) / SAMPLE_RATE
    if total + 1e-6 < seconds:
        raise DataError(f"holds {total:.1f} s of audio, fewer than the {seconds:.1f} s asked for", src)
    order = np.random.default_rng(seed).permutation(len(sizes))
    cum = np.cumsum(sizes[order]) / SAMPLE_RATE
    n = int(np.searchsorted(cum, seconds - 1e-6) + 1)
    keep = [int(i) for i in np.sort(order[: min(n, len(order))])]
    labels = _labels_of(src, m)
    dest.parent.mkdir(parents=True, exist_ok=True)
    for d in src.parent.glob("dict.*.txt"):
        target = dest.parent / d.name
        if not target.exists() or target.resolve() != d.resolve():
            shutil.copyfile(d, target)
    _write_rows(dest, m, labels, keep)
    return {"rows": len(keep), "seconds": float(sizes[keep].sum()) / SAMPLE_RATE, "labels": sorted(labels)}


def conversation_of(path: str, segmented: bool) -> str:
    """The BABEL conversation a manifest row belongs to, from the file name: both sides of a call
    (``..._inLine`` / ``..._outLine``) together; cut audio (not ``segmented``) is named
    ``<conversation side>_<line>``."""
    stem = Path(path).stem
    if not segmented:
        stem = re.sub(r"_\d+$", "", stem)
    return re.sub(r"_(inLine|outLine)$", "", stem)


def hold_out(src: str | Path, rest: str | Path, held: str | Path, every: int = 10,
             by: str = "conversation") -> dict:
    """Split ``src`` into ``held`` (every ``every``-th group, in sorted group order) and ``rest`` (the other
    rows), each a manifest with its label files; returns ``{"held", "rest", "how"}`` (row counts and a
    description).

    ``by="conversation"``: groups are BABEL conversations (:func:`conversation_of`); with fewer than
    ``every`` conversations, and with ``by="utterance"``, every ``every``-th row is held out (at least the
    last one). ``held`` is written last.
    """
    src, rest, held = Path(src), Path(rest), Path(held)
    if every < 2:
        raise ValueError(f"every must be >= 2, got {every}")
    if by not in ("conversation", "utterance"):
        raise ValueError(f"by must be 'conversation' or 'utterance', got {by!r}")
    _check_outputs(src, rest=rest, held=held)
    m = read_manifest(src)
    if not m.entries:
        raise DataError("no rows to split", src)
    labels = _labels_of(src, m)
    segmented = m.entries[0].start is not None
    calls = sorted({conversation_of(e.path, segmented) for e in m.entries}) if by == "conversation" else []
    if by == "conversation" and len(calls) >= every:
        chosen = set(calls[every - 1::every])
        valid = [i for i, e in enumerate(m.entries) if conversation_of(e.path, segmented) in chosen]
        how = f"{len(chosen)} of {len(calls)} conversations"
    else:
        valid = list(range(every - 1, len(m), every)) or [len(m) - 1]
        how = f"every {every}th utterance" + (f" ({len(calls)} conversations)" if by == "conversation" else "")
    held_set = set(valid)
    others = [i for i in range(len(m)) if i not in held_set]
    _write_rows(rest, m, labels, others)
    _write_rows(held, m, labels, valid)
    return {"held": len(valid), "rest": len(others), "how": how}


def ordered_dictionary(label_files: Sequence[str | Path], symbols: Sequence[str],
                       out: str | Path) -> dict[str, int]:
    """Write ``out`` (fairseq ``SYMBOL COUNT`` lines) with ``symbols`` in the given order and their counts in
    ``label_files`` (0 for a symbol never seen), so that every model trained with it shares one output
    layout. A symbol of the labels that is not in ``symbols`` is an error naming the files. Returns the
    counts."""
    if len(set(symbols)) != len(symbols):
        raise ValueError("symbols: a symbol is listed twice")
    n: Counter[str] = Counter()
    for f in label_files:
        p = Path(f)
        if not p.is_file():
            raise DataError("label file not found", p)
        n.update(p.read_text(encoding="utf-8").split())
    extra = sorted(set(n) - set(symbols))
    if extra:
        raise DataError(f"symbols outside the given order in the labels: {extra}",
                        ", ".join(str(f) for f in label_files))
    atomic_write_text(out, "".join(f"{s} {n[s]}\n" for s in symbols))
    return {s: n[s] for s in symbols}
