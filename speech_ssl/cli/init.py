"""speech-ssl init LIKE OUT [--seed N]: a pretraining checkpoint with random weights and LIKE's architecture.

The from-scratch and random-frozen fine-tuning controls start from it (finetune.pretrained=OUT), so that
they take the same code path as fine-tuning a pretrained model. The weights depend only on the seed and
the architecture; an existing OUT is kept as it is.
"""

from __future__ import annotations

import argparse


def add_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "init",
        help="a randomly initialised checkpoint with another checkpoint's architecture",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("like", help="checkpoint whose architecture (config.json) is copied")
    p.add_argument("out", help="output checkpoint folder")
    p.add_argument("--seed", type=int, default=1, help="torch seed of the random weights (default 1)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import sys

    from speech_ssl.errors import DataError
    from speech_ssl.models.random_init import random_like

    try:
        print(random_like(args.like, args.out, args.seed))
    except DataError as e:
        print(f"speech-ssl init: {e}", file=sys.stderr)
        return 2
    return 0
