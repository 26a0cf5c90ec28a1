"""fairseq manifests and label files.

Manifest ``.tsv`` (fairseq's format, read and written unchanged)::

    /abs/root/dir
    train-clean-100/103/1240/103-1240-0000.flac\t225360
    ...

Segment extension (ours; fairseq's loader does not read it): a row may carry two more columns,
``start`` and ``end``, the frame range ``[start, end)`` of a long recording *at that file's own sample
rate*; ``num_samples`` is always the length at 16 kHz that the loader returns (used for batching)::

    conversational/training/audio/BABEL_X.sph\t56000\t80000\t108000

Rows of both kinds may be mixed. Paths are relative to the root and must stay inside it (``../`` that leaves
the root is an error); absolute paths are allowed and used as they are. ``num_samples`` must match the
audio within 1% when it is loaded (a DataError names the row otherwise, see ``datasets.length_mismatch``).

Labels (``.wrd`` words, ``.ltr`` letters with ``|`` word boundaries, ``.phn`` space-separated phones)
are text files with one line per manifest row, in the same order.

Dictionaries and the text units of label lines live in :mod:`speech_ssl.data.units`.
"""

from __future__ import annotations

import posixpath
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Sequence

from speech_ssl.errors import DataError
from speech_ssl.files import atomic_write_text, read_text


@dataclass(frozen=True)
class ManifestEntry:
    """One row: ``path`` relative to the root, ``num_samples`` at 16 kHz, optional source-frame segment."""

    path: str
    num_samples: int
    start: int | None = None
    end: int | None = None

    def tsv(self) -> str:
        if self.start is None:
            return f"{self.path}\t{self.num_samples}"
        return f"{self.path}\t{self.num_samples}\t{self.start}\t{self.end}"


@dataclass
class Manifest:
    """A manifest: the root directory and its rows. ``source`` is the file it came from (for errors)."""

    root: str
    entries: list[ManifestEntry] = field(default_factory=list)
    source: str | None = None

    def __len__(self) -> int:
        return len(self.entries)

    @property
    def sizes(self) -> list[int]:
        return [e.num_samples for e in self.entries]

    def full_path(self, i: int) -> Path:
        p = Path(self.entries[i].path)
        return p if p.is_absolute() else Path(self.root) / p

    def line_of(self, i: int) -> int:
        """1-based line of row ``i`` in the manifest file (the root is line 1)."""
        return i + 2


def _int_field(value: str, name: str, path: Path, lineno: int) -> int:
    try:
        v = int(value)
    except ValueError:
        raise DataError(f"malformed manifest row: {name} {value!r} is not an integer", path, lineno) from None
    if v < 0:
        raise DataError(f"malformed manifest row: negative {name} {v}", path, lineno)
    return v


def read_manifest(path: str | Path) -> Manifest:
    """Read a fairseq manifest (with or without segment columns). Malformed rows -> DataError file:line."""
    path = Path(path)
    if not path.is_file():
        raise DataError("manifest not found", path)
    lines = read_text(path, "manifest").split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    if not lines or not lines[0].strip():
        raise DataError("empty manifest: the first line must be the root directory", path, 1)
    root = lines[0].rstrip("\r")
    if "\t" in root:
        raise DataError("the first line must be the root directory, not a row", path, 1)
    entries = []
    for i, raw in enumerate(lines[1:]):
        lineno = i + 2
        line = raw.rstrip("\r")
        if not line.strip():
            raise DataError("malformed manifest row: empty line", path, lineno)
        cols = line.split("\t")
        if len(cols) not in (2, 4):
            raise DataError(
                f"malformed manifest row: expected 2 tab-separated columns (path, num_samples) or 4 "
                f"(path, num_samples, start, end), got {len(cols)}",
                path,
                lineno,
            )
        if not cols[0]:
            raise DataError("malformed manifest row: empty path", path, lineno)
        if not posixpath.isabs(cols[0]) and posixpath.normpath(cols[0]).split("/")[0] == "..":
            raise DataError(
                f"row path {cols[0]!r} leaves the manifest's root {root}: relative paths must stay inside it "
                "(write an absolute path to use a file elsewhere)",
                path, lineno,
            )
        n = _int_field(cols[1], "num_samples", path, lineno)
        if n == 0:
            raise DataError("malformed manifest row: num_samples is 0", path, lineno)
        start = end = None
        if len(cols) == 4:
            start = _int_field(cols[2], "start", path, lineno)
            end = _int_field(cols[3], "end", path, lineno)
            if end <= start:
                raise DataError(f"malformed manifest row: end {end} <= start {start}", path, lineno)
        entries.append(ManifestEntry(cols[0], n, start, end))
    return Manifest(root=root, entries=entries, source=str(path))


def write_manifest(path: str | Path, root: str | Path, entries: Iterable[ManifestEntry]) -> None:
    """Write a manifest atomically; ``root`` is written as an absolute path."""
    lines = [str(Path(root).resolve())] + [e.tsv() for e in entries]
    atomic_write_text(path, "\n".join(lines) + "\n")


def read_labels(path: str | Path, num_rows: int | None = None, manifest: str | None = None) -> list[str]:
    """Lines of a label file (``.wrd``/``.ltr``/``.phn``); checks the count against the manifest."""
    path = Path(path)
    if not path.is_file():
        raise DataError("label file not found", path)
    lines = read_text(path, "label file").split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    lines = [ln.rstrip("\r") for ln in lines]
    if num_rows is not None and len(lines) != num_rows:
        where = f" ({manifest})" if manifest else ""
        raise DataError(
            f"label file has {len(lines)} lines but the manifest{where} has {num_rows} rows",
            path,
            min(len(lines), num_rows) + 1,
        )
    return lines


def write_labels(path: str | Path, lines: Sequence[str]) -> None:
    for i, ln in enumerate(lines):
        if "\n" in ln or "\r" in ln:
            raise ValueError(f"{path}: label {i + 1} contains a newline")
    atomic_write_text(path, "".join(ln + "\n" for ln in lines))
