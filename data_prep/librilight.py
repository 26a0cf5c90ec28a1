"""Libri-light limited-supervision sets (``librispeech_finetuning``) -> fairseq manifests and labels.

    speech-ssl prepare librilight --root /data/librispeech_finetuning --out data/librilight

Input layout (as published)::

    librispeech_finetuning/1h/{0..5}/{clean,other}/<speaker>/<chapter>/*.flac + *.trans.txt
    librispeech_finetuning/9h/{clean,other}/<speaker>/<chapter>/...

Output in ``--out`` (clean and other together, rows sorted by id within each fold, folds in order):
``train-10m`` = fold ``1h/0``; ``train-1h`` = folds ``1h/0``..``1h/5``; ``train-10h`` = the six folds +
``9h``; each with ``.tsv`` (root = ``librispeech_finetuning``), ``.wrd``, ``.ltr``; and ``dict.ltr.txt``
(letters of train-10h, or of the largest split present). These are the splits of the wav2vec 2.0 paper;
evaluate on LibriSpeech dev/test (``speech-ssl prepare librispeech``). ``train-10h`` is skipped when
``9h`` is absent; a missing 1h fold is an error.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from data_prep.common import (
    BadInputLog,
    add_common_arguments,
    add_verify_argument,
    letters_dictionary,
    prepare_tree_splits,
    run_sentencepiece,
    summarize,
)
from speech_ssl.errors import DataError

FOLDS = [f"1h/{i}" for i in range(6)]
SPLITS = {"train-10m": FOLDS[:1], "train-1h": FOLDS, "train-10h": FOLDS + ["9h"]}
LABELS = ("wrd", "ltr")


def prepare(
    root: Path, out: Path, workers: int = 1, skip_bad: bool = False, force: bool = False, verify: bool = False
) -> str:
    root, out = Path(root).resolve(), Path(out)
    if not root.is_dir():
        raise DataError("librispeech_finetuning root not found", root)
    missing = [f for f in FOLDS if not (root / f).is_dir()]
    if missing:
        raise DataError(f"Libri-light fold(s) missing: {', '.join(missing)} (expected 1h/0..1h/5 and 9h)", root)
    splits = {k: v for k, v in SPLITS.items() if all((root / u).is_dir() for u in v)}
    out.mkdir(parents=True, exist_ok=True)
    log = BadInputLog(skip_bad, out / "librilight.bad.tsv")
    info = prepare_tree_splits("librilight", splits, root, out, workers, log, force, verify, LABELS)
    largest = list(splits)[-1]
    letters_dictionary(out, [out / f"{largest}.ltr"])
    return summarize("librilight", info, log, out)


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_common_arguments(p)
    add_verify_argument(p)


def run(args: argparse.Namespace) -> int:
    print(prepare(args.root, args.out, args.workers, args.skip_bad, args.force, args.verify_audio or args.skip_bad))
    run_sentencepiece(args, "librilight", lambda splits: splits[-1:])  # the largest set (10h when present)
    return 0
