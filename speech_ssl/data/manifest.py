"""fairseq manifests, label files and dictionaries.

Manifest ``.tsv`` (fairseq's format, read and written unchanged)::

    /abs/root/dir
    train-clean-100/103/1240/103-1240-0000.flac\t225360
    ...

Segment extension (ours; fairseq's loader does not read it): a row may carry two more columns,
``start`` and ``end``, the frame range ``[start, end)`` of a long recording *at that file's own sample
rate*; ``num_samples`` is always the length at 16 kHz that the loader returns (used for batching)::

    conversational/training/audio/BABEL_X.sph\t56000\t80000\t108000

Rows of both kinds may be mixed. Paths are relative to the root (absolute paths are allowed too).

Labels (``.wrd`` words, ``.ltr`` letters with ``|`` word boundaries, ``.phn`` space-separated phones)
are text files with one line per manifest row, in the same order.

Dictionaries are fairseq's ``dict.*.txt``: ``SYMBOL COUNT`` lines (an optional trailing
``#fairseq:overwrite`` flag is accepted); indices 0..3 are the specials ``<s> <pad> </s> <unk>``, then
the file's symbols in file order. Difference from fairseq: ``Dictionary.encode`` raises a DataError
naming the label file and line for a symbol outside the dictionary instead of silently mapping it to
``<unk>`` (pass ``unk_ok=True`` for fairseq's behaviour).
"""

from __future__ import annotations

import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Iterable, Sequence

from speech_ssl.errors import DataError

if TYPE_CHECKING:
    import torch


def atomic_write_text(path: str | Path, text: str) -> None:
    """Write ``text`` to ``path`` via a temporary file and rename (readers never see a partial file)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "w", encoding="utf-8", newline="\n") as f:
        f.write(text)
    os.replace(tmp, path)


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
    with open(path, encoding="utf-8") as f:
        lines = f.read().split("\n")
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
    with open(path, encoding="utf-8") as f:
        lines = f.read().split("\n")
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


class Dictionary:
    """fairseq ``Dictionary``: ``<s>``=0, ``<pad>``=1, ``</s>``=2, ``<unk>``=3, then symbols in order."""

    SPECIALS = ("<s>", "<pad>", "</s>", "<unk>")

    def __init__(self, symbols: Iterable[str] = (), counts: Iterable[int] | None = None):
        self.symbols: list[str] = list(self.SPECIALS)
        self.count: list[int] = [0, 0, 0, 0]
        self.indices: dict[str, int] = {s: i for i, s in enumerate(self.symbols)}
        counts = list(counts) if counts is not None else None
        for j, s in enumerate(symbols):
            self.add_symbol(s, counts[j] if counts is not None else 1)

    bos_index, pad_index, eos_index, unk_index = 0, 1, 2, 3
    blank_index = 0  # CTC blank is fairseq's <s>

    def __len__(self) -> int:
        return len(self.symbols)

    def __contains__(self, sym: str) -> bool:
        return sym in self.indices

    def __getitem__(self, i: int) -> str:
        return self.symbols[i]

    def index(self, sym: str) -> int:
        return self.indices[sym]

    def add_symbol(self, sym: str, n: int = 1) -> int:
        if not sym or any(c.isspace() for c in sym):
            raise ValueError(f"dictionary symbol {sym!r} is empty or contains whitespace")
        if sym in self.indices:
            i = self.indices[sym]
            self.count[i] += n
            return i
        self.indices[sym] = len(self.symbols)
        self.symbols.append(sym)
        self.count.append(n)
        return self.indices[sym]

    @classmethod
    def from_counts(cls, counter: Counter | dict[str, int]) -> "Dictionary":
        """Symbols sorted by count (descending), ties by symbol, like fairseq's ``finalize`` (no padding)."""
        items = sorted(((s, c) for s, c in counter.items() if s not in cls.SPECIALS), key=lambda t: (-t[1], t[0]))
        return cls([s for s, _ in items], [c for _, c in items])

    @classmethod
    def load(cls, path: str | Path) -> "Dictionary":
        """Read ``dict.*.txt`` (``SYMBOL COUNT`` per line). Bad lines -> DataError file:line."""
        path = Path(path)
        if not path.is_file():
            raise DataError("dictionary not found", path)
        d = cls()
        with open(path, encoding="utf-8") as f:
            for lineno, raw in enumerate(f, 1):
                line = raw.rstrip("\r\n")
                if not line.strip():
                    raise DataError("malformed dictionary line: empty", path, lineno)
                overwrite = False
                if line.endswith(" #fairseq:overwrite"):
                    overwrite = True
                    line = line[: -len(" #fairseq:overwrite")]
                parts = line.rsplit(" ", 1)
                if len(parts) != 2:
                    raise DataError("malformed dictionary line: expected 'SYMBOL COUNT'", path, lineno)
                sym, cnt = parts
                try:
                    n = int(cnt)
                except ValueError:
                    raise DataError(f"malformed dictionary line: count {cnt!r} is not an integer", path, lineno) from None
                if not sym or any(c.isspace() for c in sym):
                    raise DataError(f"malformed dictionary line: bad symbol {sym!r}", path, lineno)
                if sym in d.indices and not overwrite:
                    raise DataError(
                        f"duplicate symbol {sym!r} (add '#fairseq:overwrite' to override)", path, lineno
                    )
                if sym in d.indices:
                    d.count[d.indices[sym]] = n
                else:
                    d.add_symbol(sym, n)
        return d

    def save(self, path: str | Path) -> None:
        """Write ``SYMBOL COUNT`` lines (specials omitted, as fairseq does), atomically."""
        atomic_write_text(
            path, "".join(f"{s} {c}\n" for s, c in zip(self.symbols[4:], self.count[4:]))
        )

    def encode(
        self,
        line: str,
        source: str | None = None,
        lineno: int | None = None,
        unk_ok: bool = False,
        append_eos: bool = False,
    ) -> "torch.Tensor":
        """Space-separated symbols -> (S,) int64 indices.

        Unknown symbols raise DataError naming ``source:lineno`` unless ``unk_ok`` (then ``<unk>``).
        """
        ids = []
        for sym in line.split():
            i = self.indices.get(sym)
            if i is None:
                if not unk_ok:
                    raise DataError(f"symbol {sym!r} is not in the dictionary", source, lineno)
                i = self.unk_index
            ids.append(i)
        if append_eos:
            ids.append(self.eos_index)
        import torch  # imported here so that data preparation does not need torch

        return torch.tensor(ids, dtype=torch.long)

    def decode(self, ids: "Iterable[int] | torch.Tensor", skip_specials: bool = True) -> str:
        """Indices -> space-separated symbols (specials dropped unless ``skip_specials=False``)."""
        if hasattr(ids, "tolist"):
            ids = ids.tolist()
        out = []
        for i in ids:
            i = int(i)
            if skip_specials and i < len(self.SPECIALS) and i != self.unk_index:
                continue
            out.append(self.symbols[i])
        return " ".join(out)
