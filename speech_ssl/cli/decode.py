"""``speech-ssl decode --checkpoint CK --manifest M --out DIR [options]``.

Greedy CTC decoding by default. ``--lm lm.arpa --lexicon lexicon.txt`` runs lexicon-constrained beam
search with a KenLM n-gram (flashlight-text, the ``lm`` extra); ``--lm`` without ``--lexicon`` runs
lexicon-free beam search with a token-level LM (``speech-ssl lm build --units letter``); ``--beam-only``
without ``--lm`` runs lexicon-free beam search without an LM. Defaults follow fairseq's wav2vec README
(lm_weight 2, word_score -1, sil_score 0) with beam 500. ``--tune`` grid-searches ``lm_weight`` and
``word_score`` on the given (dev) manifest, reports the best and decodes with it.

Writes DIR/hyp.txt, DIR/ref.txt (when labels exist), DIR/results.jsonl and DIR/summary.json; prints
the real-time factor and, when references exist, the error rate as the last line.
"""

from __future__ import annotations

import argparse
import re


def _floats(text: str) -> list[float]:
    try:
        values = [float(v) for v in text.split(",") if v.strip()]
    except ValueError as e:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers, got {text!r}") from e
    if not values:
        raise argparse.ArgumentTypeError(f"expected at least one number, got {text!r}")
    return values


# comma lists of numbers that may start with a minus sign: argparse reads "--tune-word-scores -1,0" as an option
# with its value missing ("-1,0" is not one number), so the CLI joins them first ("--tune-word-scores=-1,0")
NUMBER_LISTS = ("--tune-lm-weights", "--tune-word-scores")


def join_number_lists(argv: list[str]) -> list[str]:
    """``[..., "--tune-word-scores", "-1,0", ...]`` -> ``[..., "--tune-word-scores=-1,0", ...]``."""
    out: list[str] = []
    i = 0
    while i < len(argv):
        if argv[i] in NUMBER_LISTS and i + 1 < len(argv) and re.match(r"-\.?\d", argv[i + 1]):
            out.append(f"{argv[i]}={argv[i + 1]}")
            i += 2
        else:
            out.append(argv[i])
            i += 1
    return out


def add_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "decode",
        help="decode a manifest with a fine-tuned CTC model (greedy or KenLM beam search)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--checkpoint", required=True, help="fine-tuned model folder (model.safetensors + config.json)")
    p.add_argument("--manifest", required=True, help="fairseq .tsv manifest")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--labels", help="references: extension next to the manifest (wrd, ltr, phn) or a file; "
                   "default: the first of .wrd/.ltr/.phn that exists")
    p.add_argument("--dict", dest="dictionary", help="output dictionary (default: dict*.txt in the checkpoint folder)")
    p.add_argument("--unit", choices=["letter", "phone", "spm", "word"], help="default: from the dictionary")
    p.add_argument("--normalize", choices=["auto", "yes", "no"], default="auto",
                   help="per-utterance waveform normalisation (auto: as the model was trained)")
    # Options without a default here take theirs from DecodeOptions / BeamConfig (one place; given in the help)
    p.add_argument("--max-tokens", type=int, help="samples per batch (default 1,600,000)")
    p.add_argument("--chunk-seconds", type=float,
                   help="longer audio is decoded in chunks (default 30; 0: whole utterances, however long)")
    p.add_argument("--chunk-context-seconds", type=float, help="default 2")
    p.add_argument("--device", help="auto (default), cpu, cuda, cuda:N")
    p.add_argument("--limit", type=int, help="decode only the first N rows")
    p.add_argument("--num-workers", type=int, help="audio-loading worker processes (0: none; default 2)")
    p.add_argument("--precision", choices=["fp32", "bf16", "fp16"],
                   help="autocast dtype for the model (default fp32; bf16: GPUs, CPUs with AVX512-BF16/AMX; warns "
                        "where emulated); log-probs and search stay fp32")
    g = p.add_argument_group("beam search (flashlight-text)")
    g.add_argument("--lm", help="KenLM model (ARPA or binary)")
    g.add_argument("--lexicon", help="lexicon: WORD t1 t2 ... per line (letters: WORD W O R D |)")
    g.add_argument("--beam-only", action="store_true", help="lexicon-free beam search without an LM")
    g.add_argument("--strict-lexicon", action="store_true",
                   help="a lexicon spelling with a symbol outside the model's vocabulary is an error (default: "
                        "skipped, counted and reported)")
    g.add_argument("--beam", type=int, help="default 500")
    g.add_argument("--beam-size-token", type=int, help="default: the vocabulary size")
    g.add_argument("--beam-threshold", type=float, help="default 25")
    g.add_argument("--lm-weight", type=float, help="default 2 (with --lm)")
    g.add_argument("--word-score", type=float, help="default -1 (with --lm)")
    g.add_argument("--unk-score", type=float, help="default -inf")
    g.add_argument("--sil-score", type=float, help="default 0")
    g.add_argument("--tune", action="store_true", help="grid-search lm_weight and word_score on this manifest")
    g.add_argument("--tune-lm-weights", type=_floats, help="comma list (default 0,0.5,...,3)")
    g.add_argument("--tune-word-scores", type=_floats, help="comma list (default -2,-1,0,1)")
    p.set_defaults(func=run)


