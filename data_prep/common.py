"""Shared machinery for corpus preparation: bad-input log, parallel map with progress, stamps, writers.

Every preparer follows the same rules:
- outputs go to ``--out``: ``<split>.tsv`` (fairseq manifest), label files (``.wrd``, ``.ltr``, ``.phn``),
  ``dict.*.txt``; every file is written atomically (tmp + rename);
- idempotent and resumable: a finished split leaves a stamp ``.prep/<split>.json`` holding a signature
  of its inputs (file names and sizes) and is skipped while the signature matches (``--force`` redoes
  it); converted audio files are written atomically one by one and never redone, so an interrupted run
  continues where it stopped;
- bad input (missing/unreadable/empty/corrupt audio, NaN/Inf, transcripts without audio and audio
  without transcripts, duplicate ids, malformed lines) raises ``DataError`` naming the file (and line)
  at the first occurrence; with ``--skip-bad`` each is skipped, counted and listed in
  ``<out>/<corpus>.bad.tsv`` (``file:line<TAB>reason``), and the summary states kept and skipped counts.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import multiprocessing
import os
import re
import sys
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

from speech_ssl.data.audio import SAMPLE_RATE, audio_info, read_audio, resampled_length
from speech_ssl.data.manifest import ManifestEntry, write_labels, write_manifest
from speech_ssl.data.units import build_dictionary, text_to_letters
from speech_ssl.errors import DataError
from speech_ssl.files import atomic_write_text, read_text

AUDIO_EXTS = (".flac", ".wav", ".ogg", ".opus", ".mp3", ".sph")
MIN_ITEMS_FOR_POOL = 32  # fewer items are processed in this process (starting workers costs more)


# -- bad input ----------------------------------------------------------------------------------------
def _category(reason: str) -> str:
    """A short reason category for the summary counts (the text before any detail)."""
    r = reason.split(" (")[0].split(":")[0]
    r = re.sub(r"\d+", "N", r)
    return r[:60]


class BadInputLog:
    """Raise at the first bad input, or (``skip_bad``) record it for the report and the summary."""

    def __init__(self, skip_bad: bool, report_path: str | Path):
        self.skip_bad = skip_bad
        self.report_path = Path(report_path)
        self.items: list[tuple[str, str]] = []  # (where, reason), each once

    def add(self, err: DataError) -> None:
        if not self.skip_bad:
            raise err
        where = err.path or "?"
        if err.line is not None:
            where = f"{where}:{err.line}"
        if (where, err.reason) not in self.items:
            self.items.append((where, err.reason))

    def bad(self, reason: str, path: Any, line: int | None = None) -> None:
        self.add(DataError(reason, path, line))

    def restore(self, done: dict) -> None:
        """Record again the bad inputs listed in a finished split's stamp (``done["bad"]``), each once."""
        for x in map(tuple, done.get("bad", [])):
            if x not in self.items:
                self.items.append(x)

    def counts(self) -> Counter:
        return Counter(_category(r) for _, r in self.items)

    def write(self) -> Path | None:
        """Write the report (only when something was skipped; an old report is removed otherwise)."""
        if not self.items:
            if self.report_path.exists():
                self.report_path.unlink()
            return None
        atomic_write_text(self.report_path, "".join(f"{w}\t{r}\n" for w, r in self.items))
        return self.report_path


# -- parallel map ----------------------------------------------------------------------------------------
def _guarded(args: tuple[Callable, Any]) -> tuple[str, Any]:
    fn, item = args
    try:
        return "ok", fn(item)
    except DataError as e:
        return "bad", (e.reason, e.path, e.line)


