"""speech-ssl plan CONFIG.yaml [key=value ...] --gpus N [--throughput S] [--gpu-memory GB]: a run's cost
before it starts.

Prints the effective batch (max_tokens x GPUs x update_freq, in hours of audio per update at most), the
update_freq that matches the recipe's reference batch (optim.reference_gpus x optim.reference_update_freq)
on N GPUs, the audio the run's updates can see and, when the config's training manifests exist, the corpus
size and updates per epoch. With --throughput (audio-seconds per second per GPU, measured with bench/ or a
short run's audio_s_per_s): the wall time and GPU-hours. With --gpu-memory: whether the weights, gradients and
Adam state fit (FSDP divides them by the GPUs) and what to change when they or the activations do not.
--print update_freq prints that one number (what the recipes pass as optim.update_freq). Batches are rarely
full, so times are upper bounds for the given throughput.
"""

from __future__ import annotations

import argparse


def add_parser(subparsers) -> None:
    p = subparsers.add_parser("plan", help="the effective batch and matching update_freq of a config on N GPUs",
                              description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("config", help="a pretraining or fine-tuning YAML (its task: key picks which)")
    p.add_argument("overrides", nargs="*", metavar="key=value", help="dotted overrides, as for training")
    p.add_argument("--gpus", type=int, default=1, help="ranks the run will have (GPUs over all nodes)")
    p.add_argument("--throughput", type=float, metavar="S",
                   help="audio-seconds per second per GPU (from bench/ or a short run's audio_s_per_s)")
    p.add_argument("--gpu-memory", type=float, metavar="GB", help="memory of one GPU, to check what fits")
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
    print(f"{o.max_update:,} updates: at most {hours * o.max_update:,.1f} h of audio seen")
    corpus = _corpus_hours(cfg.data.train)
    if corpus:
        print(f"training data: {corpus:,.1f} h; an epoch is at least {corpus / hours:,.0f} updates "
              f"(at most {hours * o.max_update / corpus:,.1f} epochs)")
    if args.throughput:
        seconds = o.max_update * hours * 3600 / (args.throughput * args.gpus)
        print(f"at {args.throughput:g} audio-s/s per GPU: {seconds / 86400:.2f} days of wall time, "
              f"{seconds / 3600 * args.gpus:,.0f} GPU-hours")
    if args.gpu_memory:
        _memory(task, cfg, args.gpus, args.gpu_memory)
    return 0


def _corpus_hours(manifests: list[str]) -> float:
    """Hours of audio in the training manifests (0 when they do not exist yet)."""
    from pathlib import Path

    from speech_ssl.data.audio import SAMPLE_RATE
    from speech_ssl.data.manifest import read_manifest

    paths = [Path(m) for m in manifests]
    if not paths or not all(p.is_file() for p in paths):
        return 0.0
    return sum(sum(read_manifest(p).sizes) for p in paths) / SAMPLE_RATE / 3600


def _memory(task: str, cfg, gpus: int, gpu_gb: float) -> None:
    """Weights + gradients + Adam moments in fp32 (16 bytes a parameter; FSDP shards them over the GPUs) against
    one GPU's memory, and what to change when the batch does not fit."""
    import torch

    from speech_ssl.models.wav2vec2 import Wav2Vec2ForCTC, Wav2Vec2ForPretraining
    from speech_ssl.train.task import model_config

    with torch.device("meta"):
        mc = model_config(cfg)
        model = Wav2Vec2ForPretraining(mc) if task == "pretrain" else Wav2Vec2ForCTC(mc, 32)
    n = sum(p.numel() for p in model.parameters())
    static = 16 * n / 1e9
    fsdp = cfg.distributed.strategy == "fsdp" and gpus > 1
    per_gpu = static / gpus if fsdp else static
    print(f"model: {n / 1e6:,.1f}M parameters; weights + gradients + Adam state: {static:.1f} GB"
          + (f", {per_gpu:.1f} GB per GPU with FSDP" if fsdp else " on every GPU (DDP)"))
    left = gpu_gb - per_gpu
    if left <= 0.25 * gpu_gb:
        print(f"does not leave room for activations on a {gpu_gb:g} GB GPU: use distributed.strategy=fsdp"
              + ("" if fsdp else f" ({static / gpus:.1f} GB per GPU over {gpus})")
              + " and distributed.activation_checkpointing=true")
    else:
        print(f"{left:.1f} GB per GPU left for activations; if a batch does not fit: "
              "distributed.activation_checkpointing=true, or halve data.max_tokens and double optim.update_freq "
              "(the same batch)")
