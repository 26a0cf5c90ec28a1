"""speech-ssl results table | seeds | curves | pretrain-info: reports of a recipe's experiment folder.

    speech-ssl results table exp/librispeech --recipe librispeech
        the recipe's results table (markdown) from the score files of its decodes -> EXP/results.md, printed
        (recipes: librispeech, commonvoice, babel, synth)
    speech-ssl results seeds exp/synth_s1 exp/synth_s2 exp/synth_s3 --out seeds.md
        recipes/synth experiments run with different SEED (sharing corpus, data, lm and pretrain* by links):
        mean ± sd and per-seed values per run and decoder
    speech-ssl results curves exp/synth/finetune --out exp/synth/finetune_curves.png
        CTC loss and blank fraction per update of the runs LANG-CONDITION under the folder (one column per
        language); needs matplotlib (the [plot] extra): exit 3 without it
    speech-ssl results pretrain-info exp/synth/pretrain --wall 812 --device cpu --command "..." \
        --train "[a.tsv,b.tsv]"
        RUN/final/pretrain_info.json: updates, wall time, command, machine, manifests, last train and
        validation numbers
"""

from __future__ import annotations

import argparse


def add_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "results",
        help="results tables, fine-tuning curves and pretraining summaries of recipe experiments",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = p.add_subparsers(dest="results_command", metavar="ACTION")
    sub.required = True
    t = sub.add_parser("table", help="the recipe's results table -> EXP/results.md")
    t.add_argument("exp", help="the recipe's experiment folder (holding decode/, finetune/)")
    t.add_argument("--recipe", required=True, choices=["librispeech", "commonvoice", "babel", "synth"])
    t.add_argument("--out", help="output file (default EXP/results.md)")
    t.set_defaults(func=run_table)
    sd = sub.add_parser("seeds", help="mean ± sd over seeds of recipes/synth experiments (one folder per SEED)")
    sd.add_argument("exps", nargs="+", help="the experiment folders, one per fine-tuning seed")
    sd.add_argument("--out", help="also write the table here")
    sd.set_defaults(func=run_seeds)
    c = sub.add_parser("curves", help="fine-tuning curves (PNG) of the runs LANG-CONDITION in a folder")
    c.add_argument("folder", help="folder of fine-tuning run folders (each with log.jsonl)")
    c.add_argument("--out", required=True, help="output PNG")
    c.set_defaults(func=run_curves)
    i = sub.add_parser("pretrain-info", help="RUN/final/pretrain_info.json of a pretraining run")
    i.add_argument("run", help="the run folder (log.jsonl, final/)")
    i.add_argument("--wall", type=float, required=True, help="wall time of this invocation, in seconds")
    i.add_argument("--device", required=True, help="cpu or cuda (cuda: the GPU's name is recorded)")
    i.add_argument("--command", required=True, help="the command line to record")
    i.add_argument("--train", required=True, help="the training manifests, comma-separated (brackets allowed)")
    i.set_defaults(func=run_pretrain_info)


def _missing_folder(command: str, *folders: str) -> int:
    """1 (and one line naming it) when a folder to read results from does not exist, else 0: a mistyped EXP
    must not give an empty table."""
    import sys
    from pathlib import Path

    for f in folders:
        if not Path(f).is_dir():
            print(f"speech-ssl results {command}: {f}: no such folder", file=sys.stderr)
            return 1
    return 0


def run_table(args: argparse.Namespace) -> int:
    import sys

    from speech_ssl.config import ConfigError
    from speech_ssl.errors import DataError
    from speech_ssl.report.results import results_table

    if _missing_folder("table", args.exp):
        return 1
    try:
        text = results_table(args.exp, args.recipe, args.out)
    except (DataError, ConfigError) as e:
        print(f"speech-ssl results table: {e}", file=sys.stderr)
        return 1
    print(text)
    return 0


def run_seeds(args: argparse.Namespace) -> int:
    import sys

    from speech_ssl.config import ConfigError
    from speech_ssl.errors import DataError
    from speech_ssl.report.results import synth_seeds_table

    if _missing_folder("seeds", *args.exps):
        return 1
    try:
        text = synth_seeds_table(args.exps, args.out)
    except (DataError, ConfigError) as e:
        print(f"speech-ssl results seeds: {e}", file=sys.stderr)
        return 1
    print(text)
    return 0


def run_curves(args: argparse.Namespace) -> int:
    import sys

    from speech_ssl.report.results import finetune_runs

    if _missing_folder("curves", args.folder):
        return 1
    runs = finetune_runs(args.folder)
    if not runs:
        print(f"no fine-tuning runs (LANG-CONDITION/log.jsonl) in {args.folder}")
        return 0
    try:
        from speech_ssl.report.plots import plot_finetuning

        path = plot_finetuning(runs, args.out)
    except ImportError as e:  # matplotlib is the optional [plot] extra
        print(f"speech-ssl results curves: no fine-tuning curves ({e})", file=sys.stderr)
        return 3
    print("fine-tuning curves:", path)
    return 0


def run_pretrain_info(args: argparse.Namespace) -> int:
    import json
    import sys

    from speech_ssl.errors import DataError
    from speech_ssl.report.results import pretrain_info

    try:
        info = pretrain_info(args.run, args.wall, args.device, args.command, args.train.strip("[]").split(","))
    except DataError as e:
        print(f"speech-ssl results pretrain-info: {e}", file=sys.stderr)
        return 1
    print(json.dumps(info, indent=1))
    return 0
