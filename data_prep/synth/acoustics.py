"""Acoustic post-processing of synthesized speech: loudness, silences, noise, reverberation, resampling.

All functions take float32 mono signals in [-1, 1] and an explicit ``numpy.random.Generator`` so that
outputs are deterministic for a given seed.
"""

from __future__ import annotations

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
            augment: bool | None = None) -> tuple[np.ndarray, int, dict]:
    """Level, pad with silence, optionally reverberate and add noise.

    speech: (N,) float32. Returns (signal (M,) float32, lead samples added, info dict with the draws).
    ``augment`` None draws it with ``cfg.augment_prob``.
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
        noise = colored_noise(y.size, rng, float(rng.choice([0.0, 1.0, 2.0])))
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
