"""Pretraining throughput of the full trainer update: audio-seconds per second and peak memory.

Times ``Trainer.train_update`` (data loading, forward, backward, all-reduce bookkeeping, AdamW) on a
corpus of random-phase harmonic audio written to a temporary folder, after warm-up updates.

    python bench/bench_pretrain.py                                  # tiny + base on CPU, 2 threads
    python bench/bench_pretrain.py --presets base --device cuda --precision bf16 --max-tokens 1400000
    python bench/bench_pretrain.py --optimizer-impl fused,foreach,for_loop   # AdamW implementations (optim.impl)

Prints one JSON line per configuration and a table. On CPU, say how many threads were used and whether
the machine was otherwise idle: torch with 2 threads runs several times slower when another process
holds a core.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def make_corpus(root: Path, n: int, seconds: float, seed: int = 0) -> Path:
    import numpy as np
    import soundfile as sf

    rng = np.random.default_rng(seed)
    (root / "wav").mkdir(parents=True, exist_ok=True)
    lines = [str(root / "wav")]
    L = int(seconds * 16000)
    t = np.arange(L) / 16000
    for i in range(n):
        f0 = rng.uniform(80, 250)
        x = sum(np.sin(2 * np.pi * f0 * k * t + rng.uniform(0, 6.28)) / k for k in range(1, 8))
        x = (0.1 * x + 0.01 * rng.standard_normal(L)).astype(np.float32)
        sf.write(root / "wav" / f"{i}.wav", x, 16000, subtype="FLOAT")
        lines.append(f"{i}.wav\t{L}")
    (root / "train.tsv").write_text("\n".join(lines) + "\n")
    return root / "train.tsv"


def profile_updates(tr, path: str, updates: int = 3) -> None:
    """torch.profiler over ``updates`` more updates (after the timing): the ops by self device time and by self
    host time, and how busy the device was (its kernels' time over the wall time) -> ``path``; a summary printed."""
    import torch
    from torch.profiler import ProfilerActivity, profile

    cuda = tr.device.type == "cuda"
    acts = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if cuda else [])
    t0 = time.perf_counter()
    with profile(activities=acts) as prof:
        for _ in range(updates):
            tr.train_update()
        if cuda:
            torch.cuda.synchronize()
    wall = time.perf_counter() - t0
    tr._settle()
    avg = prof.key_averages()
    dev_us = sum(getattr(e, "self_device_time_total", getattr(e, "self_cuda_time_total", 0)) for e in avg)
    head = (f"{updates} updates in {wall:.3f} s (profiled); device kernels {dev_us / 1e6:.3f} s = "
            f"{100 * dev_us / 1e6 / wall:.0f}% busy\n")
    tables = [head]
    for key in (["self_cuda_time_total"] if cuda else []) + ["self_cpu_time_total"]:
        tables.append(f"\n== by {key}\n" + avg.table(sort_by=key, row_limit=35, max_name_column_width=70))
    Path(path).write_text("".join(tables))
    print(head, end="")


