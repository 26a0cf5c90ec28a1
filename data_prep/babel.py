"""IARPA BABEL (one language pack) -> utterances cut by the transcript timestamps, 16 kHz, manifests, labels.

    speech-ssl prepare babel --root /data/BABEL_OP1_102 --out data/babel/102 [--lang as] [--segments]

Input (the LDC layout): ``conversational/{training,dev}/audio/<name>.sph`` (8 kHz telephone speech;
shorten-compressed SPHERE must be converted first, e.g. ``sph2pipe -f wav``) and
``conversational/{training,dev}/transcription/<name>.txt``, whose lines alternate between timestamps
``[12.345]`` (seconds) and text; a text line spans from the timestamp before it to the one after it
(the last text line with no closing timestamp runs to the end of the audio).

Output in ``--out``: ``train`` (from ``training``) and ``dev``: ``.tsv``, ``.wrd``, ``.ltr``; ``dict.ltr.txt``
(both splits); ``sizes.json``. By default every utterance is cut, resampled 8 → 16 kHz (soxr HQ) and
written as ``audio/<split>/<name>_<line>.flac`` (atomically, never redone; the manifest root is
``--out``). With ``--segments`` no audio is written: rows use the segment extension
(``path\\tnum_samples\\tstart\\tend``, frames at 8 kHz, root = ``--root``) and the loader resamples.

Tag rules (after Kaldi's BABEL recipe, adapted to character targets), applied per text line:
1. Dropped, counted under ``excluded`` (not an error): lines containing ``<foreign>``, ``<overlap>``,
   ``<dtmf>``, ``<prompt>`` (speech that is not the target language or not the speaker), ``~`` (truncated
   utterance, per the BABEL guidelines), or ``(())`` (unintelligible: a character CTC target cannot
   represent an unknown stretch; Kaldi maps it to ``<unk>``).
2. Removed from the text: non-speech and noise events ``<no-speech> <breath> <cough> <laugh> <lipsmack>
   <click> <sta> <ring> <int> <noise> <misc>``, the hesitation tag ``<hes>`` (no spelling), and speaker
   change events ``<male-to-female> <female-to-male>``.
3. Lines with no word left (e.g. ``<no-speech>`` alone) are dropped and counted under ``non-speech``.
4. Inside words: fragment hyphens at either end (``wor-``, ``-ord``) and mispronunciation stars
   (``*word*``) are removed, the letters kept; ``((word))`` (uncertain but transcribed) keeps ``word``.
5. The text is then normalized like CommonVoice (``normalize_text``: NFC, lower case, punctuation removed).
Any other ``<tag>`` is a bad input naming the file and line.
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

import numpy as np

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
from data_prep.commonvoice import normalize_text
from speech_ssl.data.audio import SAMPLE_RATE, audio_info, read_audio, resampled_length, write_audio
from speech_ssl.errors import DataError
from speech_ssl.files import atomic_write_text

SPLITS = {"training": "train", "dev": "dev"}
EXCLUDE_TAGS = {"<foreign>", "<overlap>", "<dtmf>", "<prompt>"}
REMOVE_TAGS = {
    "<no-speech>", "<breath>", "<cough>", "<laugh>", "<lipsmack>", "<click>", "<sta>", "<ring>", "<int>",
    "<noise>", "<misc>", "<hes>", "<male-to-female>", "<female-to-male>",
}
TIMESTAMP = re.compile(r"^\[\s*(\d+(?:\.\d*)?)\s*\]$")
TAG = re.compile(r"<[^<>\s]*>")
LABELS = ("wrd", "ltr")


def clean_line(text: str, lang: str = "") -> tuple[str, str | None]:
    """Apply the tag rules to one transcript line -> (status, words).

    status: ``ok`` (words set), ``excluded`` (rule 1), ``non-speech`` (rule 3) or ``bad-tag`` (words holds
    the unknown tag).
    """
    if "(())" in text.replace(" ", "") or "~" in text:
        return "excluded", None
    tags = TAG.findall(text)
    if any(t in EXCLUDE_TAGS for t in tags):
        return "excluded", None
    unknown = [t for t in tags if t not in REMOVE_TAGS]
    if unknown:
        return "bad-tag", unknown[0]
    t = TAG.sub(" ", text)
    t = t.replace("((", " ").replace("))", " ")
    words = []
    for w in t.split():
        w = w.strip("-").replace("*", "")
        if w:
            words.append(w)
    norm = normalize_text(" ".join(words), lang)
    return ("ok", norm) if norm else ("non-speech", None)


def parse_transcript(path: Path, log: BadInputLog, lang: str = "") -> tuple[list[tuple[float, float | None, str, int]], dict]:
    """Segments ``(start_s, end_s or None, words, line)`` of a BABEL transcript, and counts per status."""
    times: list[tuple[float, int]] = []
    texts: list[tuple[int, str, int]] = []  # (index of the timestamp before, text, line)
    with open(path, encoding="utf-8") as f:
        for lineno, raw in enumerate(f, 1):
            line = raw.strip()
            if not line:
                continue
            m = TIMESTAMP.match(line)
            if m:
                t = float(m.group(1))
                if times and t < times[-1][0]:
                    raise DataError(f"timestamp {t} goes back (previous {times[-1][0]} at line {times[-1][1]})", path, lineno)
                times.append((t, lineno))
            elif line.startswith("[") and line.endswith("]"):
                raise DataError(f"malformed timestamp {line!r}", path, lineno)
            else:
                if not times:
                    raise DataError("text before the first timestamp", path, lineno)
                if texts and texts[-1][0] == len(times) - 1:
                    raise DataError("two text lines without a timestamp between them", path, lineno)
                texts.append((len(times) - 1, line, lineno))
    counts = {"ok": 0, "excluded": 0, "non-speech": 0}
    segs = []
    for ti, text, lineno in texts:
        status, words = clean_line(text, lang)
        if status == "bad-tag":
            log.bad(f"unknown tag {words}", path, lineno)
            continue
        counts[status] += 1
        if status != "ok":
            continue
        start = times[ti][0]
        end = times[ti + 1][0] if ti + 1 < len(times) else None
        if end is not None and end <= start:
            log.bad(f"empty segment [{start}, {end}]", path, lineno)
            counts["ok"] -= 1
            continue
        segs.append((start, end, words, lineno))
    return segs, counts


def _cut(job: tuple) -> list:
    """Worker: read one recording, cut (and unless ``segments`` write) its utterances.

    Returns ``[(line, num_samples_16k, start_frame, end_frame) | (line, None, reason)]``.
    """
    audio, txt, segs, dst_dir, segments = job
    frames, sr, _ = audio_info(audio)
    x = None
    results = []
    for start_s, end_s, _, lineno in segs:
        s = int(round(start_s * sr))
        e = frames if end_s is None else min(int(round(end_s * sr)), frames)
        if s >= e:
            results.append((lineno, None, f"segment starts at {start_s} s, after the audio ends ({frames / sr:.3f} s)"))
            continue
        if segments:
            results.append((lineno, resampled_length(e - s, sr), s, e))
            continue
        dst = Path(dst_dir) / f"{Path(audio).stem}_{lineno:05d}.flac"
        if dst.is_file():
            results.append((lineno, audio_info(dst)[0], s, e))
            continue
        if x is None:
            x = read_audio(audio, target_sr=None)
        import soxr

        y = x[s:e] if sr == SAMPLE_RATE else soxr.resample(x[s:e], sr, SAMPLE_RATE, quality="HQ").astype(np.float32)
        if len(y) == 0:
            results.append((lineno, None, "segment too short to resample"))
            continue
        write_audio(dst, y)
        results.append((lineno, len(y), s, e))
    return results


def prepare(
    root: Path,
    out: Path,
    workers: int = 1,
    skip_bad: bool = False,
    force: bool = False,
    lang: str | None = None,
    segments: bool = False,
) -> str:
    root, out = Path(root).resolve(), Path(out).resolve()
    conv = root / "conversational"
    if not conv.is_dir():
        raise DataError("no conversational/ folder (expected the BABEL language-pack layout)", root)
    lang = lang or ""
    out.mkdir(parents=True, exist_ok=True)
    log = BadInputLog(skip_bad, out / "babel.bad.tsv")
    info: dict[str, dict] = {}
    sizes: dict[str, dict] = {}
    present = [(d, n) for d, n in SPLITS.items() if (conv / d).is_dir()]
    if not present:
        raise DataError("no conversational/training or conversational/dev", root)
    for src_name, split in present:
        adir, tdir = conv / src_name / "audio", conv / src_name / "transcription"
        audio = {p.stem: p for p in sorted(adir.glob("*.sph"))} if adir.is_dir() else {}
        trans = {p.stem: p for p in sorted(tdir.glob("*.txt"))} if tdir.is_dir() else {}
        sig = file_signature(list(audio.values()) + list(trans.values()), {"lang": lang, "segments": segments, "v": 1})
        done = None if force else is_done(out, split, sig, [out / f"{split}.{k}" for k in ("tsv",) + LABELS])
        if done is not None:
            log.restore(done)
            info[split] = {k: done[k] for k in ("utterances", "hours", "excluded", "non-speech")}
            info[split]["skipped_done"] = True
            sizes[split] = done["sizes"]
            continue
        first_bad = len(log.items)
        for name in sorted(set(trans) - set(audio)):
            log.bad("transcript without audio", trans[name])
        for name in sorted(set(audio) - set(trans)):
            log.bad("audio without transcript", audio[name])
        jobs, texts = [], {}
        totals = {"excluded": 0, "non-speech": 0}
        for name in sorted(set(audio) & set(trans)):
            try:
                segs, counts = parse_transcript(trans[name], log, lang)
            except DataError as e:
                log.add(e)
                continue
            totals["excluded"] += counts["excluded"]
            totals["non-speech"] += counts["non-speech"]
            if segs:
                texts[name] = {ln: w for _, _, w, ln in segs}
                jobs.append((str(audio[name]), str(trans[name]), segs, str(out / "audio" / split), segments))
        results = parallel_map(_cut, jobs, workers, f"babel {split}", log)
        utts = []
        for job, res in zip(jobs, results):
            if res is None:
                continue
            name = Path(job[0]).stem
            for r in res:
                if r[1] is None:
                    log.bad(r[2], job[1], r[0])
                    continue
                lineno, n, s, e = r
                if segments:
                    utts.append(Utterance(f"{name}_{lineno:05d}", str(Path(job[0]).relative_to(root)), n,
                                          texts[name][lineno], s, e))
                else:
                    utts.append(Utterance(f"{name}_{lineno:05d}", f"audio/{split}/{name}_{lineno:05d}.flac", n,
                                          texts[name][lineno]))
        if not utts:
            raise DataError(f"no usable utterances in {split}", conv / src_name)
        write_split(out, split, root if segments else out, utts, LABELS)
        sizes[split] = {"utterances": len(utts), "samples": sum(u.num_samples for u in utts),
                        "hours": round(hours(utts), 4)}
        split_info = {"utterances": len(utts), "hours": round(hours(utts), 4), **totals}
        mark_done(out, split, sig, {**split_info, "sizes": sizes[split], "bad": log.items[first_bad:]})
        info[split] = split_info
    letters_dictionary(out, [out / f"{split}.ltr" for _, split in present])
    atomic_write_text(out / "sizes.json", json.dumps({"lang": lang or root.name, "splits": sizes}, indent=1) + "\n")
    text = summarize("babel", info, log, out)
    extra = [f"  {s}: dropped by the tag rules: {i.get('excluded', 0)} excluded, {i.get('non-speech', 0)} non-speech"
             for s, i in info.items()]
    return text + "\n" + "\n".join(extra)


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_common_arguments(p)
    p.add_argument("--lang", help="language code for text normalization (e.g. tr for Turkish casing)")
    p.add_argument("--segments", action="store_true",
                   help="write segment rows pointing into the .sph files instead of cutting 16 kHz FLAC files")


def run(args: argparse.Namespace) -> int:
    print(prepare(args.root, args.out, args.workers, args.skip_bad, args.force, args.lang, args.segments))
    run_sentencepiece(args, "babel", lambda splits: ["train"] if "train" in splits else splits)
    return 0
