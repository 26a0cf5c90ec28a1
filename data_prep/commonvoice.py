"""Mozilla CommonVoice (one language folder) -> 16 kHz FLAC, fairseq manifests, words, letters, phones.

    speech-ssl prepare commonvoice --root /data/cv-corpus-17.0/fr --out data/cv/fr [--lang fr]

Input: ``<root>/clips/*.mp3`` (48 kHz) and ``train.tsv``, ``dev.tsv``, ``test.tsv`` whose header names the
columns; only ``path`` and ``sentence`` are used, found by name (releases differ in their other columns).
Clips not listed in those three files (``other.tsv``, ``invalidated.tsv``) are not an error.

Output in ``--out``:
- ``clips/<name>.flac``: mono 16 kHz 16-bit FLAC (soxr HQ resampling), written atomically, never redone;
- ``{train,dev,test}.tsv`` (root = ``--out``), ``.wrd`` (normalized text), ``.ltr`` (letters of the
  language's own alphabet, ``|`` between words), ``.phn`` (space-separated IPA phones from eSpeak NG; stress
  marks dropped, length marks kept on their phone; no word-boundary symbol);
- ``dict.ltr.txt`` and ``dict.phn.txt`` over all three splits (the alphabet/phone set of the language,
  so that a rare letter in dev/test is not an unknown symbol);
- ``sizes.json``: utterances, samples and hours per split, read by multilingual α-sampling.

Text normalization (``normalize_text``), in order: Unicode NFC; the apostrophe look-alikes ’ ‘ ʼ ʻ ` ´ ′
become ``'``; lower case (Turkish and Azerbaijani map I→ı and İ→i first); every character that is not a
letter, combining mark or digit (Unicode categories L*, M*, N*) or an apostrophe becomes a space (so
punctuation and symbols go, hyphenated words split); apostrophes are kept only inside a word (l'homme,
don't), quote-like ones at word edges are removed; whitespace collapsed. A sentence that is empty after
normalization is a bad input.
"""

from __future__ import annotations

import argparse
import csv
import json
import unicodedata
from pathlib import Path

from data_prep.common import (
    BadInputLog,
    Utterance,
    add_common_arguments,
    file_signature,
    hours,
    is_done,
    letters_dictionary,
    mark_done,
    parallel_map,
    run_sentencepiece,
    summarize,
    write_split,
)
from speech_ssl.data.audio import audio_info, read_audio, write_audio
from speech_ssl.errors import DataError
from speech_ssl.files import atomic_write_text

SPLITS = ("train", "dev", "test")
APOSTROPHES = dict.fromkeys(map(ord, "\u2019\u2018\u02bc\u02bb`\u00b4\u2032"), "'")
DOTLESS_I_LANGS = {"tr", "az", "crh", "tt", "ba"}  # Turkic scripts with dotted/dotless I
STRESS = dict.fromkeys(map(ord, "ˈˌ"), None)


def normalize_text(text: str, lang: str = "") -> str:
    """CommonVoice sentence -> normalized words (see the module docstring for the rules)."""
    t = unicodedata.normalize("NFC", text).translate(APOSTROPHES)
    if lang.split("-")[0].lower() in DOTLESS_I_LANGS:
        t = t.replace("I", "ı").replace("İ", "i")
    t = t.lower()
    chars = []
    for ch in t:
        cat = unicodedata.category(ch)
        chars.append(ch if cat[0] in "LMN" or ch == "'" else " ")
    words = []
    for w in "".join(chars).split():
        w = w.strip("'")
        if w:
            words.append(w)
    return unicodedata.normalize("NFC", " ".join(words))


def read_cv_tsv(path: Path, log: BadInputLog) -> list[tuple[str, str, int]]:
    """(clip file name, sentence, line) of a CommonVoice split file; columns found by name."""
    rows = []
    with open(path, encoding="utf-8", newline="") as f:
        reader = csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE)
        header = next(reader, None)
        if header is None:
            raise DataError("empty CommonVoice tsv (no header)", path, 1)
        missing = [c for c in ("path", "sentence") if c not in header]
        if missing:
            raise DataError(f"header lacks column(s) {missing} (has {header})", path, 1)
        ip, isent = header.index("path"), header.index("sentence")
        for row in reader:
            lineno = reader.line_num
            if not row or row == [""]:
                continue
            if len(row) != len(header):
                log.bad(f"malformed row: {len(row)} columns, header has {len(header)}", path, lineno)
                continue
            if not row[ip]:
                log.bad("malformed row: empty path", path, lineno)
                continue
            rows.append((row[ip], row[isent], lineno))
    return rows


_PHONEMIZERS: dict = {}


def _phones(text: str, voice: str) -> str:
    from data_prep.common import phonemizer

    if voice not in _PHONEMIZERS:
        _PHONEMIZERS[voice] = phonemizer(voice)
    phones = [p.translate(STRESS) for p in _PHONEMIZERS[voice](text)]
    return " ".join(p for p in phones if p and not p.isspace())


# CommonVoice codes whose eSpeak NG voice has another name (the rest: the code, then its first part).
CV_TO_ESPEAK = {"zh-CN": "cmn", "zh-TW": "cmn", "zh-HK": "yue", "yue": "yue", "ckb": "ku"}


