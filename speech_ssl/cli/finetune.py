"""speech-ssl finetune CONFIG.yaml [key=value ...] [--run-dir D] [--resume [CK]] [--init-from CK]

CTC fine-tuning with the same trainer as pretraining (one process, or torchrun --nproc-per-node N -m
speech_ssl finetune ...). The config is a training config plus a finetune: section: finetune.pretrained
names the pretrained checkpoint, finetune.labels the label extension next to each manifest (ltr, phn, ...);
the backbone's settings (masking, dropouts, layerdrop) go under model.overrides, on top of fairseq's
fine-tuning defaults. Checkpoints keep the best validation WER in RUN/checkpoints/best (decode it with
speech-ssl decode --checkpoint RUN/checkpoints/best ...).
Exit codes: 0 done, 75 stopped by SIGTERM/SIGUSR1 after saving (resume with --resume), 2 bad config,
3 bad data / checkpoint, 4 training aborted.
"""

from __future__ import annotations

import argparse


def add_parser(subparsers) -> None:
    from speech_ssl.cli.pretrain import add_train_arguments

    p = subparsers.add_parser(
        "finetune",
        help="CTC fine-tuning of a pretrained model (letters, phones, sentencepiece)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_train_arguments(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from speech_ssl.cli.pretrain import run as run_training

    return run_training(args, task_name="ctc")
