"""LibriSpeech -> fairseq manifests and labels.

    speech-ssl prepare librispeech --root /data/LibriSpeech --out data/librispeech

Input: the published layout ``LibriSpeech/<subset>/<speaker>/<chapter>/<speaker>-<chapter>-<utt>.flac``
with ``<speaker>-<chapter>.trans.txt`` (``ID TEXT`` lines). Every subset directory present whose name
starts with ``train-``, ``dev-`` or ``test-`` is prepared (train-clean-100/360, train-other-500,
dev/test-clean/other, also the mini sets).

Output in ``--out``: ``<subset>.tsv`` (root = the LibriSpeech directory, rows ``<subset>/.../<id>.flac\t
num_samples``, sorted by id), ``<subset>.wrd`` (the transcript as published), ``<subset>.ltr`` (fairseq
letters), ``dict.ltr.txt`` (letters of the train subsets by count; of all subsets when there is no train
subset), and ``train-960.*`` (rows of the three train subsets, in that order) when all three exist.
fairseq's ``wav2vec_manifest.py`` lists files in directory order and splits off a random valid set; ours
is sorted by id and uses the official subsets.
"""

from __future__ import annotations

import argparse
import re
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
from speech_ssl.files import atomic_write_text

TRAIN_960 = ("train-clean-100", "train-clean-360", "train-other-500")
SUBSET_RE = re.compile(r"^(train|dev|test)-[a-z0-9-]+$")
LABELS = ("wrd", "ltr")


def concat_splits(out: Path, name: str, parts: list[str], kinds=("tsv",) + LABELS) -> None:
    """Concatenate prepared splits that share a root (manifest rows and label lines, in order)."""
    for kind in kinds:
        chunks = []
        for i, p in enumerate(parts):
            lines = (out / f"{p}.{kind}").read_text(encoding="utf-8").splitlines()
            if kind == "tsv":
                if i > 0 and lines[0] != chunks[0]:
                    raise DataError(f"cannot combine into {name}: different manifest roots", out / f"{p}.tsv", 1)
                lines = lines if i == 0 else lines[1:]
            chunks.extend(lines)
        atomic_write_text(out / f"{name}.{kind}", "".join(ln + "\n" for ln in chunks))


def prepare(
    root: Path, out: Path, workers: int = 1, skip_bad: bool = False, force: bool = False, verify: bool = False
) -> str:
    root, out = Path(root).resolve(), Path(out)
    if not root.is_dir():
        raise DataError("LibriSpeech root not found", root)
    subsets = sorted(p.name for p in root.iterdir() if p.is_dir() and SUBSET_RE.match(p.name))
    if not subsets:
        raise DataError("no LibriSpeech subsets (train-*/dev-*/test-*) found", root)
    out.mkdir(parents=True, exist_ok=True)
    log = BadInputLog(skip_bad, out / "librispeech.bad.tsv")
    info = prepare_tree_splits("librispeech", {s: [s] for s in subsets}, root, out, workers, log, force, verify)
    if all(s in subsets for s in TRAIN_960):
        concat_splits(out, "train-960", list(TRAIN_960))
        info["train-960"] = {
            "utterances": sum(info[s]["utterances"] for s in TRAIN_960),
            "hours": round(sum(info[s]["hours"] for s in TRAIN_960), 4),
        }
    train = [s for s in subsets if s.startswith("train-")] or subsets
    letters_dictionary(out, [out / f"{s}.ltr" for s in train])
    return summarize("librispeech", info, log, out)


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_common_arguments(p)
    add_verify_argument(p)


def run(args: argparse.Namespace) -> int:
    print(prepare(args.root, args.out, args.workers, args.skip_bad, args.force, args.verify_audio or args.skip_bad))
    run_sentencepiece(args, "librispeech", lambda splits: ["train-960"] if "train-960" in splits else
                      [s for s in splits if s.startswith("train-")] or splits)
    return 0
