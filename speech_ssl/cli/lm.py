"""speech-ssl lm build | lexicon | eval: n-gram language models and lexicons for beam-search decoding.

    speech-ssl lm build --text T --order N --out lm.arpa [--units word|letter] [--lexicon-out L]
    speech-ssl lm lexicon (--text T | --arpa lm.arpa) --out L [--dict dict.ltr.txt]
    speech-ssl lm eval --lm lm.arpa --text test.wrd [--upper] [--json OUT]

lm build uses KenLM's lmplz when it is on PATH (word units), otherwise our own interpolated modified
Kneser-Ney ARPA writer, which keeps all n-grams in memory and is meant for small corpora (see
speech_ssl/decode/lm.py). --units letter builds a letter LM (| word boundaries) for lexicon-free beam
search; --lexicon-out writes a letter lexicon (WORD W O R D |) of the text's words for
lexicon-constrained search.

lm lexicon writes such a letter lexicon for an existing LM: of the words of a text (--text) or of the
unigrams of an ARPA file (--arpa, .gz too), keeping only the words spelled with the symbols of --dict.

lm eval prints an LM's perplexity and out-of-vocabulary rate on a text (e.g. the test transcripts, which
an honest LM never saw): the numbers to report next to a WER with that LM.
"""

from __future__ import annotations

import argparse


def add_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "lm",
        help="build n-gram language models (ARPA) for beam-search decoding",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = p.add_subparsers(dest="lm_command", metavar="ACTION")
    sub.required = True
    b = sub.add_parser("build", help="estimate an ARPA n-gram model from text (one sentence per line)")
    b.add_argument("--text", required=True, help="training text, one sentence per line")
    b.add_argument("--order", type=int, default=4, help="n-gram order (>= 2; default 4)")
    b.add_argument("--out", required=True, help="output ARPA file")
    b.add_argument("--units", choices=["word", "letter"], default="word")
    b.add_argument(
        "--engine",
        choices=["auto", "lmplz", "ours"],
        default="auto",
        help="auto: lmplz when on PATH (word units), else ours",
    )
    b.add_argument("--lexicon-out", metavar="FILE", help="also write a lexicon of the text's words "
                   "(letters: WORD W O R D |; with --spm-model: the word's sentencepiece pieces)")
    b.add_argument("--spm-model", metavar="MODEL", help="sentencepiece model for --lexicon-out")
    b.add_argument("--upper", action="store_true", help="upper-case the text first (LibriSpeech letters)")
    b.set_defaults(func=run)
    x = sub.add_parser("lexicon",
                       help="a letter lexicon (WORD W O R D |) of a text's words or an ARPA's unigrams")
    src = x.add_mutually_exclusive_group(required=True)
    src.add_argument("--text", help="text whose words (whitespace-separated) are listed")
    src.add_argument("--arpa", help="ARPA file (.gz too) whose unigrams are listed")
    x.add_argument("--out", required=True, help="output lexicon")
    x.add_argument("--dict", metavar="DICT", help="keep only words spelled with this dictionary's symbols "
                   "(fairseq dict.*.txt)")
    x.set_defaults(func=run_lexicon)
    e = sub.add_parser("eval", help="perplexity and OOV rate of an ARPA LM on a text (one sentence per line)")
    e.add_argument("--lm", required=True, help="ARPA file")
    e.add_argument("--text", required=True, help="text, one sentence per line (e.g. test transcripts)")
    e.add_argument("--upper", action="store_true", help="upper-case the text first (LibriSpeech letters)")
    e.add_argument("--json", metavar="OUT", help="also write the numbers as JSON")
    e.set_defaults(func=run_eval)


