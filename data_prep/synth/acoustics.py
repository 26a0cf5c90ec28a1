"""Acoustic post-processing of synthesized speech: speaking style, speed perturbation, loudness, silences,
noise (coloured or babble), reverberation, channels (telephone band + mu-law, MP3 / Opus at low bitrates),
resampling.

All functions take float32 mono signals in [-1, 1] and an explicit ``numpy.random.Generator`` so that
outputs are deterministic for a given seed. Every draw is returned in a dict that the corpus records per
utterance (label columns ``style``, ``augment``, ``channel``).
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np


@dataclass
class AcousticsConfig:
    """Per-utterance randomisation ranges (uniform draws)."""

    level_db: tuple[float, float] = (-32.0, -18.0)  # RMS of the speech part, dBFS
    lead_silence: tuple[float, float] = (0.05, 0.6)  # seconds
    trail_silence: tuple[float, float] = (0.05, 0.6)
    noise_floor_db: float = -75.0  # always-on faint noise (no digital silence)
    augment_prob: float = 0.0  # probability of noise + reverb on an utterance
    snr_db: tuple[float, float] = (5.0, 30.0)
    rt60: tuple[float, float] = (0.15, 0.6)  # seconds
    reverb_prob: float = 0.5  # given augmentation, probability of reverberation
    babble_prob: float = 0.4  # given noise, probability that it is babble (other speakers of the corpus)
    babble_talkers: tuple[int, int] = (3, 6)  # talkers summed into babble (inclusive)
    # speaking style per utterance, on top of the speaker's voice (eSpeak parameters)
    rate_jitter: tuple[float, float] = (0.9, 1.1)  # x the speaker's words per minute
    pitch: tuple[int, int] = (35, 65)  # eSpeak pitch parameter (50 = the voice's own)
    pitch_range: tuple[int, int] = (25, 85)  # eSpeak pitch range (50 = the voice's own; 0 = monotone)
    word_gap: tuple[int, int] = (0, 3)  # extra pause between words, x 10 ms (inclusive)
    speed_prob: float = 0.5  # probability of speed perturbation (resampling: tempo and pitch together)
    speed: tuple[float, float] = (0.9, 1.1)
    # channels (per layout: CommonVoice clips are MP3, BABEL calls telephone band + mu-law)
    mp3_quality: tuple[float, float] = (0.5, 0.99)  # libsndfile compression level, VBR: ~70 .. ~35 kbit/s here
    # CommonVoice: probability of an Opus round trip (16 kHz, low bitrate) before MP3. libopus costs ~0.04 CPU-s per
    # audio second, so a few percent of the clips keep generation above 50x real time per core
    opus_prob: float = 0.1
    opus_quality: tuple[float, float] = (0.9, 0.99)  # ~30 .. ~9 kbit/s


def speaking_style(cfg: AcousticsConfig, rng: np.random.Generator) -> dict:
    """One utterance's speaking style: rate factor, eSpeak pitch / range / word gap, speed factor (1.0 = none)."""
    style = {"rate": round(float(rng.uniform(*cfg.rate_jitter)), 3),
             "pitch": int(rng.integers(cfg.pitch[0], cfg.pitch[1] + 1)),
             "range": int(rng.integers(cfg.pitch_range[0], cfg.pitch_range[1] + 1)),
             "gap": int(rng.integers(cfg.word_gap[0], cfg.word_gap[1] + 1))}
    speed = float(rng.uniform(*cfg.speed)) if rng.random() < cfg.speed_prob else 1.0
    style["speed"] = round(speed, 3)
    return style


def speed_perturb(x: np.ndarray, factor: float) -> np.ndarray:
    """Kaldi/sox-style speed perturbation: (N,) -> (~N / factor,), tempo and pitch scaled by ``factor``."""
    if factor == 1.0:
        return x
    import soxr

    return soxr.resample(x, 1000.0 * factor, 1000.0, quality="HQ").astype(np.float32)


