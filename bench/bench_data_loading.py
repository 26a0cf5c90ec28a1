"""Data-loading throughput: 16 kHz FLAC -> padded fine-tuning batches, in seconds of audio per second per worker.

    OMP_NUM_THREADS=1 .venv/bin/python bench/bench_data_loading.py [--minutes 10] [--workers 0 1 2]

Writes a synthetic corpus (speech-like: amplitude-modulated harmonics + noise, 16-bit FLAC, 2-15 s
utterances) into a temporary folder with a manifest, letter labels and a dictionary, then iterates a
``FinetuneDataset`` through ``DynamicBatchSampler`` (max_tokens 1.6M samples = 100 s of audio) and a
``DataLoader``: decoding, float conversion, padding, target padding. ``workers=0`` decodes in the main
process (one core). ``--source-sr 8000`` (or 48000) writes files at that rate, so the loader also resamples.
The figure is audio seconds decoded per wall-clock second divided by
``max(1, workers)``; goal >= 50x real time per core. The machine is shared: run it when it is idle.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np


def make_corpus(root: Path, minutes: float, seed: int = 0, sr: int = 16000) -> Path:
    import soundfile as sf

    from speech_ssl.data.audio import resampled_length
    from speech_ssl.data.manifest import ManifestEntry, write_labels, write_manifest
    from speech_ssl.data.units import build_dictionary, text_to_letters

    rng = np.random.default_rng(seed)
    entries, ltr, total, i = [], [], 0.0, 0
    while total < minutes * 60:
        sec = float(rng.uniform(2, 15))
        n = int(sec * sr)
        t = np.arange(n) / sr
        f0 = rng.uniform(90, 250)
        env = 0.5 * (1 + np.sin(2 * np.pi * rng.uniform(2, 6) * t)) ** 2
        x = sum(np.sin(2 * np.pi * f0 * k * t) / k for k in range(1, 8)) * env * 0.1
        x = (x + 0.01 * rng.standard_normal(n)).clip(-1, 1)
        sf.write(root / f"u{i:05d}.flac", x, sr, subtype="PCM_16")
        entries.append(ManifestEntry(f"u{i:05d}.flac", resampled_length(n, sr)))
        ltr.append(text_to_letters(" ".join(["HELLO", "WORLD", "SPEECH"][: 1 + i % 3])))
        total += sec
        i += 1
    write_manifest(root / "train.tsv", root, entries)
    write_labels(root / "train.ltr", ltr)
    build_dictionary(ltr).save(root / "dict.ltr.txt")
    return root / "train.tsv"


def run(manifest: Path, workers: int, max_tokens: int) -> dict:
    import torch

    from speech_ssl.data.datasets import FinetuneDataset
    from speech_ssl.data.sampler import DynamicBatchSampler

    ds = FinetuneDataset(manifest, manifest.with_suffix(".ltr"), manifest.parent / "dict.ltr.txt")
    sampler = DynamicBatchSampler(ds.sizes, max_tokens=max_tokens, seed=1)
    loader = torch.utils.data.DataLoader(
        ds, batch_sampler=sampler, collate_fn=ds.collater, num_workers=workers,
        worker_init_fn=(lambda _: torch.set_num_threads(1)) if workers else None,
    )
    audio = 0
    t0 = time.perf_counter()
    for batch in loader:
        audio += int(batch["lengths"].sum())
    wall = time.perf_counter() - t0
    sec = audio / 16000
    return {"workers": workers, "audio_s": round(sec, 1), "wall_s": round(wall, 2),
            "x_realtime": round(sec / wall, 1), "x_realtime_per_worker": round(sec / wall / max(1, workers), 1)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--minutes", type=float, default=10.0, help="audio in the synthetic corpus")
    ap.add_argument("--workers", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--max-tokens", type=int, default=1_600_000)
    ap.add_argument("--source-sr", type=int, default=16000,
                    help="sample rate of the FLAC files (not 16000: the loader resamples with soxr)")
    ap.add_argument("--dir", type=Path, default=None, help="reuse/keep the corpus here")
    args = ap.parse_args()
    import torch

    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        root = args.dir or Path(tmp)
        root.mkdir(parents=True, exist_ok=True)
        manifest = root / "train.tsv"
        if not manifest.is_file():
            t0 = time.perf_counter()
            make_corpus(root, args.minutes, sr=args.source_sr)
            print(f"wrote {args.minutes} min of FLAC in {time.perf_counter() - t0:.1f} s")
        run(manifest, 0, args.max_tokens)  # warm the page cache
        for w in args.workers:
            print(json.dumps(run(manifest, w, args.max_tokens)))


if __name__ == "__main__":
    main()