def run(args: argparse.Namespace) -> int:
    from speech_ssl.files import check_outputs

    check_outputs({"--out": args.out, "--lexicon-out": args.lexicon_out}, {"--text": args.text, "--spm-model": args.spm_model})
    import sys
    import tempfile
    import time
    from pathlib import Path

    from speech_ssl.decode.ctc import write_letter_lexicon, write_spm_lexicon
    from speech_ssl.decode.lm import build_lm
    from speech_ssl.errors import DataError

    text = Path(args.text)
    tmpdir = None
    try:
        if args.upper:
            if not text.is_file():
                raise DataError("LM training text not found", text)
            tmpdir = tempfile.TemporaryDirectory()
            up = Path(tmpdir.name) / "text.txt"
            up.write_text(text.read_text(encoding="utf-8").upper(), encoding="utf-8")
            text = up
        t0 = time.time()
        use = {"auto": None, "lmplz": True, "ours": False}[args.engine]
        engine = build_lm(text, args.order, args.out, units=args.units, use_lmplz=use)
        if args.lexicon_out:
            words = {w for line in text.read_text(encoding="utf-8").splitlines() for w in line.split()}
            if args.spm_model:
                n = write_spm_lexicon(sorted(words), args.spm_model, args.lexicon_out)
            else:
                n = write_letter_lexicon(sorted(words), args.lexicon_out)
            print(f"wrote {n} words to {args.lexicon_out}")
    except (DataError, ValueError, FileNotFoundError) as e:
        print(f"speech-ssl lm build: {e}", file=sys.stderr)
        return 2
    finally:
        if tmpdir is not None:
            tmpdir.cleanup()
    counts = []
    with open(args.out, encoding="utf-8") as f:
        for line in f:
            if line.startswith("ngram "):
                counts.append(line.split()[1])
            elif counts and not line.strip():
                break
    print(f"{args.out}: {args.order}-gram {args.units} LM by {engine} in {time.time() - t0:.1f} s ({', '.join(counts)})")
    return 0


def run_lexicon(args: argparse.Namespace) -> int:
    from speech_ssl.files import check_outputs

    check_outputs({"--out": args.out}, {"--text": args.text, "--arpa": args.arpa, "--dict": args.dict})
    import sys
    from pathlib import Path

    from speech_ssl.data.units import Dictionary
    from speech_ssl.decode.ctc import write_letter_lexicon
    from speech_ssl.decode.lm import read_arpa_unigrams
    from speech_ssl.errors import DataError

    try:
        if args.arpa:
            words = read_arpa_unigrams(args.arpa)
        else:
            if not Path(args.text).is_file():
                raise DataError("text not found", args.text)
            words = sorted({w for line in open(args.text, encoding="utf-8") for w in line.split()})
        symbols = Dictionary.load(args.dict).symbols if args.dict else None
        n = write_letter_lexicon(words, args.out, symbols)
    except DataError as e:
        print(f"speech-ssl lm lexicon: {e}", file=sys.stderr)
        return 2
    print(f"{n} words in {args.out}")
    return 0


def run_eval(args: argparse.Namespace) -> int:
    from speech_ssl.files import check_outputs

    check_outputs({"--json": args.json}, {"--lm": args.lm, "--text": args.text})
    import json
    import sys

    from speech_ssl.decode.lm import ArpaLM, evaluate, read_sentences
    from speech_ssl.errors import DataError
    from speech_ssl.files import atomic_write_text

    try:
        lm = ArpaLM(args.lm)
        sentences = read_sentences(args.text)
        if args.upper:
            sentences = [[w.upper() for w in s] for s in sentences]
        res = evaluate(lm, sentences)
    except (DataError, ValueError) as e:
        print(f"speech-ssl lm eval: {e}", file=sys.stderr)
        return 2
    res = {"lm": str(args.lm), "text": str(args.text), "order": lm.order, **res}
    print(f"{args.lm} on {args.text}: {res['sentences']} sentences, {res['words']} words, "
          f"OOV {100 * res['oov_rate']:.2f}%, perplexity {res['ppl']:.1f} "
          f"({res['ppl_in_vocab']:.1f} without OOVs)")
    if args.json:
        atomic_write_text(args.json, json.dumps(res, indent=1) + "\n")
    return 0
