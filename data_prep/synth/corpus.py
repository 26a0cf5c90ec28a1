"""Build the synthetic corpus: plan utterances, synthesize them in parallel, write the real layouts.

Layouts under ``cfg.out`` (the real corpora's, so the real-corpus readers run unchanged):

- ``LibriSpeech/{train-clean-100,dev-clean,test-clean}/SPK/CHAP/SPK-CHAP-UUUU.flac`` (16 kHz FLAC),
  ``SPK-CHAP.trans.txt`` (upper case), ``LibriSpeech/SPEAKERS.TXT``, ``CHAPTERS.TXT`` — English;
- ``librispeech_finetuning/1h/{0..5}/{clean,other}/SPK/CHAP/...`` and ``9h/{clean,other}/...``
  (Libri-light limited-resource sets; durations = real ones × ``librilight_scale``) — English;
- ``cv-corpus-<ver>/<lang>/clips/common_voice_<lang>_<n>.mp3`` (48 kHz MP3) with ``train.tsv``,
  ``dev.tsv``, ``test.tsv``, ``validated.tsv`` (+ empty ``invalidated.tsv``, ``other.tsv``) in
  CommonVoice's columns and ``clip_durations.tsv`` — every other language;
- ``IARPA-babel<code>b-v0.5/conversational/{training,dev}/{audio/*.sph,transcription/*.txt}``
  (8 kHz NIST SPHERE conversations, transcripts with ``[seconds]`` lines) — ``babel_languages``;
- ``labels/<layout>/<subset>.tsv``: words, letters, IPA phones and phone/word onsets per utterance
  (or conversation segment) and the acoustic draws (``style``, ``augment``, ``channel``);
- ``lm_text/<lang>.txt``: the language's sentences that no split reads (normalized words), for language
  models that have seen no dev or test sentence; ``synth_info.json``: the arguments, speakers and measured
  durations.

Determinism: every random draw comes from a generator keyed by (seed, names...), never by worker or
order of completion; encoders (libsndfile FLAC / LAME MP3 / SPHERE) are deterministic, so the same
arguments give byte-identical files.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import shutil
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import soundfile as sf

from speech_ssl.data.audio import SAMPLE_RATE
from speech_ssl.errors import DataError
from speech_ssl.files import atomic_write_bytes

from .acoustics import (
    AcousticsConfig,
    opus_round_trip,
    process,
    resample,
    speaking_style,
    speed_perturb,
    telephone_band,
)
from .espeak import ESPEAK_RATE, ESPEAK_VOICES, get_engine
from .speakers import Speaker, _rng, make_speakers, split_speakers
from .text import LANGUAGES, letters, normalize_words, read_text_file, shipped_sentences, split_sentences

CV_VERSION = "cv-corpus-1.0-synth"
CV_COLUMNS = ["client_id", "path", "sentence_id", "sentence", "sentence_domain", "up_votes", "down_votes",
              "age", "gender", "accents", "variant", "locale", "segment"]
LABEL_COLUMNS = ["id", "path", "lang", "speaker", "start", "end", "words", "letters", "phones",
                 "phone_onsets", "word_onsets", "augment", "style", "channel"]
LS_SUBSETS = {"train": "train-clean-100", "dev": "dev-clean", "test": "test-clean"}
# Real BABEL language codes where one exists; others get a 9xx code.
BABEL_CODES = {"tr": 105, "vi": 107, "ht": 201, "sw": 202, "kk": 302, "ka": 404, "ky": 901, "tt": 902}
SHARD_SIZE = 48  # jobs per fresh worker process (see _run_jobs; each start costs ~0.3 CPU-s)
DEFAULT_LANGUAGES = ("en", "de", "fr", "es", "it", "nl", "pt", "ru", "sv", "tr", "et", "fi")


@dataclass
class SynthConfig:
    """Arguments of ``speech-ssl prepare synth`` (see ``cli.add_arguments`` for the meaning of each)."""

    out: str = "data/synth"
    languages: list[str] = field(default_factory=lambda: list(DEFAULT_LANGUAGES))
    minutes_per_language: float = 2.0
    english_minutes: float | None = None  # overrides minutes_per_language for en
    seed: int = 0
    speakers_per_language: int = 40
    dev_speakers: int = 5
    test_speakers: int = 5
    dev_fraction: float = 0.1
    test_fraction: float = 0.1
    # dev and test minutes (each) for these languages instead of the fractions; training audio unchanged
    eval_minutes: dict[str, float] = field(default_factory=dict)
    text_dir: str | None = None
    babel_languages: list[str] = field(default_factory=lambda: ["tr"])
    babel_minutes: float = 2.0
    librilight_scale: float = 0.005
    augment_prob: float = 0.3  # CommonVoice and BABEL; LibriSpeech 'clean' is never augmented
    workers: int = 0  # 0: all cores
    progress: bool = True

    def __post_init__(self):
        if self.minutes_per_language <= 0:
            raise ValueError("minutes_per_language must be > 0")
        if self.dev_speakers < 1 or self.test_speakers < 1 or (
                self.speakers_per_language - self.dev_speakers - self.test_speakers < 1):
            raise ValueError(f"{self.speakers_per_language} speakers per language cannot be split into "
                             f"train / dev ({self.dev_speakers}) / test ({self.test_speakers})")
        if len(set(self.languages)) != len(self.languages) or not self.languages:
            raise ValueError(f"languages must be distinct and non-empty, got {self.languages}")
        for lang in self.languages:
            has_text = self.text_dir is not None and (Path(self.text_dir) / f"{lang}.txt").is_file()
            if lang not in LANGUAGES and not has_text:
                raise ValueError(f"no sentences for language {lang!r} (built in: {', '.join(LANGUAGES)}); "
                                 f"give its sentences in --text-dir DIR/{lang}.txt")
        if not (0 < self.dev_fraction < 1 and 0 < self.test_fraction < 1
                and self.dev_fraction + self.test_fraction < 1):
            raise ValueError("dev_fraction and test_fraction must be in (0, 1) with a sum below 1")
        bad = {k: v for k, v in self.eval_minutes.items() if k not in self.languages or v <= 0}
        if bad:
            raise ValueError(f"eval_minutes {bad}: each must name one of the languages with minutes > 0")
        if self.babel_minutes < 0 or self.librilight_scale < 0 or not 0 <= self.augment_prob <= 1:
            raise ValueError("babel_minutes and librilight_scale must be >= 0, augment_prob in [0, 1]")


@dataclass
class Job:
    """One output audio file: one or more sentences from one speaker."""

    key: str  # labels id (utterance id, or conversation id)
    layout: str  # librispeech | librilight | commonvoice | babel
    subset: str
    lang: str
    speaker: Speaker
    texts: list[str]
    path: str  # relative to out
    fmt: str  # flac | mp3 | sph
    rate: int
    augment: bool | None
    seed: int


# --------------------------------------------------------------------------------------- workers

_WORKER_STATE: dict[str, object] = {}


def _init_worker(tmp_root: str, out: str, acoustics: AcousticsConfig) -> None:
    """Worker start: its own eSpeak engine with a private data folder under ``tmp_root``."""
    get_engine(tmp_root=tmp_root)
    _WORKER_STATE.update(out=out, acoustics=acoustics)


def _encode(y: np.ndarray, rate: int, fmt: str, quality: float | None = None) -> bytes:
    """Encode (N,) float32: FLAC 16-bit, MP3 (VBR at libsndfile compression level ``quality``; None = the
    library default), or NIST SPHERE 8-bit mu-law (BABEL's telephone audio)."""
    buf = io.BytesIO()
    if fmt == "flac":
        sf.write(buf, y, rate, format="FLAC", subtype="PCM_16")
    elif fmt == "mp3":
        extra = {} if quality is None else {"compression_level": quality, "bitrate_mode": "VARIABLE"}
        sf.write(buf, y, rate, format="MP3", subtype="MPEG_LAYER_III", **extra)
    elif fmt == "sph":
        sf.write(buf, y, rate, format="NIST", subtype="ULAW")
    else:
        raise ValueError(fmt)
    return buf.getvalue()


def write_atomic(path: Path, data: bytes | str) -> None:
    """Write ``data`` atomically; no fsync (audio and tables regenerate from the seed, and the corpus is
    marked complete only at the end)."""
    atomic_write_bytes(path, data.encode("utf-8") if isinstance(data, str) else data, fsync=False)


BABBLE_POOL = 12  # recent utterances a worker keeps (at eSpeak's rate) to make babble from


def _synthesize(eng, job: Job, text: str, acfg: AcousticsConfig, rng: np.random.Generator):
    """One sentence in the job's speaker's voice with a drawn speaking style; returns (speech (N,) float32
    at ESPEAK_RATE, eSpeak's result, style dict). Onsets in the result are scaled to the returned signal."""
    style = speaking_style(acfg, rng)
    res = eng.synthesize(text, job.speaker.voice, job.speaker.variant_name,
                         rate=int(round(job.speaker.rate * style["rate"])), pitch=style["pitch"],
                         pitch_range=style["range"], word_gap=style["gap"], seed=int(rng.integers(2**31)))
    speech = speed_perturb(res.samples.astype(np.float32) / 32768.0, style["speed"])
    if style["speed"] != 1.0:
        res.phone_starts = [int(v / style["speed"]) for v in res.phone_starts]
        res.word_starts = [int(v / style["speed"]) for v in res.word_starts]
    return speech, res, style


def _talkers(sid: int) -> list[np.ndarray]:
    """Recent speech of other speakers in this worker (the babble source; empty at a shard's start)."""
    return [x for s, x in _WORKER_STATE.get("recent", []) if s != sid]  # type: ignore[union-attr]


def _remember(sid: int, speech: np.ndarray) -> None:
    recent = _WORKER_STATE.setdefault("recent", [])
    recent.append((sid, speech))  # type: ignore[union-attr]
    del recent[:-BABBLE_POOL]  # type: ignore[union-attr]


def render(job: Job) -> dict:
    """Synthesize, post-process, resample, pass through the layout's channel and write one job; returns its
    labels and duration.

    Babble comes from the speech this worker rendered before in the same shard (shards are rendered in order
    in fresh processes, so it is deterministic too); a shard's first utterances get coloured noise.
    """
    eng = get_engine()
    acfg: AcousticsConfig = _WORKER_STATE["acoustics"]  # type: ignore[assignment]
    rng = np.random.default_rng(job.seed)
    pieces, segments = [], []
    pos = 0  # samples at 22050 Hz
    conv = len(job.texts) > 1
    eng.write_variant(job.speaker.variant_name, job.speaker.variant_text())
    talkers = _talkers(job.speaker.sid)
    for text in job.texts:
        speech, res, style = _synthesize(eng, job, text, acfg, rng)
        if conv:
            # conversation turns: quieter pauses between; level varies less within a call
            c = AcousticsConfig(**{**asdict(acfg), "lead_silence": (0.3, 2.0), "trail_silence": (0.0, 0.1),
                                   "augment_prob": 0.0, "noise_floor_db": -200.0})
            y, lead, info = process(speech, ESPEAK_RATE, c, rng, augment=False)
        else:
            y, lead, info = process(speech, ESPEAK_RATE, acfg, rng, augment=job.augment, talkers=talkers)
        start = pos + lead
        segments.append({
            "text": text, "start": start, "end": start + speech.size,
            "phones": res.phones, "phone_onsets": [start + s for s in res.phone_starts],
            "word_onsets": [start + s for s in res.word_starts], "info": info, "style": style,
        })
        pieces.append(y)
        pos += y.size
        _remember(job.speaker.sid, speech)
    y = np.concatenate(pieces)
    channel: dict = {}
    if conv:  # one channel, one call: tail silence, then line noise/reverb over the whole call
        y = np.concatenate([y, np.zeros(int(rng.uniform(0.3, 1.5) * ESPEAK_RATE), np.float32)])
        c = AcousticsConfig(**{**asdict(acfg), "lead_silence": (0.0, 0.0), "trail_silence": (0.0, 0.0),
                               "level_db": (-20.0, -20.0)})
        aug = bool(rng.random() < acfg.augment_prob) if job.augment is None else job.augment
        y, _, info = process(telephone_band(y, ESPEAK_RATE), ESPEAK_RATE, c, rng, augment=aug, talkers=talkers)
        info.pop("level_db", None)
        for s in segments:
            s["info"] = {**s["info"], **info}
        channel = {"telephone": "300-3400", "ulaw": 8}
    out = resample(y, ESPEAK_RATE, job.rate)
    quality = None
    if job.fmt == "mp3":
        if rng.random() < acfg.opus_prob:  # wideband Opus, as a browser recording might have been
            wide, kbps = opus_round_trip(resample(y, ESPEAK_RATE, 16000), 16000, float(rng.uniform(*acfg.opus_quality)))
            out = resample(wide, 16000, job.rate)
            channel["opus_kbps"] = round(kbps, 1)
        quality = round(float(rng.uniform(*acfg.mp3_quality)), 3)
    data = _encode(out, job.rate, job.fmt, quality)
    if quality is not None:
        channel["mp3_kbps"] = round(len(data) * 8 / (out.size / job.rate) / 1000, 1)
    write_atomic(Path(_WORKER_STATE["out"]) / job.path, data)  # type: ignore[arg-type]
    scale = 1.0 / ESPEAK_RATE
    for s in segments:
        for k in ("start", "end"):
            s[k] = round(s[k] * scale, 3)
        s["phone_onsets"] = [round(v * scale, 3) for v in s["phone_onsets"]]
        s["word_onsets"] = [round(v * scale, 3) for v in s["word_onsets"]]
        s["channel"] = channel
    return {"key": job.key, "duration": round(out.size / job.rate, 3), "segments": segments}


# -------------------------------------------------------------------------------------- planning


def _lang_index(lang: str) -> int:
    keys = list(ESPEAK_VOICES)
    return keys.index(lang) if lang in keys else 50 + int(hashlib.sha256(lang.encode()).hexdigest(), 16) % 40


def _seed_of(seed: int, *keys) -> int:
    return int(_rng(seed, *keys).integers(0, 2**63 - 1))


def _seconds_per_char(item: tuple[str, list[str]]) -> float:
    """Worker: speech seconds per character of ``sentences`` in the language's base voice."""
    lang, sentences = item
    eng = get_engine()
    secs = sum(eng.synthesize(s, ESPEAK_VOICES.get(lang, lang), rate=170, seed=1).duration for s in sentences)
    return secs / max(1, sum(len(s) for s in sentences))


class _Estimator:
    """Duration estimate of a sentence from its length, from seconds/char measured once per language."""

    def __init__(self, spc: float, acfg: AcousticsConfig):
        self.spc = spc
        self.pad = (sum(acfg.lead_silence) + sum(acfg.trail_silence)) / 2

    def __call__(self, text: str, speaker: Speaker) -> float:
        return len(text) * self.spc * 170.0 / speaker.rate + self.pad


def _sentence_pools(cfg: SynthConfig, lang: str, need: dict[str, int]) -> dict[str, list[str]]:
    """Sentence-disjoint train/dev/test pools of ``lang`` (``need[split]`` items each) and ``lm``: every other
    sentence of the language's text, for language models (it shares no sentence with any split)."""
    rng = _rng(cfg.seed, "sentences", lang)
    path = Path(cfg.text_dir) / f"{lang}.txt" if cfg.text_dir else None
    if path is not None and path.is_file():
        sentences = read_text_file(path)
    elif lang in LANGUAGES:
        sentences = shipped_sentences(lang)
    else:
        raise DataError(f"no sentences for language {lang!r} (expected {path})", path)
    pools = split_sentences(sentences, need, rng)
    used = {x for split in pools.values() for x in split}
    pools["lm"] = [x for x in sentences if x not in used]
    return pools


def _take(pool: list[str], cursor: dict[str, int], split: str, est, speakers: list[Speaker],
          target_sec: float, min_utts: int = 1) -> list[tuple[str, Speaker]]:
    """Sentences from ``pool`` (continuing at cursor[split], wrapping) read round-robin by speakers until
    the estimated duration reaches ``target_sec``."""
    out, total = [], 0.0
    while total < target_sec or len(out) < min_utts:
        i = cursor[split]
        cursor[split] = i + 1
        text = pool[i % len(pool)]
        spk = speakers[len(out) % len(speakers)]
        out.append((text, spk))
        total += est(text, spk)
    return out


def plan(cfg: SynthConfig, acfg: AcousticsConfig, tmp_root: str | None = None) -> tuple[list[Job], dict]:
    """All jobs of the corpus (deterministic) and the metadata needed to write the index files.

    Durations are estimated from seconds per character measured on a few sentences per language, in
    fresh processes (eSpeak's output depends on what the process synthesized before; see _run_jobs).
    """
    jobs: list[Job] = []
    meta: dict = {"speakers": {}, "librispeech": {}, "librilight": {}, "commonvoice": {}, "babel": {},
                  "lm_text": {}}
    fr = {"dev": cfg.dev_fraction, "test": cfg.test_fraction}
    fr["train"] = 1.0 - fr["dev"] - fr["test"]
    per_lang = {}
    for lang in cfg.languages:
        speakers = make_speakers(lang, cfg.speakers_per_language, cfg.seed, _lang_index(lang))
        meta["speakers"][lang] = speakers
        splits = split_speakers(speakers, cfg.dev_speakers, cfg.test_speakers)
        minutes = cfg.english_minutes if (lang == "en" and cfg.english_minutes) else cfg.minutes_per_language
        target = {k: minutes * 60 * fr[k] for k in fr}
        if lang in cfg.eval_minutes:
            target.update(dev=cfg.eval_minutes[lang] * 60, test=cfg.eval_minutes[lang] * 60)
        extra = 60 * 60 * cfg.librilight_scale * 10 if lang == "en" else 0.0  # Libri-light 1h + 9h
        babel_sec = cfg.babel_minutes * 60 if lang in cfg.babel_languages else 0.0
        # sentence counts: generous upper bound from a short (1.5 s) minimum per sentence
        need = {
            "train": int((target["train"] + extra + 0.8 * babel_sec) / 1.5) + 20,
            "dev": int((target["dev"] + 0.2 * babel_sec) / 1.5) + 10,
            "test": int(target["test"] / 1.5) + 10,
        }
        per_lang[lang] = (splits, target, babel_sec, _sentence_pools(cfg, lang, need))
        meta["lm_text"][lang] = per_lang[lang][3]["lm"]
    items = [(lang, v[3]["train"][:6]) for lang, v in per_lang.items()]
    with tempfile.TemporaryDirectory(prefix="synth-espeak-", dir=tmp_root) as tmp:
        spcs = _fresh_map(_seconds_per_char, items, _n_workers(cfg), tmp, str(cfg.out), acfg)
    cv_counter = 0
    for (lang, (splits, target, babel_sec, pools)), spc in zip(per_lang.items(), spcs):
        est = _Estimator(spc, acfg)
        cursor = {"train": 0, "dev": 0, "test": 0}
        if lang == "en":
            jobs += _plan_librispeech(cfg, splits, pools, cursor, est, target, meta)
            jobs += _plan_librilight(cfg, splits, pools, cursor, est, meta)
        else:
            cv_jobs, cv_counter = _plan_commonvoice(cfg, lang, splits, pools, cursor, est, target, meta,
                                                    cv_counter)
            jobs += cv_jobs
        if babel_sec:
            jobs += _plan_babel(cfg, lang, splits, pools, cursor, est, babel_sec, meta)
    return jobs, meta


def _chapter_id(spk: Speaker, k: int) -> int:
    """Chapter ``k`` of a speaker: ``sid * 100 + k`` (unique across the corpus)."""
    return spk.sid * 100 + k


def _plan_librispeech(cfg, splits, pools, cursor, est, target, meta) -> list[Job]:
    jobs = []
    for split, subset in LS_SUBSETS.items():
        spks = splits[split]
        items = _take(pools[split], cursor, split, est, spks, target[split], min_utts=len(spks))
        by_spk: dict[int, list[str]] = {}
        for text, spk in items:
            by_spk.setdefault(spk.index, []).append(text)
        n_ch = 2 if split == "train" else 1
        for spk in spks:
            texts = by_spk.get(spk.index, [])
            chapters = [_chapter_id(spk, k) for k in range(min(n_ch, len(texts)))]
            bounds = np.linspace(0, len(texts), len(chapters) + 1).astype(int)
            for ch, a, b in zip(chapters, bounds[:-1], bounds[1:]):
                for u, text in enumerate(texts[a:b]):
                    uid = f"{spk.sid}-{ch}-{u:04d}"
                    jobs.append(Job(uid, "librispeech", subset, "en", spk, [text],
                                    f"LibriSpeech/{subset}/{spk.sid}/{ch}/{uid}.flac", "flac", SAMPLE_RATE, False,
                                    _seed_of(cfg.seed, "ls", uid)))
            meta["librispeech"].setdefault(subset, {})[spk.sid] = (spk, chapters)
    return jobs


def _plan_librilight(cfg, splits, pools, cursor, est, meta) -> list[Job]:
    if cfg.librilight_scale <= 0:
        return []
    jobs = []
    spks = splits["train"]
    parts = [(f"1h/{f}", 600 * cfg.librilight_scale / 2) for f in range(6)]
    parts.append(("9h", 9 * 3600 * cfg.librilight_scale / 2))
    for p_i, (part, sec) in enumerate(parts):
        for kind in ("clean", "other"):
            half = spks[: len(spks) // 2] if kind == "clean" else spks[len(spks) // 2:]
            tag = f"{part}/{kind}"
            items = _take(pools["train"], cursor, "train", est, half, sec, min_utts=1)
            by_spk: dict[int, list[str]] = {}
            for text, spk in items:
                by_spk.setdefault(spk.index, []).append(text)
            for spk in half:
                texts = by_spk.get(spk.index, [])
                if not texts:
                    continue
                ch = _chapter_id(spk, 10 + 2 * p_i + (kind == "other"))
                for u, text in enumerate(texts):
                    uid = f"{spk.sid}-{ch}-{u:04d}"
                    jobs.append(Job(uid, "librilight", tag, "en", spk, [text],
                                    f"librispeech_finetuning/{tag}/{spk.sid}/{ch}/{uid}.flac", "flac", SAMPLE_RATE,
                                    kind == "other", _seed_of(cfg.seed, "ll", tag, uid)))
    return jobs


def _client_id(cfg: SynthConfig, spk: Speaker) -> str:
    h = hashlib.sha512(f"synth:{cfg.seed}:{spk.lang}:{spk.index}".encode()).hexdigest()
    return h


def _plan_commonvoice(cfg, lang, splits, pools, cursor, est, target, meta, counter) -> tuple[list[Job], int]:
    jobs = []
    for split in ("train", "dev", "test"):
        spks = splits[split]
        items = _take(pools[split], cursor, split, est, spks, target[split], min_utts=len(spks))
        for text, spk in items:
            counter += 1
            n = 20000000 + _lang_index(lang) * 1000000 + counter
            name = f"common_voice_{lang}_{n}.mp3"
            jobs.append(Job(name, "commonvoice", split, lang, spk, [text],
                            f"{CV_VERSION}/{lang}/clips/{name}", "mp3", 48000, None,
                            _seed_of(cfg.seed, "cv", lang, name)))
    return jobs, counter


def _plan_babel(cfg, lang, splits, pools, cursor, est, seconds, meta) -> list[Job]:
    code = BABEL_CODES.get(lang, 900 + _lang_index(lang))
    jobs = []
    for part, split, spks, frac in (("training", "train", splits["train"], 0.8),
                                    ("dev", "dev", splits["dev"] + splits["test"], 0.2)):
        pool_split = "train" if split == "train" else "dev"
        r = _rng(cfg.seed, "babel", lang, part)
        remaining = seconds * frac
        c = 0
        while remaining > 0:
            spk = spks[c % len(spks)]
            n_turns = int(r.integers(4, 10))
            items = _take(pools[pool_split], cursor, pool_split, est, [spk], 0.0, min_utts=n_turns)
            texts = [t for t, _ in items]
            remaining -= sum(est(t, spk) for t in texts) + n_turns * 1.0
            day = 20120101 + int(r.integers(0, 12)) * 100 + int(r.integers(1, 28))
            clock = int(r.integers(0, 24)) * 10000 + int(r.integers(0, 60)) * 100 + int(r.integers(0, 60))
            stem = f"BABEL_BP_{code}_{spk.sid % 100000:05d}_{day}_{clock:06d}_inLine"
            jobs.append(Job(stem, "babel", part, lang, spk, texts,
                            f"IARPA-babel{code}b-v0.5/conversational/{part}/audio/{stem}.sph", "sph", 8000,
                            None, _seed_of(cfg.seed, "babel", stem)))
            c += 1
    meta["babel"][lang] = code
    return jobs


# ------------------------------------------------------------------------------------- index files


def _fmt_ts(sec: float) -> str:
    return f"[{sec:.3f}]"


def _tsv(rows: list[list[str]]) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, delimiter="\t", lineterminator="\n", quoting=csv.QUOTE_MINIMAL)
    w.writerows(rows)
    return buf.getvalue()


def _draws(d: dict) -> str:
    """A label cell of per-utterance draws: ``a=1; b=2`` (sorted), or ``none``."""
    return "; ".join(f"{a}={b}" for a, b in sorted(d.items())) or "none"


def _label_rows(job: Job, res: dict) -> list[list[str]]:
    rows = []
    for k, s in enumerate(res["segments"]):
        words = normalize_words(s["text"], job.lang)
        rid = job.key if len(res["segments"]) == 1 else f"{job.key}_{k:03d}"
        aug = _draws({a: b for a, b in s["info"].items() if a != "level_db"})
        rows.append([rid, job.path, job.lang, str(job.speaker.sid), f"{s['start']:.3f}", f"{s['end']:.3f}",
                     " ".join(words), letters(words), " ".join(s["phones"]),
                     " ".join(f"{v:.3f}" for v in s["phone_onsets"]),
                     " ".join(f"{v:.3f}" for v in s["word_onsets"]), aug, _draws(s["style"]),
                     _draws(s["channel"])])
    return rows


def write_indexes(cfg: SynthConfig, jobs: list[Job], results: dict[str, dict], meta: dict) -> dict:
    """Transcripts, TSVs, speaker lists and label files for every layout; returns the stats."""
    out = Path(cfg.out)
    stats: dict[str, dict[str, dict[str, float]]] = {}
    labels: dict[tuple[str, str], list[list[str]]] = {}
    for job in jobs:
        res = results[job.key]
        st = stats.setdefault(job.layout + ("/" + job.lang if job.layout in ("commonvoice", "babel") else ""), {})
        s = st.setdefault(job.subset, {"files": 0, "minutes": 0.0})
        s["files"] += 1
        s["minutes"] = round(s["minutes"] + res["duration"] / 60, 4)
        labels.setdefault((job.layout if job.layout in ("librispeech", "librilight") else f"{job.layout}-{job.lang}",
                           job.subset.replace("/", "_")), []).extend(_label_rows(job, res))

    # LibriSpeech and Libri-light transcripts: one .trans.txt per chapter folder
    trans: dict[Path, list[str]] = {}
    ls_minutes: dict[tuple[int, str], float] = {}
    for job in jobs:
        if job.layout not in ("librispeech", "librilight"):
            continue
        folder = (out / job.path).parent
        spk, ch = job.key.split("-")[:2]
        words = normalize_words(job.texts[0], "en")
        trans.setdefault(folder / f"{spk}-{ch}.trans.txt", []).append(f"{job.key} {' '.join(words).upper()}")
        if job.layout == "librispeech":
            kk = (job.speaker.sid, job.subset)
            ls_minutes[kk] = ls_minutes.get(kk, 0.0) + results[job.key]["duration"] / 60
    for path, lines in trans.items():
        write_atomic(path, "\n".join(sorted(lines)) + "\n")
    if meta["librispeech"]:
        sp_lines = ["; Synthetic speakers (eSpeak NG voice variants), LibriSpeech format",
                    ";ID  |SEX| SUBSET           |MINUTES| NAME"]
        ch_lines = ["; Synthetic chapters, LibriSpeech format",
                    ";ID    |READER|MINUTES| SUBSET           | PROJ.|BOOK ID| CH. TITLE | PROJECT TITLE"]
        for subset, spks in meta["librispeech"].items():
            for sid, (spk, chapters) in sorted(spks.items()):
                sex = "M" if spk.gender == "m" else "F"
                mins = ls_minutes.get((sid, subset), 0.0)
                sp_lines.append(f"{sid:<5}| {sex} | {subset:<17}| {mins:5.2f} | {spk.name}")
                for ch in chapters:
                    ch_lines.append(f"{ch:<7}| {sid:<5}| {mins / len(chapters):5.2f} | {subset:<17}| 0    | 0     "
                                    f"| synthetic chapter {ch} | synthetic")
        write_atomic(out / "LibriSpeech" / "SPEAKERS.TXT", "\n".join(sp_lines) + "\n")
        write_atomic(out / "LibriSpeech" / "CHAPTERS.TXT", "\n".join(ch_lines) + "\n")

    # CommonVoice TSVs
    cv: dict[str, dict[str, list[list[str]]]] = {}
    durs: dict[str, list[list[str]]] = {}
    for job in jobs:
        if job.layout != "commonvoice":
            continue
        spk = job.speaker
        sentence = job.texts[0]
        row = [_client_id(cfg, spk), job.key, hashlib.sha256(sentence.encode()).hexdigest(), sentence, "",
               "2", "0", ["twenties", "thirties", "forties", "fifties"][spk.index % 4],
               "male_masculine" if spk.gender == "m" else "female_feminine", "", "", job.lang, ""]
        cv.setdefault(job.lang, {}).setdefault(job.subset, []).append(row)
        durs.setdefault(job.lang, []).append([job.key, str(int(round(results[job.key]["duration"] * 1000)))])
    for lang, parts in cv.items():
        root = out / CV_VERSION / lang
        validated = []
        for split in ("train", "dev", "test"):
            rows = parts.get(split, [])
            validated += rows
            write_atomic(root / f"{split}.tsv", _tsv([CV_COLUMNS] + rows))
        write_atomic(root / "validated.tsv", _tsv([CV_COLUMNS] + validated))
        write_atomic(root / "invalidated.tsv", _tsv([CV_COLUMNS]))
        write_atomic(root / "other.tsv", _tsv([CV_COLUMNS]))
        write_atomic(root / "clip_durations.tsv", _tsv([["clip", "duration[ms]"]] + durs[lang]))

    # BABEL transcripts
    for job in jobs:
        if job.layout != "babel":
            continue
        res = results[job.key]
        lines, t = [], 0.0
        for s in res["segments"]:
            if s["start"] > t:
                lines += [_fmt_ts(t), "<no-speech>"]
            lines += [_fmt_ts(s["start"]), " ".join(normalize_words(s["text"], job.lang))]
            t = s["end"]
        lines += [_fmt_ts(t), "<no-speech>", _fmt_ts(res["duration"])]
        tpath = out / job.path.replace("/audio/", "/transcription/").replace(".sph", ".txt")
        write_atomic(tpath, "\n".join(lines) + "\n")

    for (layout, subset), rows in sorted(labels.items()):
        write_atomic(out / "labels" / layout / f"{subset}.tsv", _tsv([LABEL_COLUMNS] + rows))

    # LM text: the language's sentences that no split reads (normalized words, one sentence per line)
    for lang, sentences in meta["lm_text"].items():
        lines = [" ".join(normalize_words(x, lang)) for x in sentences]
        write_atomic(out / "lm_text" / f"{lang}.txt", "".join(f"{x}\n" for x in lines))
        stats.setdefault("lm_text", {})[lang] = {"sentences": len(lines), "words": sum(len(x.split()) for x in lines)}
    return stats


# ------------------------------------------------------------------------------------------ driver


def build(cfg: SynthConfig, acfg: AcousticsConfig | None = None) -> dict:
    """Generate the whole corpus under ``cfg.out``; returns a summary (stats and measured speed)."""
    acfg = acfg or AcousticsConfig(augment_prob=cfg.augment_prob)
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    with tempfile.TemporaryDirectory(prefix="synth-espeak-") as tmp_root:
        jobs, meta = plan(cfg, acfg, tmp_root)
        t_plan = time.time() - t0
        results, worker_cpu = _run_jobs(cfg, jobs, tmp_root, str(out), acfg)
    t_synth = time.time() - t0 - t_plan
    stats = write_indexes(cfg, jobs, results, meta)
    audio_sec = sum(r["duration"] for r in results.values())
    info = {
        "config": asdict(cfg),
        "acoustics": asdict(acfg),
        "speakers": {lang: [asdict(s) for s in spks] for lang, spks in meta["speakers"].items()},
        "babel_codes": meta["babel"],
        "stats": stats,
        "audio_hours": round(audio_sec / 3600, 4),
        "engine": "eSpeak NG (espeakng-loader) — GPL-3.0+",
    }
    info["config"].pop("workers")
    info["config"].pop("progress")
    info["config"].pop("out")
    write_atomic(out / "synth_info.json", json.dumps(info, indent=1, ensure_ascii=False) + "\n")
    wall = time.time() - t0
    return {"stats": stats, "audio_seconds": audio_sec, "wall_seconds": wall, "synth_seconds": t_synth,
            "workers": _n_workers(cfg), "files": len(jobs), "worker_cpu_seconds": worker_cpu,
            "main_cpu_seconds": time.process_time()}


def _n_workers(cfg: SynthConfig) -> int:
    return cfg.workers if cfg.workers > 0 else (os.cpu_count() or 1)


def render_shard(shard: list[Job]) -> tuple[list[dict], float]:
    """Render jobs in order (in a fresh worker process: see :func:`_run_jobs`); also returns the CPU
    seconds the worker process used (start-up included)."""
    out = [render(job) for job in shard]
    return out, time.process_time()


def _fresh_map(fn, items: list, workers: int, tmp_root: str, out: str, acfg: AcousticsConfig,
               progress=None) -> list:
    """``[fn(x) for x in items]``, each call in a fresh process (forked from a clean fork server,
    ``maxtasksperchild=1``) with its own eSpeak engine; results in the order of ``items``."""
    import multiprocessing as mp

    if not items:
        return []
    ctx = mp.get_context("forkserver")
    ctx.set_forkserver_preload(["data_prep.synth.corpus", "numpy", "soundfile", "soxr"])
    results: list = [None] * len(items)
    with ctx.Pool(max(1, min(workers, len(items))), initializer=_init_worker, initargs=(tmp_root, out, acfg),
                  maxtasksperchild=1) as pool:
        for i, res in pool.imap_unordered(_indexed, [(fn, i, x) for i, x in enumerate(items)]):
            results[i] = res
            if progress is not None:
                progress(res)
    return results


def _indexed(task):
    fn, i, x = task
    return i, fn(x)


def _run_jobs(cfg: SynthConfig, jobs: list[Job], tmp_root: str, out: str,
              acfg: AcousticsConfig) -> tuple[dict, float]:
    """Render all jobs over ``cfg.workers`` processes.

    eSpeak NG carries state from one synthesis to the next (the voice source phase and pitch flutter
    continue across calls; re-initialising does not reset them), so an utterance's samples depend on
    what the same process synthesized before. For byte-identical output regardless of worker count and
    scheduling, jobs are cut into fixed shards and every shard runs in a fresh process that initialises
    eSpeak and renders the shard in order.
    """
    from tqdm import tqdm

    shards = [jobs[i: i + SHARD_SIZE] for i in range(0, len(jobs), SHARD_SIZE)]
    # biggest shards (conversations) first for load balance; order does not affect the output
    shards.sort(key=lambda sh: -sum(len(j.texts) for j in sh))
    bar = tqdm(total=len(jobs), desc="synth", unit="file", disable=not cfg.progress, smoothing=0.05)
    done = _fresh_map(render_shard, shards, _n_workers(cfg), tmp_root, out, acfg,
                      progress=lambda res: bar.update(len(res[0])))
    bar.close()
    results = {r["key"]: r for res_list, _ in done for r in res_list}
    if len(results) != len(jobs):
        raise RuntimeError(f"duplicate job keys: {len(jobs)} jobs, {len(results)} results")
    return results, sum(cpu for _, cpu in done)


def remove_outputs(out: str | Path) -> None:
    """Remove everything :func:`build` writes under ``out`` (used by --overwrite)."""
    out = Path(out)
    for name in ("LibriSpeech", "librispeech_finetuning", CV_VERSION, "labels", "lm_text", "synth_info.json"):
        p = out / name
        if p.is_dir():
            shutil.rmtree(p)
        elif p.exists():
            p.unlink()
    for p in out.glob("IARPA-babel*"):
        shutil.rmtree(p)