def parallel_map(
    fn: Callable[[Any], Any], items: Sequence[Any], workers: int, desc: str, log: BadInputLog
) -> list[Any]:
    """``[fn(x) for x in items]`` over ``workers`` processes with a tqdm bar, in order.

    A DataError from ``fn`` goes to ``log`` (raised, or recorded and the result set to None).
    ``fn`` must be a picklable top-level function when ``workers > 1``.
    """
    from tqdm import tqdm

    results: list[Any] = [None] * len(items)
    jobs = [(fn, x) for x in items]
    bar = tqdm(total=len(items), desc=desc, unit="file", disable=None, file=sys.stderr, dynamic_ncols=True)
    try:
        if workers <= 1 or len(items) < max(2, MIN_ITEMS_FOR_POOL):
            outs: Iterable = map(_guarded, jobs)
            pool = None
        else:
            # forkserver: workers start clean, not as copies of a parent that may hold C-library state
            # (eSpeak NG's engine, open files), which is unsafe to fork.
            pool = ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("forkserver"))
            chunk = max(1, min(64, len(items) // (workers * 8)))
            outs = pool.map(_guarded, jobs, chunksize=chunk)
        try:
            for i, (status, value) in enumerate(outs):
                bar.update(1)
                if status == "ok":
                    results[i] = value
                else:
                    reason, path, line = value
                    log.add(DataError(reason, path, line))
        finally:
            if pool is not None:
                pool.shutdown(cancel_futures=True)
    finally:
        bar.close()
    return results


# -- stamps ---------------------------------------------------------------------------------------------
def file_signature(paths: Iterable[Path], extra: Any = None) -> str:
    """Hash of (path, size) for the inputs plus ``extra`` options: changes when the inputs change."""
    h = hashlib.sha1()
    for p in sorted(str(p) for p in paths):
        try:
            size = os.stat(p).st_size
        except OSError:
            size = -1
        h.update(f"{p}\0{size}\n".encode())
    h.update(json.dumps(extra, sort_keys=True, default=str).encode())
    return h.hexdigest()


def stamp_path(out: Path, name: str) -> Path:
    return out / ".prep" / f"{name}.json"


def is_done(out: Path, name: str, signature: str, outputs: Iterable[Path]) -> dict | None:
    """The stamp of a finished split when its signature matches and its outputs exist, else None."""
    p = stamp_path(out, name)
    if not p.is_file():
        return None
    try:
        st = json.loads(p.read_text())
    except (OSError, ValueError):
        return None
    if st.get("signature") != signature or not all(Path(o).is_file() for o in outputs):
        return None
    return st


def mark_done(out: Path, name: str, signature: str, info: dict) -> None:
    atomic_write_text(stamp_path(out, name), json.dumps({"signature": signature, **info}, indent=1) + "\n")


# -- utterances and writers --------------------------------------------------------------------------------
@dataclass
class Utterance:
    """One prepared utterance. ``path`` is relative to the manifest root; ``num_samples`` at 16 kHz."""

    id: str
    path: str
    num_samples: int
    words: str
    start: int | None = None
    end: int | None = None
    extra: dict = field(default_factory=dict)  # e.g. {"phn": "..."}

    def entry(self) -> ManifestEntry:
        return ManifestEntry(self.path, self.num_samples, self.start, self.end)


def write_split(
    out: Path, name: str, root: Path, utts: Sequence[Utterance], label_kinds: Sequence[str] = ("wrd", "ltr")
) -> list[Path]:
    """``<name>.tsv`` plus one label file per kind (``wrd`` words, ``ltr`` letters, others from ``extra``)."""
    out.mkdir(parents=True, exist_ok=True)
    write_manifest(out / f"{name}.tsv", root, [u.entry() for u in utts])
    written = [out / f"{name}.tsv"]
    for kind in label_kinds:
        if kind == "wrd":
            lines = [u.words for u in utts]
        elif kind == "ltr":
            lines = [text_to_letters(u.words) for u in utts]
        else:
            lines = [u.extra[kind] for u in utts]
        write_labels(out / f"{name}.{kind}", lines)
        written.append(out / f"{name}.{kind}")
    return written


def hours(utts: Iterable[Utterance]) -> float:
    return sum(u.num_samples for u in utts) / SAMPLE_RATE / 3600


# -- LibriSpeech-style trees (LibriSpeech, Libri-light fine-tuning sets) ---------------------------------
def _header_16k(path: str) -> int:
    frames, sr, _ = audio_info(path)
    return resampled_length(frames, sr)


def _decoded_16k(path: str) -> int:
    """Decode the whole file (catches corrupt frames and NaN/Inf that a header read cannot)."""
    return len(read_audio(path))


def read_trans_files(trans_files: Sequence[Path], log: BadInputLog) -> dict[str, tuple[str, Path, int]]:
    """``ID TEXT`` lines of LibriSpeech ``*.trans.txt`` files -> {id: (text, file, line)}."""
    out: dict[str, tuple[str, Path, int]] = {}
    for tf in trans_files:
        try:
            text_lines = read_text(tf, "transcript file").split("\n")
        except DataError as e:
            log.bad(e.reason, tf, e.line)
            continue
        for lineno, raw in enumerate(text_lines, 1):
            line = raw.rstrip("\r")
            if not line.strip():
                continue
            parts = line.split(" ", 1)
            if len(parts) != 2 or not parts[1].strip():
                log.bad("malformed transcript line: expected 'ID TEXT'", tf, lineno)
                continue
            uid, text = parts[0], " ".join(parts[1].split())
            if uid in out:
                prev = out[uid]
                log.bad(f"duplicate utterance id {uid!r} (first at {prev[1]}:{prev[2]})", tf, lineno)
                continue
            out[uid] = (text, tf, lineno)
    return out


def scan_librispeech_tree(
    directory: Path, root: Path, workers: int, log: BadInputLog, desc: str, verify: bool = False
) -> list[Utterance]:
    """Utterances of a LibriSpeech-layout tree (``<spk>/<chapter>/<id>.flac`` + ``<spk>-<chapter>.trans.txt``).

    Paths are made relative to ``root``. Sorted by id. Audio headers are read in parallel (``verify``:
    every file is decoded in full instead).
    """
    trans = read_trans_files(sorted(directory.rglob("*.trans.txt")), log)
    audio: dict[str, Path] = {}
    for p in sorted(directory.rglob("*")):
        if p.suffix.lower() not in AUDIO_EXTS or not p.is_file():
            continue
        if p.stem in audio:
            log.bad(f"duplicate utterance id {p.stem!r} (also {audio[p.stem]})", p)
            continue
        audio[p.stem] = p
    for uid in sorted(set(trans) - set(audio)):
        _, tf, lineno = trans[uid]
        log.bad(f"transcript without audio: {uid}", tf, lineno)
    for uid in sorted(set(audio) - set(trans)):
        log.bad("audio without transcript", audio[uid])
    ids = sorted(set(trans) & set(audio))
    sizes = parallel_map(_decoded_16k if verify else _header_16k, [str(audio[i]) for i in ids], workers, desc, log)
    return [
        Utterance(uid, os.path.relpath(audio[uid], root), n, trans[uid][0])
        for uid, n in zip(ids, sizes)
        if n is not None
    ]


def tree_signature(directory: Path, extra: Any = None) -> str:
    return file_signature((p for p in directory.rglob("*") if p.is_file()), extra)


def prepare_tree_splits(
    corpus: str,
    splits: dict[str, list[str]],
    root: Path,
    out: Path,
    workers: int,
    log: BadInputLog,
    force: bool,
    verify: bool = False,
    labels: tuple[str, ...] = ("wrd", "ltr"),
) -> dict[str, dict]:
    """Write each split (``name -> folders below root``, LibriSpeech layout) as ``<name>.tsv`` + labels;
    returns per-split info. A folder shared by several splits is scanned once; a split whose stamp matches
    its folders' signatures is skipped (its bad inputs are recorded again)."""
    sigs: dict[str, str] = {}
    scanned: dict[str, tuple[list[Utterance], list]] = {}  # folder -> (utterances, its bad inputs)
    info: dict[str, dict] = {}
    for name, units in splits.items():
        for u in units:
            if u not in sigs:
                sigs[u] = tree_signature(root / u, {"rel": u, "verify": verify})
        sig = "+".join(sigs[u] for u in units)
        done = None if force else is_done(out, name, sig, [out / f"{name}.{k}" for k in ("tsv",) + labels])
        if done is not None:
            log.restore(done)
            info[name] = {"utterances": done["utterances"], "hours": done["hours"], "skipped_done": True}
            continue
        utts, bad = [], []
        for u in units:
            if u not in scanned:
                first_bad = len(log.items)
                found = scan_librispeech_tree(root / u, root, workers, log, f"{corpus} {u}", verify)
                scanned[u] = (found, log.items[first_bad:])
            utts.extend(scanned[u][0])
            bad.extend(scanned[u][1])
        if not utts:
            raise DataError(f"no usable utterances in split {name}", root / units[0])
        write_split(out, name, root, utts, labels)
        split_info = {"utterances": len(utts), "hours": round(hours(utts), 4)}
        mark_done(out, name, sig, {**split_info, "bad": bad})
        info[name] = split_info
    return info


# -- text ------------------------------------------------------------------------------------------------
def letters_dictionary(out: Path, ltr_files: Sequence[Path], name: str = "dict.ltr.txt") -> Path:
    """``name`` (fairseq format, symbols by count; ``dict.ltr.txt`` by default) from label files (letters,
    phones, ...): the symbols of their lines."""
    lines: list[str] = []
    for f in ltr_files:
        lines.extend(Path(f).read_text(encoding="utf-8").splitlines())
    build_dictionary(lines).save(out / name)
    return out / name


def sentencepiece_labels(
    out: Path, train: Sequence[str], splits: Sequence[str], vocab_size: int, model_type: str = "unigram"
) -> dict:
    """Train sentencepiece on the ``.wrd`` of the ``train`` splits; write ``<split>.spm`` for every split,
    ``spm.model``/``spm.vocab`` and ``dict.spm.txt``. Skipped when already done for the same inputs."""
    from speech_ssl.data.units import SentencePieceVocab, train_sentencepiece

    wrd = [out / f"{s}.wrd" for s in splits]
    sig = file_signature(wrd, {"train": list(train), "vocab": vocab_size, "type": model_type})
    outputs = [out / "spm.model", out / "dict.spm.txt"] + [out / f"{s}.spm" for s in splits]
    done = is_done(out, "sentencepiece", sig, outputs)
    if done is not None:
        return done
    texts: list[str] = []
    for s in train:
        texts.extend((out / f"{s}.wrd").read_text(encoding="utf-8").splitlines())
    model = train_sentencepiece(texts, out / ".prep" / "spm", vocab_size=vocab_size, model_type=model_type)
    for suffix in (".model", ".vocab"):
        os.replace(out / ".prep" / f"spm{suffix}", out / f"spm{suffix}")
    sp = SentencePieceVocab(out / "spm.model")
    sp.dictionary().save(out / "dict.spm.txt")
    for s in splits:
        lines = (out / f"{s}.wrd").read_text(encoding="utf-8").splitlines()
        write_labels(out / f"{s}.spm", [sp.encode_line(t) for t in lines])
    info = {"vocab_size": sp.sp.get_piece_size(), "model_type": model_type, "trained_on": list(train)}
    mark_done(out, "sentencepiece", sig, info)
    del model
    return info


def run_sentencepiece(args: argparse.Namespace, corpus: str, pick_train: Callable[[list[str]], list[str]]) -> None:
    """After a preparer: ``--sentencepiece N`` labels for every split listed in ``<corpus>.summary.json``."""
    if not getattr(args, "sentencepiece", 0):
        return
    out = Path(args.out)
    splits = list(json.loads((out / f"{corpus}.summary.json").read_text())["splits"])
    train = pick_train(splits)
    info = sentencepiece_labels(out, train, splits, args.sentencepiece, args.sentencepiece_type)
    print(f"  sentencepiece ({info['model_type']}, {info['vocab_size']} pieces, trained on {', '.join(train)}): "
          f"{out / 'spm.model'}, <split>.spm, dict.spm.txt")


def phonemizer(lang: str) -> Callable[[str], list[str]]:
    """IPA phones of a text through eSpeak NG (``data_prep.synth.espeak``, the ``espeakng-loader`` wheel)."""
    try:
        from data_prep.synth.espeak import phonemize
    except ImportError as e:  # pragma: no cover - depends on the optional synth extra
        raise RuntimeError(
            f"phonemes need eSpeak NG: pip install espeakng-loader (or pass --no-phones): {e}"
        ) from e
    return lambda text: phonemize(text, lang)


# -- summary and CLI helpers ---------------------------------------------------------------------------------
def summarize(corpus: str, splits: dict[str, dict], log: BadInputLog, out: Path) -> str:
    """Human-readable end-of-run summary; also written to ``<out>/<corpus>.summary.json``."""
    report = log.write()
    lines = [f"{corpus}: prepared into {out}"]
    for name, info in splits.items():
        state = " (already done)" if info.get("skipped_done") else ""
        lines.append(f"  {name:<16} {info['utterances']:>8} utterances  {info['hours']:9.3f} h{state}")
    counts = log.counts()
    lines.append(f"  kept {sum(i['utterances'] for i in splits.values())} utterances, skipped {len(log.items)} bad inputs")
    for reason, n in counts.most_common():
        lines.append(f"    {n:>6}  {reason}")
    if report:
        lines.append(f"  report: {report}")
    summary = {"corpus": corpus, "splits": splits, "skipped": len(log.items), "skipped_by_reason": dict(counts),
               "report": str(report) if report else None}
    atomic_write_text(out / f"{corpus}.summary.json", json.dumps(summary, indent=1) + "\n")
    return "\n".join(lines)


def add_verify_argument(p: argparse.ArgumentParser) -> None:
    p.add_argument("--verify-audio", action="store_true",
                   help="decode every audio file in full (finds corrupt frames and NaN/Inf samples; by default "
                        "only headers are read, as nothing is converted). --skip-bad turns it on: a file can only "
                        "be skipped when it is found bad now, not mid-training")


def add_common_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--root", required=True, type=Path, help="the corpus directory in its published layout")
    p.add_argument("--out", required=True, type=Path, help="output directory (manifests, labels, dictionaries)")
    p.add_argument("--workers", type=int, default=max(1, min(4, os.cpu_count() or 1)),
                   help="parallel worker processes (default: min(4, CPUs))")
    p.add_argument("--skip-bad", action="store_true",
                   help="skip bad inputs, count them and list them in OUT/<corpus>.bad.tsv instead of stopping "
                        "(every audio file is then decoded in full to find them: --verify-audio)")
    p.add_argument("--force", action="store_true", help="redo splits that are already finished")
    p.add_argument("--sentencepiece", type=int, default=0, metavar="VOCAB",
                   help="also train a sentencepiece model of VOCAB pieces on the train transcripts and write "
                        "<split>.spm labels, spm.model and dict.spm.txt")
    p.add_argument("--sentencepiece-type", choices=["unigram", "bpe"], default="unigram")
