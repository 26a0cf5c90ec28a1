"""ctypes binding to eSpeak NG (libespeak-ng) for synthesis with phone alignments and IPA phonemization.

The library and its data folder come from the ``espeakng-loader`` wheel; a system ``libespeak-ng`` (with
its own data folder) is the fallback. eSpeak NG keeps its state in the process, so there is one
:class:`ESpeak` per process (:func:`get_engine`); worker processes each initialise their own.

Synthesis runs in synchronous mode: a callback collects int16 samples at 22050 Hz and the phoneme and
word events (with sample onsets). Speaker identities are *voice variant* files (formants, pitch, breath,
...) written into a private data folder: a copy of the package's data folder made of symlinks, whose
``voices/!v`` holds real files, so the installed package is never modified.

    eng = get_engine()
    phones = eng.phonemize("Guten Morgen", "de")            # ['ɡ', 'uː', 't', 'ə', 'n', 'm', 'ɔ', 'ɾ', ...]
    audio = eng.synthesize("Hello world", voice="en-US", rate=170)
    audio.samples  # (N,) int16 at 22050 Hz; audio.phones / audio.phone_starts (sample onsets)

eSpeak NG is GPL-3.0+; it is loaded at run time, never vendored.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import re
import shutil
import tempfile
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from speech_ssl.files import atomic_write_text

ESPEAK_RATE = 22050

# speak_lib.h constants
_AUDIO_OUTPUT_SYNCHRONOUS = 2
_INIT_PHONEME_EVENTS = 0x0001
_INIT_PHONEME_IPA = 0x0002
_INIT_DONT_EXIT = 0x8000
_CHARS_UTF8 = 1
_PHONEMES_IPA = 0x02
_EV_LIST_TERMINATED = 0
_EV_WORD = 1
_EV_PHONEME = 7
_P_RATE, _P_VOLUME, _P_PITCH, _P_RANGE, _P_PUNCT, _P_CAPITALS, _P_WORDGAP = 1, 2, 3, 4, 5, 6, 7

# Language code -> eSpeak NG voice (a file name under espeak-ng-data/lang).
ESPEAK_VOICES = {
    "en": "en-US", "de": "de", "fr": "fr", "es": "es", "it": "it", "nl": "nl", "pt": "pt",
    "ru": "ru", "sv": "sv", "tr": "tr", "ky": "ky", "tt": "tt", "pl": "pl", "cs": "cs", "fi": "fi",
    "hu": "hu", "ro": "ro", "uk": "uk", "kk": "kk", "id": "id", "sw": "sw", "eu": "eu", "ca": "ca", "et": "et",
}
# Regional voices (accents) eSpeak NG has besides a language's main voice: speakers of the corpus draw one
# (see speakers.make_speakers). Their phone labels are the accent's own pronunciation.
ESPEAK_ACCENTS = {
    "en": ("en-US-nyc", "en-GB-x-rp", "gmw/en", "en-GB-scotland", "en-GB-x-gbclan", "en-GB-x-gbcwmd", "en-029"),
    "es": ("es-419",), "fr": ("fr-BE", "fr-CH"), "pt": ("pt-BR",), "ru": ("ru-LV",), "ca": ("ca-ba", "ca-nw", "ca-va"),
}

# Characters removed from eSpeak's IPA: primary/secondary stress, syllable break, ties and joiners,
# and language-switch brackets.
_STRIP = dict.fromkeys(map(ord, "ˈˌ.\u0361\u035c\u200d\u200c"), None)
_LANG_SWITCH = re.compile(r"\([a-z\-]+\)")


class _Event(ctypes.Structure):
    _fields_ = [
        ("type", ctypes.c_int),
        ("unique_identifier", ctypes.c_uint),
        ("text_position", ctypes.c_int),
        ("length", ctypes.c_int),
        ("audio_position", ctypes.c_int),
        ("sample", ctypes.c_int),
        ("user_data", ctypes.c_void_p),
        ("id", ctypes.c_char * 8),
    ]


_CALLBACK = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.POINTER(_Event))


# eSpeak ASCII phoneme-name marks that some languages (e.g. ky) leak into IPA output.
_ASCII_MARKS = {ord("["): "\u032a", ord(";"): "ʲ", ord("#"): None, ord("<"): None, ord(">"): None,
                ord("/"): None, ord("-"): None, ord("'"): None, ord(","): None, ord("%"): None, ord("="): None}


def clean_phone(p: str) -> str:
    """One eSpeak IPA phone without stress marks, ties or language-switch tags (NFC)."""
    p = _LANG_SWITCH.sub("", p).translate(_STRIP).translate(_ASCII_MARKS).strip()
    return unicodedata.normalize("NFC", p)


def _is_modifier(p: str) -> bool:
    """A phone made only of modifier letters / combining marks (ʲ, ː, ◌̪): it belongs to the previous phone."""
    return all(unicodedata.category(c) in ("Lm", "Mn", "Sk") for c in p)


def merge_modifiers(phones: list[str], starts: list[int] | None = None):
    """Attach modifier-only phones (e.g. eSpeak's separate 'ʲ' event) to the preceding phone."""
    out, out_starts = [], []
    for i, p in enumerate(phones):
        if out and _is_modifier(p):
            out[-1] += p
            continue
        out.append(p)
        if starts is not None:
            out_starts.append(starts[i])
    return (out, out_starts) if starts is not None else out


@dataclass
class SynthResult:
    """Audio and alignments of one synthesized text.

    samples: (N,) int16 at :data:`ESPEAK_RATE`; phones: cleaned IPA phones; phone_starts: (P,) onset
    sample of each phone; word_starts: onset samples of the words (eSpeak word events).
    """

    samples: np.ndarray
    phones: list[str] = field(default_factory=list)
    phone_starts: list[int] = field(default_factory=list)
    word_starts: list[int] = field(default_factory=list)

    @property
    def duration(self) -> float:
        return len(self.samples) / ESPEAK_RATE


def _find_library() -> tuple[str, str | None]:
    """(library path, data folder) from espeakng-loader, else a system libespeak-ng (data folder None)."""
    try:
        import espeakng_loader

        lib = espeakng_loader.get_library_path()
        if os.path.exists(lib):
            return lib, espeakng_loader.get_data_path()
    except Exception:  # not installed or broken wheel: fall back
        pass
    name = ctypes.util.find_library("espeak-ng")
    if name is None:
        raise RuntimeError(
            "eSpeak NG not found: `pip install espeakng-loader` (the `synth` extra) or install libespeak-ng"
        )
    for d in ("/usr/share/espeak-ng-data", "/usr/lib/x86_64-linux-gnu/espeak-ng-data",
              "/usr/local/share/espeak-ng-data"):
        if os.path.isdir(d):
            return name, d
    return name, None


def make_private_data_dir(source: str | Path, dest: str | Path) -> Path:
    """A private eSpeak data folder at ``dest``: symlinks to ``source`` except a real ``voices/!v``.

    Variant files written there (:meth:`ESpeak.write_variant`) do not touch the installed data.
    """
    source, dest = Path(source), Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    for entry in source.iterdir():
        target = dest / entry.name
        if entry.name == "voices":
            target.mkdir(exist_ok=True)
            for sub in entry.iterdir():
                t = target / sub.name
                if sub.name == "!v":  # a real folder (our variants go here) of links to the stock ones
                    t.mkdir(exist_ok=True)
                    for f in sub.iterdir():
                        if not (t / f.name).exists():
                            (t / f.name).symlink_to(f)
                elif not t.exists():
                    t.symlink_to(sub)
        elif not target.exists():
            target.symlink_to(entry)
    (dest / "voices" / "!v").mkdir(parents=True, exist_ok=True)
    return dest


class ESpeak:
    """One eSpeak NG instance (the library is process-global: create one per process).

    ``data_dir``: a private data folder (see :func:`make_private_data_dir`); by default one is made in a
    temporary folder (under ``tmp_root`` if given), removed at :meth:`close`.

    eSpeak NG lists at most 349 voices (language files plus variants) in a data folder and fails to find
    a voice beyond that, so write only the variants a process needs (a few dozen) into its folder.
    """

    def __init__(self, data_dir: str | Path | None = None, tmp_root: str | Path | None = None):
        lib_path, pkg_data = _find_library()
        self._tmp = None
        if data_dir is None:
            if pkg_data is None:
                raise RuntimeError("eSpeak NG data folder not found; pass data_dir")
            self._tmp = tempfile.mkdtemp(prefix="espeak-data-", dir=tmp_root)
            data_dir = make_private_data_dir(pkg_data, Path(self._tmp) / "espeak-ng-data")
        self.data_dir = Path(data_dir)
        self.lib = lib = ctypes.CDLL(lib_path)
        lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
        lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
        lib.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
        lib.espeak_Synth.argtypes = [ctypes.c_char_p, ctypes.c_size_t, ctypes.c_uint, ctypes.c_int,
                                     ctypes.c_uint, ctypes.c_uint, ctypes.c_void_p, ctypes.c_void_p]
        lib.espeak_TextToPhonemes.restype = ctypes.c_char_p
        lib.espeak_TextToPhonemes.argtypes = [ctypes.POINTER(ctypes.c_char_p), ctypes.c_int, ctypes.c_int]
        rate = lib.espeak_Initialize(
            _AUDIO_OUTPUT_SYNCHRONOUS, 0, str(self.data_dir).encode(),
            _INIT_PHONEME_EVENTS | _INIT_PHONEME_IPA | _INIT_DONT_EXIT,
        )
        if rate != ESPEAK_RATE:
            raise RuntimeError(f"espeak_Initialize failed (returned {rate}) with data {self.data_dir}")
        self._chunks: list[np.ndarray] = []
        self._events: list[tuple[int, int, str]] = []
        self._cb = _CALLBACK(self._callback)  # keep a reference: the library holds the pointer
        lib.espeak_SetSynthCallback(self._cb)
        self._voice: str | None = None
        # espeak_ng_SetRandSeed (eSpeak NG >= 1.52): without it, breath/frication noise is clock-seeded
        self._set_seed = getattr(lib, "espeak_ng_SetRandSeed", None)

    def _callback(self, wav, n, events) -> int:
        if n > 0:
            self._chunks.append(np.ctypeslib.as_array(wav, (n,)).copy())
        i = 0
        while events[i].type != _EV_LIST_TERMINATED:
            ev = events[i]
            if ev.type == _EV_PHONEME:
                self._events.append((_EV_PHONEME, ev.sample, ev.id.decode("utf-8", "replace")))
            elif ev.type == _EV_WORD:
                self._events.append((_EV_WORD, ev.sample, ""))
            i += 1
        return 0

    def write_variant(self, name: str, text: str) -> None:
        """Write voice variant file ``name`` (eSpeak variant syntax) into the private data folder."""
        path = self.data_dir / "voices" / "!v" / name
        if path.exists() and path.read_text() == text:
            return
        atomic_write_text(path, text)

    def set_voice(self, voice: str, variant: str | None = None) -> None:
        name = voice if variant is None else f"{voice}+{variant}"
        if name != self._voice:
            if self.lib.espeak_SetVoiceByName(name.encode()) != 0:
                raise ValueError(f"eSpeak NG has no voice {name!r} (data {self.data_dir})")
            self._voice = name

    def synthesize(self, text: str, voice: str, variant: str | None = None, rate: int = 175,
                   pitch: int = 50, pitch_range: int = 50, word_gap: int = 0, seed: int = 0) -> SynthResult:
        """Speak ``text`` with ``voice`` (+ ``variant``); rate in words/minute (80..450).

        Rate, pitch and range persist in eSpeak across voice changes, so all are set on every call.
        ``seed`` seeds eSpeak's noise generator (breath, frication), which it otherwise seeds from the
        clock. Note that eSpeak also carries voice-source phase from one call to the next, so identical
        output needs the same sequence of calls in a fresh process (see ``corpus._run_jobs``).
        """
        self.set_voice(voice, variant)
        if self._set_seed is not None:
            self._set_seed(ctypes.c_long(seed & 0x7FFFFFFF))
        for p, v in ((_P_RATE, rate), (_P_PITCH, pitch), (_P_RANGE, pitch_range), (_P_VOLUME, 100),
                     (_P_WORDGAP, word_gap), (_P_PUNCT, 0), (_P_CAPITALS, 0)):
            self.lib.espeak_SetParameter(p, int(v), 0)
        self._chunks, self._events = [], []
        data = text.encode("utf-8")
        err = self.lib.espeak_Synth(data, len(data) + 1, 0, 0, 0, _CHARS_UTF8, None, None)
        self.lib.espeak_Synchronize()
        if err != 0:
            raise RuntimeError(f"espeak_Synth failed ({err}) for {text!r}")
        samples = np.concatenate(self._chunks) if self._chunks else np.zeros(0, np.int16)
        res = SynthResult(samples.astype(np.int16, copy=False))
        for kind, sample, name in self._events:
            if kind == _EV_WORD:
                res.word_starts.append(sample)
                continue
            p = clean_phone(name)
            if p:
                res.phones.append(p)
                res.phone_starts.append(sample)
        res.phones, res.phone_starts = merge_modifiers(res.phones, res.phone_starts)
        # Phone events omit some length marks (Italian/Swedish geminates 'tː' come as 't'); take the
        # labels from TextToPhonemes in the same voice when the two sequences agree otherwise.
        ref = [p for w in self._text_to_phonemes(text) for p in w]
        if len(ref) == len(res.phones) and all(
            a.replace("ː", "") == b.replace("ː", "") for a, b in zip(ref, res.phones)
        ):
            res.phones = ref
        return res

    def phonemize(self, text: str, lang: str) -> list[str]:
        """IPA phones of ``text`` in language ``lang`` (code or eSpeak voice), cleaned like synthesis labels."""
        self.set_voice(ESPEAK_VOICES.get(lang, lang))
        phones: list[str] = []
        for word in self.phonemize_words(text, lang, _voice_set=True):
            phones.extend(word)
        return phones

    def phonemize_words(self, text: str, lang: str, _voice_set: bool = False) -> list[list[str]]:
        """IPA phones grouped by eSpeak's words (words it joins, e.g. 'in the', come as one group)."""
        if not _voice_set:
            self.set_voice(ESPEAK_VOICES.get(lang, lang))
        return self._text_to_phonemes(text)

    def _text_to_phonemes(self, text: str) -> list[list[str]]:
        """Phones per eSpeak word of ``text`` in the current voice."""
        mode = _PHONEMES_IPA | (ord("_") << 8)
        buf = ctypes.c_char_p(text.encode("utf-8"))
        out: list[list[str]] = []
        while buf.value:
            r = self.lib.espeak_TextToPhonemes(ctypes.byref(buf), _CHARS_UTF8, mode)
            if not r:
                break
            for word in r.decode("utf-8", "replace").split():
                ph = merge_modifiers([c for c in (clean_phone(x) for x in word.split("_")) if c])
                if ph:
                    out.append(ph)
        return out

    def close(self) -> None:
        if self._tmp is not None:
            shutil.rmtree(self._tmp, ignore_errors=True)
            self._tmp = None


_ENGINES: dict[int, ESpeak] = {}


def get_engine(data_dir: str | Path | None = None, tmp_root: str | Path | None = None) -> ESpeak:
    """The process's :class:`ESpeak` (created on first use; eSpeak NG allows one per process).

    ``data_dir`` / ``tmp_root`` are honoured on the first call only; a later call with a different
    ``data_dir`` is an error.
    """
    pid = os.getpid()
    eng = _ENGINES.get(pid)
    if eng is None:
        eng = _ENGINES[pid] = ESpeak(data_dir, tmp_root)
    elif data_dir is not None and Path(data_dir) != eng.data_dir:
        raise RuntimeError(f"eSpeak already initialised in this process with {eng.data_dir}")
    return eng


def phonemize(text: str, lang: str) -> list[str]:
    """IPA phones (stress marks and separators removed) of ``text`` in ``lang`` (e.g. 'de', 'en')."""
    return get_engine().phonemize(text, lang)
