"""Labelled subsets of a prepared split: the "10-minute" and "1-hour" fine-tuning sets of the recipes.

    subset_split("data/librispeech/train-clean-100.tsv", "data/en/train-10m.tsv", seconds=600, seed=1)

Copies a random (seeded) choice of rows, whole utterances, until ``seconds`` of audio are reached, keeping
the manifest order; every label file next to the source manifest (``.ltr``, ``.wrd``, ``.phn``, ...) and
its ``dict.*.txt`` files are carried along, line-aligned. Nested subsets (10 min inside 1 h) come from the
same seed: the shuffled order is fixed and each subset takes a prefix of it, like Libri-light's folds.

Also runnable: ``python -m speech_ssl.demo.manifests SRC.tsv DEST.tsv SECONDS [--seed N]``.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

import numpy as np

from speech_ssl.data.manifest import read_labels, read_manifest, write_labels, write_manifest
from speech_ssl.errors import DataError

SAMPLE_RATE = 16000
LABEL_EXTS = ("ltr", "wrd", "phn", "spm")


def subset_split(src: str | Path, dest: str | Path, seconds: float, seed: int = 1) -> dict:
    """Write ``dest`` (.tsv + label files + dictionaries) holding ``seconds`` of ``src``; returns a summary.

    Raises DataError (naming ``src``) when the source holds less audio than asked for.
    """
    src, dest = Path(src), Path(dest)
    m = read_manifest(src)
    sizes = np.asarray(m.sizes, dtype=np.int64)
    total = float(sizes.sum()) / SAMPLE_RATE
    if total + 1e-6 < seconds:
        raise DataError(f"holds {total:.1f} s of audio, fewer than the {seconds:.1f} s asked for", src)
    order = np.random.default_rng(seed).permutation(len(sizes))
    cum = np.cumsum(sizes[order]) / SAMPLE_RATE
    n = int(np.searchsorted(cum, seconds - 1e-6) + 1)
    keep = np.sort(order[: min(n, len(order))])
    dest.parent.mkdir(parents=True, exist_ok=True)
    labels = {}
    for ext in LABEL_EXTS:
        lp = src.with_suffix("." + ext)
        if lp.is_file():
            lines = read_labels(lp, len(m), str(src))
            labels[ext] = [lines[i] for i in keep]
    for ext, lines in labels.items():
        write_labels(dest.with_suffix("." + ext), lines)
    for d in src.parent.glob("dict.*.txt"):
        target = dest.parent / d.name
        if not target.exists() or target.resolve() != d.resolve():
            shutil.copyfile(d, target)
    write_manifest(dest, m.root, [m.entries[i] for i in keep])
    return {"rows": int(len(keep)), "seconds": float(sizes[keep].sum()) / SAMPLE_RATE, "labels": sorted(labels)}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m speech_ssl.demo.manifests", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("src")
    p.add_argument("dest")
    p.add_argument("seconds", type=float)
    p.add_argument("--seed", type=int, default=1)
    a = p.parse_args(argv)
    try:
        s = subset_split(a.src, a.dest, a.seconds, a.seed)
    except DataError as e:
        print(f"subset: {e}", file=sys.stderr)
        return 1
    print(f"{a.dest}: {s['rows']} utterances, {s['seconds']:.1f} s ({', '.join(s['labels'])})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
