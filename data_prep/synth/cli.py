"""Command-line front end of the synthetic corpus: ``speech-ssl prepare synth ...``.

The ``prepare`` command (data_prep) calls :func:`add_arguments` on its ``synth`` subparser and
:func:`run` with the parsed arguments. Also runnable alone: ``python -m data_prep.synth.cli --out DIR``.
"""

from __future__ import annotations

import argparse
import sys


def _csv(s: str) -> list[str]:
    return [x.strip() for x in s.split(",") if x.strip()]


def _minutes(s: str) -> dict[str, float]:
    out = {}
    for part in _csv(s):
        lang, eq, minutes = part.partition("=")
        try:
            out[lang.strip()] = float(minutes)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected LANG=MINUTES, got {part!r}") from None
        if not eq:
            raise argparse.ArgumentTypeError(f"expected LANG=MINUTES, got {part!r}")
    return out


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the synth flags to ``parser``."""
    from .corpus import DEFAULT_LANGUAGES

    p = parser
    p.add_argument("--out", required=True, help="output folder (layouts are written inside)")
    p.add_argument("--languages", type=_csv, default=list(DEFAULT_LANGUAGES),
                   help="comma-separated codes; en -> LibriSpeech + Libri-light, others -> CommonVoice "
                        f"(default {','.join(DEFAULT_LANGUAGES)})")
    p.add_argument("--minutes-per-language", type=float, default=2.0,
                   help="audio per language (train/dev/test together; default 2)")
    p.add_argument("--english-minutes", type=float, default=None,
                   help="audio for English (LibriSpeech part) if different from --minutes-per-language")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--speakers-per-language", type=int, default=40, help="speakers per language (default 40)")
    p.add_argument("--dev-speakers", type=int, default=5)
    p.add_argument("--test-speakers", type=int, default=5)
    p.add_argument("--dev-fraction", type=float, default=0.1)
    p.add_argument("--test-fraction", type=float, default=0.1)
    p.add_argument("--eval-minutes", type=_minutes, default={}, metavar="LANG=MIN[,LANG=MIN]",
                   help="dev and test audio (each) for these languages instead of the fractions, e.g. ky=2: "
                        "bigger evaluation sets for a left-out language, its training audio unchanged")
    p.add_argument("--text-dir", default=None,
                   help="folder with LANG.txt files (one sentence per line) used instead of the built-in sentences "
                        "(data_prep/synth/sentences/)")
    p.add_argument("--babel-languages", type=_csv, default=["tr"],
                   help="languages also written as BABEL conversations (default tr; '' for none)")
    p.add_argument("--babel-minutes", type=float, default=2.0, help="BABEL audio per language (default 2)")
    p.add_argument("--librilight-scale", type=float, default=0.005,
                   help="Libri-light finetuning durations relative to the real ones (1h/10h); "
                        "1.0 = real size; 0 = none (default 0.005: 18 s folds... 2.7 min 9h part)")
    p.add_argument("--augment-prob", type=float, default=0.3,
                   help="probability of noise (random SNR) + reverberation per CommonVoice utterance / "
                        "BABEL call (LibriSpeech clean never, Libri-light 'other' always)")
    p.add_argument("--workers", type=int, default=0, help="processes (default: all cores)")
    p.add_argument("--overwrite", action="store_true", help="remove earlier synth outputs in --out first")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    """Build the corpus from parsed arguments; returns an exit code."""
    from pathlib import Path

    from .corpus import SynthConfig, build, remove_outputs

    out = Path(args.out)
    if (out / "synth_info.json").exists():
        if not args.overwrite:
            print(f"{out}: already holds a synthetic corpus (synth_info.json); use --overwrite", file=sys.stderr)
            return 1
        remove_outputs(out)
    try:
        cfg = SynthConfig(
            out=str(out), languages=args.languages, minutes_per_language=args.minutes_per_language,
            english_minutes=args.english_minutes, seed=args.seed,
            speakers_per_language=args.speakers_per_language, dev_speakers=args.dev_speakers,
            test_speakers=args.test_speakers, dev_fraction=args.dev_fraction, test_fraction=args.test_fraction,
            eval_minutes=args.eval_minutes,
            text_dir=args.text_dir, babel_languages=[x for x in args.babel_languages if x in args.languages],
            babel_minutes=args.babel_minutes, librilight_scale=args.librilight_scale,
            augment_prob=args.augment_prob, workers=args.workers, progress=not args.no_progress,
        )
    except ValueError as e:
        print(f"prepare synth: {e}", file=sys.stderr)
        return 2
    from speech_ssl.errors import DataError

    try:
        summary = build(cfg)
    except DataError as e:
        print(f"prepare synth: error: {e}", file=sys.stderr)
        return 1
    sec, wall = summary["audio_seconds"], summary["wall_seconds"]
    print(f"wrote {summary['files']} files, {sec / 60:.1f} min of audio to {out} in {wall:.1f} s "
          f"({sec / wall:.0f}x real time with {summary['workers']} workers)")
    lm_text = summary["stats"].pop("lm_text", {})
    for layout, subsets in sorted(summary["stats"].items()):
        parts = ", ".join(f"{k} {v['files']} files {v['minutes']:.2f} min" for k, v in sorted(subsets.items()))
        print(f"  {layout}: {parts}")
    if lm_text:
        print("  lm_text (sentences no split reads): " + ", ".join(
            f"{lang} {v['sentences']} sentences" for lang, v in sorted(lm_text.items())))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m data_prep.synth.cli", description=__doc__)
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
