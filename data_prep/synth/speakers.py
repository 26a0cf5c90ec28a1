"""Synthetic speakers: stable eSpeak NG voice variants, and speaker-disjoint train/dev/test splits.

A :class:`Speaker` is a deterministic draw (from the corpus seed, language and index) of formant
scalings, base pitch and range, speaking rate, breathiness, flutter, roughness and synthesis engine
(eSpeak's default formant synthesizer or its Klatt variants). Its variant file (eSpeak syntax) is what
makes it a stable identity: every utterance of a speaker uses the same file.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np

from .espeak import ESPEAK_ACCENTS, ESPEAK_VOICES

SPLITS = ("train", "dev", "test")


@dataclass(frozen=True)
class Speaker:
    """One synthetic speaker. ``index`` is its position in its language; ``sid`` a corpus-unique integer id."""

    lang: str
    index: int
    sid: int
    gender: str  # "m" | "f"
    pitch_base: int  # Hz
    pitch_top: int  # Hz
    formant_freq: tuple[int, ...]  # % scaling of formants 0..5
    formant_height: tuple[int, ...]  # % amplitude of formants 0..5
    formant_width: tuple[int, ...]  # % bandwidth of formants 0..5
    breath: int  # 0..40 aspiration level on the upper formants
    flutter: int  # 0..40 pitch jitter
    roughness: int  # 0..4 creak
    klatt: int  # 0 = default engine, 1..4 = Klatt variants
    rate: int  # words per minute
    tone: int  # 0..2: small spectral tilt choice (tone curve)
    voice: str = ""  # eSpeak NG voice (the language's main voice or a regional accent)

    @property
    def variant_name(self) -> str:
        return f"ssl_{self.lang}_{self.index:03d}"

    @property
    def name(self) -> str:
        return f"synth-{self.lang}-{self.index:03d}"

    def variant_text(self) -> str:
        """The eSpeak NG voice variant file for this speaker."""
        lines = ["language variant", f"name {self.variant_name}",
                 f"gender {'male' if self.gender == 'm' else 'female'}",
                 f"pitch {self.pitch_base} {self.pitch_top}"]
        for k, (f, h, w) in enumerate(zip(self.formant_freq, self.formant_height, self.formant_width)):
            lines.append(f"formant {k} {f} {h} {w}")
        if self.breath:
            b = self.breath
            lines.append(f"breath 0 {b // 2} {b} {b} {b} {b} {b} {b // 2}")
            lines.append("breathw 150 150 200 200 400 400")
        lines.append(f"flutter {self.flutter}")
        if self.roughness:
            lines.append(f"roughness {self.roughness}")
        if self.klatt:
            lines.append(f"klatt {self.klatt}")
        tones = ["", "tone 600 170 1200 135 2000 110", "tone 300 250 1000 200 3500 70"]
        if tones[self.tone]:
            lines.append(tones[self.tone])
        return "\n".join(lines) + "\n"


def _rng(seed: int, *keys: str | int) -> np.random.Generator:
    digest = hashlib.sha256(repr((seed,) + keys).encode()).digest()
    return np.random.default_rng(int.from_bytes(digest[:8], "little"))


def make_speakers(lang: str, n: int, seed: int, lang_index: int = 0, accent_prob: float = 0.5) -> list[Speaker]:
    """``n`` distinct speakers for ``lang``; the same (lang, n, seed) always gives the same speakers.

    Genders alternate; pitch, formants and rate are spread so that speakers differ measurably. Where eSpeak
    NG has regional voices for the language (``espeak.ESPEAK_ACCENTS``), a speaker speaks one of them with
    probability ``accent_prob`` (uniformly), otherwise the main voice.
    Ids are distinct integers in ``1000 * (lang_index + 1) + [1, 900)`` (LibriSpeech-like, unique per corpus).
    """
    if n < 1:
        raise ValueError(f"need at least one speaker, got {n}")
    out = []
    for i in range(n):
        r = _rng(seed, "speaker", lang, i)
        gender = "m" if i % 2 == 0 else "f"
        if gender == "m":
            # stratify base pitch over the speakers so neighbours differ
            base = int(70 + (i // 2) * (60 / max(1, n // 2)) + r.uniform(0, 6))
            fscale = r.integers(86, 104, size=6)
        else:
            base = int(140 + (i // 2) * (90 / max(1, n // 2)) + r.uniform(0, 8))
            fscale = r.integers(100, 120, size=6)
        top = int(base * r.uniform(1.25, 1.9))
        height = r.integers(75, 125, size=6)
        width = r.integers(70, 170, size=6)
        fscale[0] = 100
        accents = ESPEAK_ACCENTS.get(lang, ())
        voice = ESPEAK_VOICES.get(lang, lang)
        ra = _rng(seed, "accent", lang, i)  # a stream of its own: the other draws stay as they were
        if accents and ra.random() < accent_prob:
            voice = accents[int(ra.integers(len(accents)))]
        out.append(Speaker(
            lang=lang, index=i, sid=0,
            gender=gender, pitch_base=base, pitch_top=top,
            formant_freq=tuple(int(x) for x in fscale), formant_height=tuple(int(x) for x in height),
            formant_width=tuple(int(x) for x in width),
            breath=int(r.choice([0, 0, 0, 8, 15, 25])), flutter=int(r.integers(0, 30)),
            roughness=int(r.choice([0, 0, 0, 1, 2, 3])), klatt=int(r.choice([0, 0, 0, 1, 2, 3])),
            rate=int(r.integers(140, 200)), tone=int(r.integers(0, 3)), voice=voice,
        ))
    # unique LibriSpeech-style ids: distinct integers drawn per language block
    r = _rng(seed, "ids", lang)
    ids = r.choice(np.arange(1, 900), size=n, replace=False) + 1000 * (lang_index + 1)
    return [Speaker(**{**s.__dict__, "sid": int(i)}) for s, i in zip(out, ids)]


def split_speakers(speakers: list[Speaker], n_dev: int, n_test: int) -> dict[str, list[Speaker]]:
    """Speaker-disjoint split: the last ``n_test`` are test, the ``n_dev`` before them dev, the rest train.

    Genders alternate in :func:`make_speakers`, so each split gets both when it has two or more.
    """
    n = len(speakers)
    if n - n_dev - n_test < 1 or n_dev < 1 or n_test < 1:
        raise ValueError(f"{n} speakers cannot be split into train/dev({n_dev})/test({n_test})")
    return {
        "train": speakers[: n - n_dev - n_test],
        "dev": speakers[n - n_dev - n_test: n - n_test],
        "test": speakers[n - n_test:],
    }