def bench(preset: str, impl: str, args, corpus: Path) -> dict:
    import torch

    from speech_ssl.train.config import load_train_config
    from speech_ssl.train.pretrain_task import PretrainTask
    from speech_ssl.train.report import peak_memory_gb
    from speech_ssl.train.trainer import Trainer

    overrides = [
        f"model.preset={preset}",
        f"data.train=[{corpus}]",
        f"data.max_tokens={args.max_tokens}",
        f"data.max_sample_size={args.max_tokens}",
        "data.min_sample_size=400",  # the receptive field: shorter rows have no frame
        f"optim.max_update={args.updates + args.warmup + 10}",
        "schedule.warmup_updates=1",
        f"precision.mode={args.precision}",
        f"device={args.device}",
        f"optim.impl={impl}",
        "logging.progress_bar=false",
        "logging.tensorboard=false",
        f"distributed.activation_checkpointing={str(args.activation_checkpointing).lower()}",
        f"distributed.compile={str(args.compile).lower()}",
        f"data.num_workers={args.workers}",
        f"distributed.pos_conv_impl={args.pos_conv_impl}",
    ]
    if args.tf32:
        overrides.append("precision.allow_tf32=true")
    cfg = load_train_config(None, overrides)
    tr = Trainer(cfg, PretrainTask(cfg), run_dir=None)
    tr.setup()
    for _ in range(args.warmup):
        tr.train_update()
    dev = tr.device
    if dev.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats(dev)
    samples = []
    t0 = time.perf_counter()
    for _ in range(args.updates):
        step = tr.train_update()
        samples.append(step["sums"].get("audio_samples"))  # a device tensor: read after the timing
    if dev.type == "cuda":
        torch.cuda.synchronize()
    dt = time.perf_counter() - t0
    tr._settle()
    audio = float(torch.stack(samples).sum()) / 16000
    if args.profile:
        profile_updates(tr, args.profile)
    return {
        "preset": preset,
        "params_M": round(sum(p.numel() for p in tr.raw_model.parameters()) / 1e6, 2),
        "device": str(dev) if dev.type == "cpu" else torch.cuda.get_device_name(dev),
        "threads": torch.get_num_threads(),
        "optim_impl": tr.optim_impl,
        "load_1min": round(os.getloadavg()[0], 2),
        "precision": args.precision + ("+tf32" if args.tf32 else "") + ("+compile" if args.compile else "")
        + ("+pc_" + args.pos_conv_impl if args.pos_conv_impl != "conv" else ""),
        "workers": args.workers,
        "max_tokens": args.max_tokens,
        "updates": args.updates,
        "audio_s_per_update": round(audio / args.updates, 2),
        "s_per_update": round(dt / args.updates, 4),
        "audio_s_per_s": round(audio / dt, 1),
        "peak_mem_gb": round(peak_memory_gb(dev), 3),
        "mem_kind": "cuda max_memory_allocated" if dev.type == "cuda" else "process peak RSS",
    }


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--presets", default="tiny,base")
    p.add_argument("--device", default="cpu")
    p.add_argument("--precision", default="fp32", choices=["fp32", "bf16", "fp16"])
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--max-tokens", type=int, default=80000, help="samples per batch (default 4 x 1.25 s)")
    p.add_argument("--utt-seconds", type=float, default=5.0)
    p.add_argument("--updates", type=int, default=5)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--activation-checkpointing", action="store_true")
    p.add_argument("--compile", action="store_true", help="distributed.compile: torch.compile the model's parts")
    p.add_argument("--workers", type=int, default=0, help="data loader processes (data.num_workers)")
    p.add_argument("--pos-conv-impl", default="conv", choices=["conv", "fft", "auto"],
                   help="distributed.pos_conv_impl: the positional conv as the convolution or through the FFT")
    p.add_argument("--tf32", action="store_true", help="fp32 matmuls on TF32 tensor cores (GPU)")
    p.add_argument("--optimizer-impl", default="auto",
                   help="comma-separated optim.impl values to compare (auto, fused, foreach, for_loop)")
    p.add_argument("--json", help="append results to this JSONL file")
    p.add_argument("--profile", help="after the timing, profile 3 more updates: tables and device busy % here")
    args = p.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    os.environ.setdefault("SPEECH_SSL_NO_BAR", "1")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        n = max(8, 4 * args.max_tokens // int(args.utt_seconds * 16000) + 4)
        corpus = make_corpus(Path(tmp), n, args.utt_seconds)
        for preset in args.presets.split(","):
            for impl in args.optimizer_impl.split(","):
                r = bench(preset.strip(), impl.strip(), args, corpus)
                rows.append(r)
                print(json.dumps(r), flush=True)
                if args.json:
                    with open(args.json, "a") as f:
                        f.write(json.dumps(r) + "\n")
    print(f"\n{'preset':8} {'params':>8} {'device':>24} {'thr':>3} {'prec':>5} {'adamw':>8} {'audio s/upd':>11} "
          f"{'s/upd':>8} {'audio s/s':>9} {'peak GB':>8} {'load':>5}")
    for r in rows:
        print(f"{r['preset']:8} {r['params_M']:>7}M {r['device'][:24]:>24} {r['threads']:>3} {r['precision']:>5} "
              f"{r['optim_impl']:>8} {r['audio_s_per_update']:>11} {r['s_per_update']:>8} {r['audio_s_per_s']:>9} "
              f"{r['peak_mem_gb']:>8} {r['load_1min']:>5}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
