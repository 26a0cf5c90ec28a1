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
    """CPU seconds per audio second of each step of ``corpus.render``, one core, English sentences."""
    from data_prep.synth.acoustics import (
        AcousticsConfig,
        opus_round_trip,
        process,
        resample,
        speaking_style,
        speed_perturb,
    )
    from data_prep.synth.corpus import _encode
    from data_prep.synth.espeak import ESPEAK_RATE, get_engine
    from data_prep.synth.speakers import make_speakers
    from data_prep.synth.text import shipped_sentences

    eng = get_engine()
    spk = make_speakers("en", 8, 0)
    for s in spk:
        eng.write_variant(s.variant_name, s.variant_text())
    texts = shipped_sentences("en")[:n]
    rng = np.random.default_rng(0)
    acfg = AcousticsConfig(augment_prob=0.3)
    out: dict[str, float] = {}
    audio = 0.0
    t = time.process_time()
    res = []
    for i, x in enumerate(texts):
        st = speaking_style(acfg, rng)
        r = eng.synthesize(x, spk[i % 8].voice, spk[i % 8].variant_name, rate=int(spk[i % 8].rate * st["rate"]),
                           pitch=st["pitch"], pitch_range=st["range"], word_gap=st["gap"], seed=i)
        res.append((r.samples.astype(np.float32) / 32768, st["speed"]))
    out["synthesize"] = time.process_time() - t
    t = time.process_time()
    speech = [speed_perturb(x, f) for x, f in res]
    out["speed_perturb"] = time.process_time() - t
    t = time.process_time()
    ys = []
    for k, x in enumerate(speech):
        y, _, _ = process(x, ESPEAK_RATE, acfg, rng, talkers=speech[max(0, k - 6): k])
        ys.append(y)
        audio += y.size / ESPEAK_RATE
    out["acoustics"] = time.process_time() - t
    for fmt, rate in (("flac", 16000), ("mp3", 48000), ("sph", 8000)):
        t = time.process_time()
        zs = [resample(y, ESPEAK_RATE, rate) for y in ys]
        out[f"resample_{rate}"] = time.process_time() - t
        t = time.process_time()
        for z in zs:
            _encode(z, rate, fmt, quality=float(rng.uniform(*acfg.mp3_quality)) if fmt == "mp3" else None)
        out[f"encode_{fmt}"] = time.process_time() - t
    t = time.process_time()
    share = ys[: max(1, round(len(ys) * acfg.opus_prob))]
    for y in share:  # as corpus.render: 16 kHz Opus on opus_prob of the CommonVoice clips
        opus_round_trip(resample(y, ESPEAK_RATE, 16000), 16000, float(rng.uniform(*acfg.opus_quality)))
    out["opus_round_trip_share"] = time.process_time() - t
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
