"""``speech-ssl score --ref REF --hyp HYP [--unit word|char|phone] [--json OUT]``.

REF and HYP are either plain text files aligned line by line, or ``id<TAB>text`` files (matched by
id; every reference id must have a hypothesis). The last printed line is the headline number.
"""

from __future__ import annotations

import argparse


def add_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "score",
        help="WER/CER/PER with S/D/I counts, per-utterance/per-speaker breakdowns, confusions",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--ref", required=True, help="reference transcripts (plain lines or id<TAB>text)")
    p.add_argument("--hyp", required=True, help="hypotheses (same format as --ref)")
    p.add_argument("--unit", choices=["word", "char", "phone"], default="word")
    p.add_argument("--json", metavar="OUT", help="write the full breakdown as JSON")
    p.add_argument("--normalize", action="store_true", help="upper-case and strip punctuation on both sides")
    p.add_argument(
        "--speaker-map",
        metavar="FILE",
        help="id<TAB>speaker lines; default: speaker = id up to the first '-' (or '_')",
    )
    p.add_argument("--show", type=_count, default=10, help="how many worst utterances/confusions to print (>= 0)")
    p.set_defaults(func=run)


def _count(text: str) -> int:
    try:
        n = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if n < 0:
        raise argparse.ArgumentTypeError(f"expected a number >= 0, got {n}")
    return n


def run(args: argparse.Namespace) -> int:
    import json
    import sys

    from speech_ssl.files import check_outputs

    check_outputs({"--json": args.json}, {"--ref": args.ref, "--hyp": args.hyp, "--speaker-map": args.speaker_map})

    from speech_ssl.decode.io import read_transcripts
    from speech_ssl.decode.score import default_speaker, format_report, score
    from speech_ssl.errors import DataError
    from speech_ssl.files import atomic_write_text

    try:
        rids, refs, r_has = read_transcripts(args.ref)
        hids, hyps, h_has = read_transcripts(args.hyp)
        if r_has != h_has:
            which, other = (args.ref, args.hyp) if not r_has else (args.hyp, args.ref)
            raise DataError(f"plain text lines, but {other} has id<TAB>text lines: use one format", which)
        if r_has:
            hmap = dict(zip(hids, hyps))
            missing = [i for i in rids if i not in hmap]
            if missing:
                raise DataError(
                    f"{len(missing)} reference ids have no hypothesis (first: {missing[0]!r})", args.hyp
                )
            extra = set(hids) - set(rids)
            if extra:
                raise DataError(
                    f"{len(extra)} hypothesis ids are not in the reference (e.g. {sorted(extra)[0]!r})",
                    args.hyp,
                )
            hyps = [hmap[i] for i in rids]
        elif len(refs) != len(hyps):
            raise DataError(f"{len(hyps)} lines but the reference {args.ref} has {len(refs)}", args.hyp)
        if not refs:
            raise DataError("no utterances: nothing to score", args.ref)
        speaker_of = None
        if args.speaker_map:
            sids, spks, ok = read_transcripts(args.speaker_map, "speaker map")
            if not ok:
                raise DataError("expected id<TAB>speaker lines", args.speaker_map)
            smap = dict(zip(sids, spks))
            unknown = [i for i in rids if i not in smap]
            if unknown:
                raise DataError(f"no speaker for id {unknown[0]!r}", args.speaker_map)
            speaker_of = smap.__getitem__
        elif r_has:
            speaker_of = default_speaker
    except DataError as e:
        print(f"speech-ssl score: {e}", file=sys.stderr)
        return 2
    result = score(refs, hyps, unit=args.unit, ids=rids, speaker_of=speaker_of, normalize=args.normalize,
                   top_confusions=args.show)
    if result.total.ref_len == 0:
        print(f"speech-ssl score: {args.ref}: every reference is empty ({len(refs)} utterances), so the "
              f"{result.name} is undefined; the hypotheses hold {result.total.ins} {args.unit}s", file=sys.stderr)
        return 2
    if args.json:
        atomic_write_text(args.json, json.dumps(result.as_dict(), indent=1, ensure_ascii=False) + "\n")
    print(format_report(result, max_utts=args.show))
    return 0
