"""``speech-ssl demo [--quick] [--out DIR] [--pretrained CK] [--seeds 1,2] [key=value ...]``.

The miniature wav2vec 2.0 / XLSR experiment on the embedded eSpeak corpus, on CPU, no downloads: generate
the corpus, pretrain briefly from scratch (curves), fine-tune on 10 minutes of English letters and on a
language left out of pretraining (phones) from the pretrained checkpoint, from scratch and from random
frozen weights for the same wall time (the left-out language also from the shipped English-only checkpoint,
English-only, when it exists), decode greedy and with an n-gram LM, score, and write DIR/results.md,
DIR/results.json and DIR/plots/*.png. ``make demo`` runs it into demo_out/ (29 min on an idle 2-core box;
``--quick`` under 5 min). The checkpoint is the shipped one (package data, speech_ssl/demo/assets/pretrained; recipes/synth/pretrained links to it) when it exists, else the demo's
own short pretraining; the report says which. Re-running continues an interrupted demo.
Overrides are fields of ``speech_ssl.demo.config.DemoConfig`` (e.g. finetune_seconds=300).
"""

from __future__ import annotations

import argparse


def add_parser(subparsers) -> None:
    p = subparsers.add_parser("demo", help="the miniature wav2vec 2.0 / XLSR experiment (make demo)",
                              description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("overrides", nargs="*", help="DemoConfig overrides, e.g. finetune_seconds=300")
    p.add_argument("--quick", action="store_true", help="minimum sizes (~5 min on 2 cores)")
    p.add_argument("--out", default=None, help="output folder (default demo_out)")
    p.add_argument("--pretrained", default=None, metavar="CK",
                   help="checkpoint to fine-tune from: auto (default: the shipped checkpoint, package data), "
                        "none (this run's own pretraining) or a checkpoint folder")
    p.add_argument("--seeds", default=None, help="comma-separated fine-tuning seeds (default 1,2; quick: 1)")
    p.add_argument("--threads", type=int, default=None, help="torch threads per process (default 1)")
    p.add_argument("--config", default=None, help="YAML file of DemoConfig fields")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import sys

    from speech_ssl.demo.config import demo_config
    from speech_ssl.demo.results import format_table
    from speech_ssl.demo.run import DemoError, run_demo

    ov = list(args.overrides)
    if args.out:
        ov.append(f"out={args.out}")
    if args.pretrained:
        ov.append(f"pretrained={args.pretrained}")
    if args.seeds:
        ov.append(f"seeds=[{args.seeds}]")
    if args.threads:
        ov.append(f"threads={args.threads}")
    cfg = demo_config(args.quick, args.config, ov)
    try:
        res = run_demo(cfg)
    except DemoError as e:
        print(f"speech-ssl demo: {e}", file=sys.stderr)
        return 1
    print()
    print(f"Fine-tuning started from: {res['checkpoint']['description']}")
    print(format_table(res))
    print(f"\nwrote {cfg.out}/results.md, results.json, plots/*.png in {res['wall_seconds']:.0f} s")
    return 0
