"""``speech-ssl prepare CORPUS ...``: corpora in their published layouts -> manifests, labels, dictionaries.

    speech-ssl prepare librispeech --root LibriSpeech --out data/librispeech
    speech-ssl prepare librilight  --root librispeech_finetuning --out data/librilight
    speech-ssl prepare commonvoice --root cv-corpus-17.0/fr --out data/cv/fr
    speech-ssl prepare babel       --root BABEL_OP1_102 --out data/babel/102
    speech-ssl prepare synth       --out data/synth        (when data_prep.synth is installed)

Common flags: ``--workers N``, ``--skip-bad`` (skip, count and report bad inputs instead of stopping),
``--force`` (redo finished splits). Bad input stops with an error naming the file and line (exit 1).
"""

from __future__ import annotations

import argparse
import importlib
import sys
from pathlib import Path

CORPORA = {
    "librispeech": "LibriSpeech subsets -> <subset>.tsv/.wrd/.ltr, dict.ltr.txt, train-960",
    "librilight": "Libri-light limited supervision -> train-10m, train-1h, train-10h",
    "commonvoice": "one CommonVoice language -> 16 kHz FLAC, train/dev/test .wrd/.ltr/.phn, sizes.json",
    "babel": "one IARPA BABEL pack -> utterances cut by timestamps, 8 -> 16 kHz, train/dev",
}


def add_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "prepare", help="prepare a corpus (manifests, labels, dictionaries)", description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = p.add_subparsers(dest="corpus", metavar="CORPUS")
    sub.required = True
    for name, help_text in CORPORA.items():
        module = importlib.import_module(f"data_prep.{name}")
        sp = sub.add_parser(name, help=help_text, description=module.__doc__,
                            formatter_class=argparse.RawDescriptionHelpFormatter)
        module.add_arguments(sp)
        sp.set_defaults(func=run, prepare_run=module.run)
    try:
        from data_prep.synth.cli import add_arguments as synth_arguments
        from data_prep.synth.cli import run as synth_run
    except ImportError:
        return  # the synthetic-corpus generator is not installed
    sp = sub.add_parser("synth", help="generate a synthetic multilingual corpus in the real layouts")
    synth_arguments(sp)
    sp.set_defaults(func=run, prepare_run=synth_run)


def run(args: argparse.Namespace) -> int:
    from speech_ssl.errors import DataError

    try:
        return int(args.prepare_run(args) or 0)
    except DataError as e:
        print(f"speech-ssl prepare {args.corpus}: error: {e}", file=sys.stderr)
        # the hint helps with one bad file among many, not with a missing corpus root or an unreadable listing
        bad_file = e.path is not None and Path(e.path).is_file()
        if args.corpus != "synth" and not getattr(args, "skip_bad", True) and bad_file:
            print("  (pass --skip-bad to skip bad inputs and list them in a report)", file=sys.stderr)
        return 1