def espeak_voice(lang: str) -> str:
    """The eSpeak NG voice for a CommonVoice language code (``sv-SE`` -> ``sv``), tried on a word."""
    cands = [CV_TO_ESPEAK.get(lang, lang), lang, lang.split("-")[0], lang.lower()]
    errors = []
    for c in dict.fromkeys(cands):
        try:
            if _phones("a", c):
                return c
        except Exception as e:  # noqa: BLE001 - any failure means: try the next candidate
            errors.append(f"{c}: {e}")
    raise DataError(f"no eSpeak NG voice for language {lang!r} ({'; '.join(errors)}); pass --no-phones")


def _convert(job: tuple) -> tuple[int, str | None]:
    """Worker: mp3 -> 16 kHz FLAC (unless done), phonemize. Returns (num_samples, phones or None)."""
    src, dst, text, voice, where = job
    dst = Path(dst)
    try:
        if dst.is_file():
            n = audio_info(dst)[0]
        else:
            x = read_audio(src)
            write_audio(dst, x)
            n = len(x)
    except DataError as e:
        raise DataError(f"{e.reason} (listed at {where})", e.path) from e
    phn = None
    if voice is not None:
        phn = _phones(text, voice)
        if not phn:
            raise DataError(f"eSpeak NG gave no phones for {text!r}", where.rsplit(":", 1)[0], int(where.rsplit(":", 1)[1]))
    return n, phn


def prepare(
    root: Path,
    out: Path,
    workers: int = 1,
    skip_bad: bool = False,
    force: bool = False,
    lang: str | None = None,
    phones: bool = True,
) -> str:
    root, out = Path(root).resolve(), Path(out).resolve()
    if not root.is_dir():
        raise DataError("CommonVoice language folder not found", root)
    lang = lang or root.name
    present = [s for s in SPLITS if (root / f"{s}.tsv").is_file()]
    if not present:
        raise DataError("no train.tsv/dev.tsv/test.tsv found", root)
    out.mkdir(parents=True, exist_ok=True)
    log = BadInputLog(skip_bad, out / "commonvoice.bad.tsv")
    voice = espeak_voice(lang) if phones else None
    kinds = ("wrd", "ltr", "phn") if phones else ("wrd", "ltr")
    info: dict[str, dict] = {}
    sizes: dict[str, dict] = {}
    seen: dict[str, str] = {}
    for split in present:
        tsv = root / f"{split}.tsv"
        sig = file_signature([tsv], {"lang": lang, "voice": voice, "kinds": kinds, "version": 1})
        done = None if force else is_done(out, split, sig, [out / f"{split}.{k}" for k in ("tsv",) + kinds])
        rows = read_cv_tsv(tsv, log) if done is None else []
        if done is not None:
            log.restore(done)
            info[split] = {"utterances": done["utterances"], "hours": done["hours"], "skipped_done": True}
            sizes[split] = done["sizes"]
            continue
        first_bad = len(log.items)
        jobs, meta = [], []
        for clip, sentence, lineno in rows:
            where = f"{tsv}:{lineno}"
            if clip in seen:
                log.bad(f"duplicate clip {clip!r} (first at {seen[clip]})", tsv, lineno)
                continue
            seen[clip] = where
            words = normalize_text(sentence, lang)
            if not words:
                log.bad(f"empty sentence after normalization: {sentence!r}", tsv, lineno)
                continue
            name = Path(clip).stem
            jobs.append((str(root / "clips" / clip), str(out / "clips" / f"{name}.flac"), words, voice, where))
            meta.append((name, words))
        results = parallel_map(_convert, jobs, workers, f"commonvoice {lang} {split}", log)
        utts = [
            Utterance(name, f"clips/{name}.flac", r[0], words, extra={"phn": r[1]} if r[1] is not None else {})
            for (name, words), r in zip(meta, results)
            if r is not None
        ]
        if not utts:
            raise DataError(f"no usable utterances in {split}", tsv)
        write_split(out, split, out, utts, kinds)
        n_samples = sum(u.num_samples for u in utts)
        sizes[split] = {"utterances": len(utts), "samples": n_samples, "hours": round(hours(utts), 4)}
        split_info = {"utterances": len(utts), "hours": round(hours(utts), 4)}
        mark_done(out, split, sig, {**split_info, "sizes": sizes[split], "bad": log.items[first_bad:]})
        info[split] = split_info
    for kind in kinds[1:]:
        letters_dictionary(out, [out / f"{s}.{kind}" for s in present], f"dict.{kind}.txt")
    atomic_write_text(out / "sizes.json", json.dumps({"lang": lang, "splits": sizes}, indent=1) + "\n")
    return summarize("commonvoice", info, log, out)


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_common_arguments(p)
    p.add_argument("--lang", help="language code (default: the name of --root, e.g. fr)")
    p.add_argument("--no-phones", action="store_true", help="do not write .phn / dict.phn.txt (no eSpeak NG)")


def run(args: argparse.Namespace) -> int:
    print(prepare(args.root, args.out, args.workers, args.skip_bad, args.force, args.lang, not args.no_phones))
    run_sentencepiece(args, "commonvoice", lambda splits: ["train"] if "train" in splits else splits)
    return 0
