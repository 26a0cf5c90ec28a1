"""Decoding outputs: ``id<TAB>text`` transcript files and JSON lines, written atomically."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Iterable

from speech_ssl.errors import DataError
from speech_ssl.files import atomic_write_text, read_text


def write_jsonl(path: str | Path, rows: Iterable[dict]) -> None:
    atomic_write_text(path, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))


def write_transcripts(path: str | Path, ids: list[str], texts: list[str]) -> None:
    """``id<TAB>text`` lines, atomically."""
    atomic_write_text(path, "".join(f"{i}\t{t}\n" for i, t in zip(ids, texts)))


def read_transcripts(path: str | Path, what: str = "transcript file") -> tuple[list[str], list[str], bool]:
    """Read a transcript file: either every non-empty line is ``id<TAB>text``, or plain lines.

    Returns ``(ids, texts, has_ids)``. Plain files get ids ``"1".."N"`` (line numbers) and keep
    empty lines as empty transcripts. Duplicate ids raise :class:`DataError` naming file and line.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{what} not found", path)
    try:
        lines = read_text(path, what).split("\n")
    except UnicodeDecodeError as e:
        raise DataError(f"not UTF-8 text ({e})", path) from e
    if lines and lines[-1] == "":
        lines.pop()
    lines = [ln.rstrip("\r") for ln in lines]
    nonempty = [ln for ln in lines if ln.strip()]
    has_ids = bool(nonempty) and all("\t" in ln for ln in nonempty)
    if not has_ids:
        return [str(i + 1) for i in range(len(lines))], [ln.strip() for ln in lines], False
    ids: list[str] = []
    texts: list[str] = []
    seen: dict[str, int] = {}
    for lineno, ln in enumerate(lines, 1):
        if not ln.strip():
            continue
        uid, text = ln.split("\t", 1)
        uid = uid.strip()
        if not uid:
            raise DataError("empty utterance id before the tab", path, lineno)
        if uid in seen:
            raise DataError(f"duplicate utterance id {uid!r} (first on line {seen[uid]})", path, lineno)
        seen[uid] = lineno
        ids.append(uid)
        texts.append(text.strip())
    return ids, texts, True