def _unused_option(args: argparse.Namespace) -> str | None:
    """An option given where it would be ignored (the decode would run without it): what to add or drop."""
    beam = args.lm or args.lexicon or args.beam_only
    searched = {"--beam": args.beam, "--beam-size-token": args.beam_size_token,
                "--beam-threshold": args.beam_threshold, "--unk-score": args.unk_score, "--sil-score": args.sil_score}
    for name, value in searched.items():
        if value is not None and not beam:
            return f"{name} sets the beam search, which runs with --lm, --lexicon or --beam-only (else greedy)"
    for name, value in {"--lm-weight": args.lm_weight, "--word-score": args.word_score, "--tune": args.tune or None}.items():
        if value is not None and not args.lm:
            return f"{name} weighs a language model: give one with --lm"
    for name, value in {"--tune-lm-weights": args.tune_lm_weights, "--tune-word-scores": args.tune_word_scores}.items():
        if value is not None and not args.tune:
            return f"{name} is the grid of --tune: add --tune"
    if args.strict_lexicon and not args.lexicon:
        return "--strict-lexicon checks the spellings of --lexicon: give one"
    return None


def run(args: argparse.Namespace) -> int:
    import sys

    from speech_ssl.decode.ctc import BeamConfig
    from speech_ssl.decode.run import DecodeOptions, decode_manifest
    from speech_ssl.errors import DataError

    def given(**kw):  # the options the user gave; the dataclasses hold the defaults
        return {k: v for k, v in kw.items() if v is not None}

    if problem := _unused_option(args):
        print(f"speech-ssl decode: {problem}", file=sys.stderr)
        return 2
    beam = None
    if args.lm or args.lexicon or args.beam_only:
        no_lm = {} if args.lm else {"lm_weight": 0.0, "word_score": 0.0}  # no LM: nothing to weigh
        beam = BeamConfig(**given(
            lm=args.lm, lexicon=args.lexicon, beam=args.beam, beam_size_token=args.beam_size_token,
            beam_threshold=args.beam_threshold, lm_weight=args.lm_weight, word_score=args.word_score,
            unk_score=args.unk_score, sil_score=args.sil_score, strict_lexicon=args.strict_lexicon,
        ) | no_lm)
    opts = DecodeOptions(
        checkpoint=args.checkpoint, manifest=args.manifest, out=args.out, labels=args.labels,
        dictionary=args.dictionary, unit=args.unit,
        normalize={"auto": None, "yes": True, "no": False}[args.normalize], beam=beam, tune=args.tune,
        limit=args.limit,
        **given(max_tokens=args.max_tokens, chunk_seconds=args.chunk_seconds,
                chunk_context_seconds=args.chunk_context_seconds, device=args.device,
                tune_lm_weights=args.tune_lm_weights, tune_word_scores=args.tune_word_scores,
                num_workers=args.num_workers, precision=args.precision),
    )
    try:
        decode_manifest(opts)
    except (DataError, ValueError, ImportError) as e:
        print(f"speech-ssl decode: {e}", file=sys.stderr)
        return 2
    return 0
