"""``speech-ssl pretrain CONFIG.yaml [key=value ...] [--run-dir D] [--resume [CK]] [--init-from CK]``.

Works as a plain process (one CPU/GPU) or under ``torchrun --nproc-per-node N -m speech_ssl pretrain ...``
(DDP over NCCL on GPUs, Gloo on CPU). Exit codes: 0 done, 75 stopped by SIGTERM/SIGUSR1 after saving (not
finished: resume with ``--resume``), 2 bad config, 3 bad data / checkpoint, 4 training aborted (non-finite updates).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def add_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "pretrain",
        help="wav2vec 2.0 pretraining (one process or torchrun)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_train_arguments(p)
    p.set_defaults(func=run)


def add_train_arguments(p: argparse.ArgumentParser) -> None:
    """Arguments shared by every training subcommand (pretrain, finetune)."""
    p.add_argument("config", help="YAML run config (e.g. recipes/synth/conf/pretrain.yaml)")
    p.add_argument("overrides", nargs="*", help="dotted overrides, e.g. optim.lr=1e-3 data.max_tokens=800000")
    p.add_argument("--run-dir", help="where config, logs and checkpoints go (default: runs/<config name>)")
    p.add_argument(
        "--resume",
        nargs="?",
        const=True,
        default=None,
        metavar="CK",
        help="continue exactly: the newest checkpoint of the run dir (none: start fresh), or checkpoint CK",
    )
    p.add_argument("--init-from", metavar="CK", help="weights only from checkpoint CK; optimizer and schedule reset")
    p.add_argument(
        "--stop-after-updates",
        type=int,
        metavar="N",
        help="save and exit after N updates in this invocation (time-limited cluster jobs)",
    )
    p.add_argument(
        "--validate-only",
        action="store_true",
        help="no training: print the validation metrics of the model (with --init-from CK or --resume) as JSON",
    )


def run(args: argparse.Namespace, task_name: str = "pretrain") -> int:
    """Train ``task_name`` (a row of ``speech_ssl.train.tasks.TASKS``) with the one trainer."""
    from speech_ssl.config import ConfigError
    from speech_ssl.errors import DataError
    from speech_ssl.train.distributed import init_distributed, shutdown
    from speech_ssl.train.tasks import build_task, load_task_config
    from speech_ssl.train.trainer import Trainer, TrainingAborted

    if isinstance(args.resume, str) and "=" in args.resume and not Path(args.resume).exists():
        print(f"speech-ssl {args.command}: --resume took {args.resume!r} as the checkpoint to resume from; overrides "
              "go before the options (CONFIG k=v ... --run-dir D --resume)", file=sys.stderr)
        return 2
    if args.resume and args.init_from:
        print(f"speech-ssl {args.command}: --resume and --init-from are exclusive (resume restores the weights too)",
              file=sys.stderr)
        return 2
    if args.validate_only and not (args.resume or args.init_from):
        print(f"speech-ssl {args.command}: --validate-only measures a given model: add --init-from CK or --resume",
              file=sys.stderr)
        return 2
    cfg = load_task_config(task_name, args.config, args.overrides)
    run_dir = Path(args.run_dir) if args.run_dir else Path("runs") / Path(args.config).stem
    info = init_distributed(cfg.distributed, cfg.device)
    try:
        task = build_task(cfg, args.config)
        trainer = Trainer(cfg, task, run_dir, info, stop_after_updates=args.stop_after_updates)
        trainer.setup(resume=args.resume, init_from=args.init_from)
        if args.validate_only:
            if not task.has_valid():
                raise ConfigError(f"{args.config}: --validate-only needs data.valid")
            if args.resume and trainer.resumed_from is None:
                raise ConfigError(f"--validate-only --resume: {run_dir} has no checkpoint to measure (a fresh model "
                                  "would be); name the run directory or checkpoint, or use --init-from CK")
            if info.is_main:
                metrics = trainer.validate()
                print(json.dumps({"split": "valid", "update": trainer.num_updates, **metrics}))
            else:
                trainer.validate()
            return 0
        trainer.train()
        if trainer.stopped_by == "signal":  # the trainer said so in its log; the caller must not take it as done
            from speech_ssl.train.signals import EXIT_STOPPED

            return EXIT_STOPPED
    except TrainingAborted as e:
        print(f"speech-ssl {args.command}: training aborted (rank {info.rank}): {e}", file=sys.stderr)
        return 4
    except ConfigError:
        raise
    except DataError as e:
        print(f"speech-ssl {args.command}: {e}", file=sys.stderr)
        return 3
    finally:
        shutdown()
    return 0


def main(argv: list[str] | None = None) -> int:
    """``python -m speech_ssl.cli.pretrain ...``: this subcommand alone (what torchrun launches in tests)."""
    from speech_ssl.cli import setup_logging
    from speech_ssl.config import ConfigError

    setup_logging()
    parser = argparse.ArgumentParser(prog="speech-ssl")
    sub = parser.add_subparsers(dest="command", required=True)
    add_parser(sub)
    args = parser.parse_args(["pretrain", *(sys.argv[1:] if argv is None else argv)])
    try:
        return run(args)
    except ConfigError as e:
        print(f"speech-ssl pretrain: config error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
