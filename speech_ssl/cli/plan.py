"""speech-ssl plan CONFIG.yaml --gpus N [key=value ...]: the batch a run will use before it starts.

Prints the effective batch (max_tokens x GPUs x update_freq, in hours of audio per update at most), the
update_freq that matches the recipe's reference batch (optim.reference_gpus x optim.reference_update_freq)
on N GPUs, and the total audio the run's updates can see. --print update_freq prints that one number (what
the recipes pass as optim.update_freq).
"""

from __future__ import annotations

import argparse


def add_parser(subparsers) -> None:
    p = subparsers.add_parser("plan", help="the effective batch and matching update_freq of a config on N GPUs",
                              description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("config", help="a pretraining or fine-tuning YAML (its task: key picks which)")
    p.add_argument("overrides", nargs="*", metavar="key=value", help="dotted overrides, as for training")
    p.add_argument("--gpus", type=int, default=1, help="ranks the run will have (GPUs over all nodes)")
    p.add_argument("--print", dest="print_only", choices=["update_freq"],
                   help="print only this value (for scripts)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from speech_ssl.config import ConfigError, load_config, read_yaml
    from speech_ssl.data.audio import SAMPLE_RATE
    from speech_ssl.train.config import matching_update_freq
    from speech_ssl.train.tasks import TASKS

    if args.gpus < 1:
        raise SystemExit("speech-ssl plan: --gpus must be >= 1")
    task = str(read_yaml(args.config).get("task", "pretrain"))
    if task not in TASKS:
        raise ConfigError(f"{args.config}: key 'task': unknown task {task!r} (known: {', '.join(TASKS)})")
    cfg = load_config(TASKS[task][0], args.config, args.overrides)  # manifests are not needed to plan
    freq = matching_update_freq(cfg.optim, args.gpus)
    if args.print_only == "update_freq":
        print(freq)
        return 0
    hours = cfg.data.max_tokens * args.gpus * freq / SAMPLE_RATE / 3600
    o = cfg.optim
    print(f"task {task}: max_tokens {cfg.data.max_tokens:,} samples x {args.gpus} GPU(s) x update_freq {freq} = "
          f"{hours:.3f} h of audio per update at most")
    if o.reference_gpus > 0:
        ref = cfg.data.max_tokens * o.reference_gpus * o.reference_update_freq / SAMPLE_RATE / 3600
        print(f"recipe batch: {o.reference_gpus} GPUs x update_freq {o.reference_update_freq} = {ref:.3f} h per "
              f"update; on {args.gpus} GPU(s) use optim.update_freq={freq}")
    print(f"{o.max_update:,} updates: at most {hours * o.max_update:,.0f} h of audio seen")
    return 0
