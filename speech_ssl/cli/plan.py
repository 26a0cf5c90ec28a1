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


def _positive(text: str) -> float:
    try:
        x = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not x > 0:
        raise argparse.ArgumentTypeError(f"expected a number > 0, got {text}")
    return x


def add_parser(subparsers) -> None:
    p = subparsers.add_parser("plan", help="the effective batch and matching update_freq of a config on N GPUs",
                              description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("config", help="a pretraining or fine-tuning YAML (its task: key picks which)")
    p.add_argument("overrides", nargs="*", metavar="key=value", help="dotted overrides, as for training")
    p.add_argument("--gpus", type=int, default=1, help="ranks the run will have (GPUs over all nodes)")
    p.add_argument("--throughput", type=_positive, metavar="S",
                   help="audio-seconds per second per GPU (from bench/ or a short run's audio_s_per_s)")
    p.add_argument("--gpu-memory", type=_positive, metavar="GB", help="memory of one GPU, to check what fits")
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
    """Weights + gradients + Adam moments in fp32 (16 bytes a parameter; FSDP shards them over the GPUs) plus an
    estimate of one micro-batch's activations against one GPU's memory, and what to change when it does not fit."""
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
    acts = activation_gb(mc, cfg)
    print(f"activations of one micro-batch (estimate from a formula, not measured: {acts['items']:.0f} items of "
          f"{acts['seconds']:.1f} s): conv encoder {acts['conv']:.1f} GB + Transformer {acts['transformer']:.1f} GB"
          + (" (activation checkpointing)" if cfg.distributed.activation_checkpointing else ""))
    total = per_gpu + acts["conv"] + acts["transformer"]
    if total > 0.9 * gpu_gb:
        advice = []
        if not fsdp and static > 0.3 * gpu_gb:
            advice.append(f"distributed.strategy=fsdp ({static / gpus:.1f} GB of state per GPU over {gpus})")
        if not cfg.distributed.activation_checkpointing:
            advice.append("distributed.activation_checkpointing=true")
        advice.append("halve data.max_tokens and double optim.update_freq (the same batch)")
        print(f"about {total:.1f} GB per GPU: does not fit a {gpu_gb:g} GB GPU; use " + ", or ".join(advice))
    else:
        print(f"about {total:.1f} GB per GPU: fits a {gpu_gb:g} GB GPU")


def activation_gb(mc, cfg) -> dict[str, float]:
    """Saved activations of one micro-batch, by formula: the conv encoder keeps ~3 tensors per block (conv
    output, norm, GELU) of channels x frames; a Transformer layer keeps s*b*h*(34 + 5*a*s/h) bytes in 16-bit
    precision (Korthikanti et al. 2022, "Reducing activation recomputation in large transformer models"),
    twice that in fp32; with activation checkpointing only each layer's input (2*s*b*h bytes in 16-bit) plus one
    layer. Items are cropped to data.max_sample_size (pretraining) and fill data.max_tokens."""
    from speech_ssl.data.audio import SAMPLE_RATE

    length = min(cfg.data.max_sample_size, cfg.data.max_tokens)
    items = max(1, cfg.data.max_tokens // length)
    scale = 1.0 if cfg.precision.mode in ("bf16", "fp16") else 2.0
    conv = 0.0
    n = length
    for dim, k, st in mc.conv_feature_layers:
        n = (n - k) // st + 1
        conv += 3 * dim * max(n, 0) * items * 2 * scale
    s, h, a = max(n, 0), mc.encoder_embed_dim, mc.encoder_attention_heads  # n: the last block's frames
    per_layer = s * items * h * (34 + 5 * a * s / h) * scale
    layers = mc.encoder_layers
    if cfg.distributed.activation_checkpointing:
        transformer = layers * 2 * s * items * h * scale + per_layer
    else:
        transformer = layers * per_layer
    return {"items": items, "seconds": length / SAMPLE_RATE, "conv": conv / 1e9, "transformer": transformer / 1e9}