def babble(n: int, talkers: list[np.ndarray], rng: np.random.Generator) -> np.ndarray:
    """(n,) unit-RMS babble: each talker's speech (unit RMS, looped from a random offset) summed."""
    y = np.zeros(n, np.float32)
    for x in talkers:
        x = x / (np.sqrt(np.mean(np.square(x, dtype=np.float64))) + 1e-12)
        start = int(rng.integers(0, x.size))
        reps = -(-(n + start) // x.size)
        y += np.tile(x.astype(np.float32), reps)[start: start + n]
    return (y / (np.sqrt(np.mean(np.square(y, dtype=np.float64))) + 1e-12)).astype(np.float32)


def opus_round_trip(x: np.ndarray, rate: int, quality: float) -> tuple[np.ndarray, float]:
    """Encode (N,) ``x`` as Ogg Opus (libsndfile compression level ``quality``) and decode it; returns the
    decoded signal (N,) and the bitrate in kbit/s. ``rate`` must be one of Opus's (8, 12, 16, 24, 48 kHz)."""
    import soundfile as sf

    buf = io.BytesIO()
    sf.write(buf, x, rate, format="OGG", subtype="OPUS", compression_level=quality)
    kbps = len(buf.getvalue()) * 8 / max(1e-9, x.size / rate) / 1000
    buf.seek(0)
    y, _ = sf.read(buf, dtype="float32")
    y = y[: x.size]
    if y.size < x.size:
        y = np.concatenate([y, np.zeros(x.size - y.size, np.float32)])
    return y, kbps


def rms_db(x: np.ndarray) -> float:
    """RMS level in dBFS of x (N,); -inf-safe."""
    return float(10 * np.log10(np.mean(np.square(x, dtype=np.float64)) + 1e-20))


def colored_noise(n: int, rng: np.random.Generator, exponent: float) -> np.ndarray:
    """(n,) float32 noise with power spectrum ~ 1/f^exponent (0 white, 1 pink, 2 brown), unit RMS."""
    nfft = 1 << max(0, (n - 1).bit_length())  # power of two: pocketfft is slow on prime-ish lengths
    spec = np.fft.rfft(rng.standard_normal(nfft).astype(np.float32))
    if exponent:
        f = np.arange(spec.size, dtype=np.float32)
        f[0] = 1.0
        spec *= f ** np.float32(-exponent / 2)
    x = np.fft.irfft(spec, nfft)[:n]
    return (x / (np.sqrt(np.mean(x * x)) + 1e-12)).astype(np.float32)


def room_impulse(rate: int, rt60: float, rng: np.random.Generator) -> np.ndarray:
    """A simple room impulse response: direct path, a few early reflections, exponentially decaying
    diffuse tail whose energy falls 60 dB after ``rt60`` seconds. (K,) float32, peak 1 at t=0."""
    k = int(rate * rt60)
    t = np.arange(k) / rate
    tail = rng.standard_normal(k) * np.exp(-6.9078 * t / rt60)  # ln(1000) = 6.9078: -60 dB amplitude
    tail[: int(0.003 * rate)] = 0.0
    h = 0.35 * tail
    for _ in range(4):
        d = int(rng.uniform(0.003, 0.03) * rate)
        if d < k:
            h[d] += rng.uniform(0.2, 0.5) * rng.choice([-1.0, 1.0])
    h[0] = 1.0
    return h.astype(np.float32)


def fft_convolve(x: np.ndarray, h: np.ndarray) -> np.ndarray:
    """Linear convolution truncated to len(x)."""
    n = x.size + h.size - 1
    nfft = 1 << (n - 1).bit_length()
    y = np.fft.irfft(np.fft.rfft(x, nfft) * np.fft.rfft(h, nfft), nfft)[: x.size]
    return y.astype(np.float32)


def process(speech: np.ndarray, rate: int, cfg: AcousticsConfig, rng: np.random.Generator,
            augment: bool | None = None, talkers: list[np.ndarray] | None = None) -> tuple[np.ndarray, int, dict]:
    """Level, pad with silence, optionally reverberate and add noise.

    speech: (N,) float32. Returns (signal (M,) float32, lead samples added, info dict with the draws).
    ``augment`` None draws it with ``cfg.augment_prob``. ``talkers``: speech of other speakers (each (K,)
    at ``rate``) to make babble from; without them noise is coloured (white, pink or brown).
    """
    x = speech.astype(np.float32)
    level = rng.uniform(*cfg.level_db)
    x *= np.float32(10 ** ((level - rms_db(x)) / 20)) if x.size else np.float32(1)
    lead = int(rng.uniform(*cfg.lead_silence) * rate)
    trail = int(rng.uniform(*cfg.trail_silence) * rate)
    y = np.concatenate([np.zeros(lead, np.float32), x, np.zeros(trail, np.float32)])
    info = {"level_db": round(level, 2)}
    if augment is None:
        augment = bool(rng.random() < cfg.augment_prob)
    if augment:
        if rng.random() < cfg.reverb_prob:
            rt60 = float(rng.uniform(*cfg.rt60))
            y = fft_convolve(y, room_impulse(rate, rt60, rng))
            y *= np.float32(10 ** ((level - rms_db(y[lead: lead + x.size])) / 20))
            info["rt60"] = round(rt60, 3)
        snr = float(rng.uniform(*cfg.snr_db))
        if talkers and rng.random() < cfg.babble_prob:
            lo, hi = cfg.babble_talkers
            k = min(len(talkers), int(rng.integers(lo, hi + 1)))
            picks = rng.choice(len(talkers), size=k, replace=False)
            noise = babble(y.size, [talkers[i] for i in sorted(picks)], rng)
            info["noise"] = f"babble{k}"
        else:
            exponent = float(rng.choice([0.0, 1.0, 2.0]))
            noise = colored_noise(y.size, rng, exponent)
            info["noise"] = ("white", "pink", "brown")[int(exponent)]
        y += noise * np.float32(10 ** ((level - snr) / 20))
        info["snr_db"] = round(snr, 2)
    y += colored_noise(y.size, rng, 1.0) * np.float32(10 ** (cfg.noise_floor_db / 20))
    peak = float(np.abs(y).max()) if y.size else 0.0
    if peak > 0.99:
        y *= np.float32(0.99 / peak)
    return y, lead, info


def resample(x: np.ndarray, rate_in: int, rate_out: int) -> np.ndarray:
    """soxr high-quality resampling of (N,) float32."""
    if rate_in == rate_out:
        return x
    import soxr

    return soxr.resample(x, rate_in, rate_out, quality="HQ").astype(np.float32)


def estimate_f0(x: np.ndarray, rate: int, fmin: float = 60.0, fmax: float = 400.0) -> float:
    """Median F0 (Hz) of (N,) ``x`` over voiced 40 ms frames (normalized autocorrelation peak > 0.5);
    0.0 when no frame is voiced. Frames below 10% of the loudest frame's energy are skipped."""
    n = int(0.04 * rate)
    lo, hi = int(rate / fmax), int(rate / fmin)
    if len(x) < n:
        return 0.0
    frames = x[: len(x) // n * n].reshape(-1, n).astype(np.float64)
    frames -= frames.mean(1, keepdims=True)
    energy = (frames**2).mean(1)
    frames = frames[energy > 0.1 * energy.max()]
    if not len(frames):
        return 0.0
    spec = np.fft.rfft(frames, 2 * n, axis=1)
    ac = np.fft.irfft(np.abs(spec) ** 2, 2 * n, axis=1)[:, :n]
    ac /= ac[:, :1] + 1e-12
    lag = lo + np.argmax(ac[:, lo:hi], axis=1)
    peak = ac[np.arange(len(ac)), lag]
    voiced = peak > 0.5
    return float(np.median(rate / lag[voiced])) if voiced.any() else 0.0


def telephone_band(x: np.ndarray, rate: int, lo: float = 300.0, hi: float = 3400.0) -> np.ndarray:
    """Telephone channel: (N,) float32 band-limited to [lo, hi] Hz (FFT mask with 100 Hz cosine edges)."""
    nfft = 1 << max(0, (x.size - 1).bit_length())
    spec = np.fft.rfft(x, nfft)
    f = np.fft.rfftfreq(nfft, 1.0 / rate)
    edge = 100.0
    gain = np.clip((f - (lo - edge)) / edge, 0, 1) * np.clip(((hi + edge) - f) / edge, 0, 1)
    gain = 0.5 - 0.5 * np.cos(np.pi * gain)
    return np.fft.irfft(spec * gain, nfft)[: x.size].astype(np.float32)

