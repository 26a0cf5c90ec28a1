"""Synthetic-corpus throughput, end to end: eSpeak NG -> acoustics -> soxr -> FLAC/MP3/SPHERE + index files.

    OMP_NUM_THREADS=1 .venv/bin/python bench/bench_synth.py [--minutes 3] [--languages en,de,tr] [--workers 1 2]

For each worker count, builds a corpus (``data_prep.synth.corpus.build``: planning, fresh worker processes,
writing every layout and label file) in a temporary folder and reports

- ``x_realtime_per_core``: audio seconds / wall seconds / workers (the issue's goal: >= 50);
- ``x_realtime_per_cpu_second``: audio seconds / CPU seconds of the build (this process's share plus
  every worker process, start-up included), which does not depend on other load on a shared machine.

Then a per-stage profile in this process (one core) for each output format: seconds of CPU per second
of audio for synthesis, acoustics (level, silences, noise floor, optional noise+reverb), resampling
and encoding. The machine is shared: run it when idle, and quote the CPU-second figure otherwise.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np


def end_to_end(languages: list[str], minutes: float, workers: int, augment: float) -> dict:
    from data_prep.synth.corpus import SynthConfig, build

    with tempfile.TemporaryDirectory(prefix="bench-synth-") as tmp:
        cfg = SynthConfig(out=tmp, languages=languages, minutes_per_language=minutes,
                          babel_languages=[x for x in ("tr",) if x in languages], babel_minutes=minutes,
                          librilight_scale=minutes / 600 * 2, augment_prob=augment, workers=workers,
                          progress=False)
        c0, t0 = time.process_time(), time.perf_counter()
        summary = build(cfg)
        wall = time.perf_counter() - t0
        cpu = time.process_time() - c0 + summary["worker_cpu_seconds"]
        size = sum(p.stat().st_size for p in Path(tmp).rglob("*") if p.is_file())
    sec = summary["audio_seconds"]
    return {"workers": workers, "files": summary["files"], "audio_minutes": round(sec / 60, 2),
            "wall_s": round(wall, 2), "cpu_s": round(cpu, 2), "MB": round(size / 2**20, 1),
            "x_realtime_per_core": round(sec / wall / workers, 1),
            "x_realtime_per_cpu_second": round(sec / cpu, 1)}


def stages(n: int = 40) -> dict:
    from data_prep.synth.acoustics import AcousticsConfig, process, resample
    from data_prep.synth.corpus import _encode
    from data_prep.synth.espeak import ESPEAK_RATE, get_engine
    from data_prep.synth.speakers import make_speakers
    from data_prep.synth.text import Grammar

    eng = get_engine()
    spk = make_speakers("en", 8, 0)
    for s in spk:
        eng.write_variant(s.variant_name, s.variant_text())
    texts = Grammar("en").sample(n, np.random.default_rng(0))
    rng = np.random.default_rng(0)
    acfg = AcousticsConfig(augment_prob=0.3)
    out: dict[str, float] = {}
    audio = 0.0
    ys = []
    t = time.process_time()
    res = [eng.synthesize(x, "en-US", spk[i % 8].variant_name, rate=spk[i % 8].rate, seed=i) for i, x in enumerate(texts)]
    out["synthesize"] = time.process_time() - t
    t = time.process_time()
    for r in res:
        y, _, _ = process(r.samples.astype(np.float32) / 32768, ESPEAK_RATE, acfg, rng)
        ys.append(y)
        audio += y.size / ESPEAK_RATE
    out["acoustics"] = time.process_time() - t
    for fmt, rate in (("flac", 16000), ("mp3", 48000), ("sph", 8000)):
        t = time.process_time()
        zs = [resample(y, ESPEAK_RATE, rate) for y in ys]
        out[f"resample_{rate}"] = time.process_time() - t
        t = time.process_time()
        for z in zs:
            _encode(z, rate, fmt)
        out[f"encode_{fmt}"] = time.process_time() - t
    return {"audio_s": round(audio, 1), **{f"{k}_cpu_per_audio_s": round(v / audio, 5) for k, v in out.items()}}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--minutes", type=float, default=3.0, help="minutes per language")
    p.add_argument("--languages", default="en,de,tr")
    p.add_argument("--workers", type=int, nargs="+", default=[1])
    p.add_argument("--augment-prob", type=float, default=0.3)
    a = p.parse_args()
    langs = [x for x in a.languages.split(",") if x]
    for w in a.workers:
        print(json.dumps({"end_to_end": end_to_end(langs, a.minutes, w, a.augment_prob)}), flush=True)
    print(json.dumps({"stages_one_core": stages()}))


if __name__ == "__main__":
    main()
