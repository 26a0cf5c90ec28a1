"""speech-ssl manifest subset | split | dict: derived sets of a prepared split (NAME.tsv with its label files
NAME.ltr, .wrd, .phn, .spm next to it; the label files travel with their rows).

    speech-ssl manifest subset data/librispeech/train-clean-100.tsv data/en/train-10m.tsv 600 --seed 1
        a seeded random choice of whole utterances holding 600 s of audio (exit 1 when the source holds
        less); the same seed gives nested subsets (10 min inside 1 h)
    speech-ssl manifest split data/tr/train.tsv --rest data/tr/train-ft.tsv --held data/tr/valid.tsv --every 10
        hold out every 10th conversation (BABEL file names: both sides of a call together; with fewer than
        10 conversations, or --by utterance, every 10th utterance)
    speech-ssl manifest dict --symbols "| E T A O" --out data/dict.ltr.txt data/a.ltr data/b.ltr
        a fairseq dictionary with the symbols in the given order and their counts in the label files
"""

from __future__ import annotations

import argparse


def add_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "manifest",
        help="subsets, held-out splits and fixed-order dictionaries of prepared manifests",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = p.add_subparsers(dest="manifest_command", metavar="ACTION")
    sub.required = True
    s = sub.add_parser("subset", help="a seeded random subset holding SECONDS of audio")
    s.add_argument("src", help="source manifest (.tsv; label files and dict.*.txt next to it come along)")
    s.add_argument("dest", help="output manifest (.tsv)")
    s.add_argument("seconds", type=float, help="audio to keep, in seconds")
    s.add_argument("--seed", type=int, default=1)
    s.set_defaults(func=run_subset)
    h = sub.add_parser("split", help="hold out every Nth conversation (or utterance) as a validation set")
    h.add_argument("src", help="source manifest (.tsv)")
    h.add_argument("--rest", required=True, help="output manifest of the rows kept for training")
    h.add_argument("--held", required=True, help="output manifest of the held-out rows (written last)")
    h.add_argument("--every", type=int, default=10, help="hold out every Nth group (default 10)")
    h.add_argument("--by", choices=["conversation", "utterance"], default="conversation",
                   help="groups: BABEL conversations (default) or single utterances")
    h.set_defaults(func=run_split)
    d = sub.add_parser("dict", help="a dictionary in a fixed symbol order with the counts of label files")
    d.add_argument("labels", nargs="+", help="label files (.ltr, .phn, ...) to count")
    d.add_argument("--symbols", required=True, help="the symbols in order, separated by spaces")
    d.add_argument("--out", required=True, help="output dictionary (dict.*.txt)")
    d.set_defaults(func=run_dict)


def _fail(action: str, e: Exception) -> int:
    import sys

    print(f"speech-ssl manifest {action}: {e}", file=sys.stderr)
    return 1


def run_subset(args: argparse.Namespace) -> int:
    from speech_ssl.data.subsets import subset_split
    from speech_ssl.errors import DataError

    try:
        s = subset_split(args.src, args.dest, args.seconds, args.seed)
    except (DataError, ValueError) as e:
        return _fail("subset", e)
    print(f"{args.dest}: {s['rows']} utterances, {s['seconds']:.1f} s ({', '.join(s['labels'])})")
    return 0


def run_split(args: argparse.Namespace) -> int:
    from speech_ssl.data.subsets import hold_out
    from speech_ssl.errors import DataError

    try:
        s = hold_out(args.src, args.rest, args.held, every=args.every, by=args.by)
    except (DataError, ValueError) as e:
        return _fail("split", e)
    print(f"{args.src}: held out {s['how']}: {s['held']} utterances -> {args.held}; {s['rest']} -> {args.rest}")
    return 0


def run_dict(args: argparse.Namespace) -> int:
    from speech_ssl.data.subsets import ordered_dictionary
    from speech_ssl.errors import DataError

    try:
        n = ordered_dictionary(args.labels, args.symbols.split(), args.out)
    except (DataError, ValueError) as e:
        return _fail("dict", e)
    print(f"{args.out}: {len(n)} symbols, {sum(n.values())} tokens in {len(args.labels)} label files")
    return 0
