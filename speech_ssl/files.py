"""Atomic file writes: readers never see a half-written file, and a crash leaves the old file intact.

Every file the package writes for a user (manifests, labels, dictionaries, configs, transcripts, weights,
embeddings) goes through :func:`atomic_write_bytes` / :func:`atomic_write_text` / :func:`atomic_open`: the
data is written to ``.<name>.<pid>.tmp`` beside the target, flushed and fsynced, then renamed over it
(``os.replace`` is atomic on POSIX and Windows). Checkpoint *folders* use the same temp-and-rename idea one
level up (``speech_ssl.train.checkpoint``).
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import IO, Iterator

from speech_ssl.errors import DataError


def temp_path(path: str | Path) -> Path:
    """The temporary name used while ``path`` is being written (hidden, per process)."""
    path = Path(path)
    return path.with_name(f".{path.name}.{os.getpid()}.tmp")


@contextlib.contextmanager
def atomic_open(path: str | Path, mode: str = "w", fsync: bool = True) -> Iterator[IO]:
    """``open`` for writing whose result appears at ``path`` only when the block ends without error.

    ``mode`` is ``"w"`` (UTF-8 text, ``\\n`` newlines) or ``"wb"``. Parent folders are created.
    ``fsync=False`` skips the flush to disk (for bulk data that is cheap to regenerate, e.g. synthetic audio):
    still never a partial file, but a power loss may lose the newest files.
    """
    if mode not in ("w", "wb"):
        raise ValueError(f"atomic_open writes whole files: mode 'w' or 'wb', got {mode!r}")
    path = Path(path)
    if path.is_dir():
        raise DataError("exists and is a folder; this output is a file: name one (inside it, or elsewhere)", path)
    output_dir(path.parent)
    tmp = temp_path(path)
    kwargs = {"encoding": "utf-8", "newline": "\n"} if mode == "w" else {}
    try:
        with open(tmp, mode, **kwargs) as f:
            yield f
            f.flush()
            if fsync:
                os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def output_dir(path: str | Path) -> Path:
    """Create the output folder ``path`` (and its parents); a file where a folder must go is a DataError
    naming it, not a ``FileExistsError`` traceback."""
    path = Path(path)
    for p in (path, *path.parents):
        if p.exists() and not p.is_dir():
            raise DataError("exists and is a file; this output is a folder: name another", p)
        if p.is_dir():
            break
    path.mkdir(parents=True, exist_ok=True)
    return path


def atomic_write_bytes(path: str | Path, data: bytes, fsync: bool = True) -> None:
    """Write ``data`` to ``path`` atomically (temp file, fsync, rename)."""
    with atomic_open(path, "wb", fsync) as f:
        f.write(data)


def atomic_write_text(path: str | Path, text: str) -> None:
    """Write UTF-8 ``text`` to ``path`` atomically (temp file, fsync, rename)."""
    with atomic_open(path, "w") as f:
        f.write(text)


def fsync_dir(path: str | Path) -> None:
    """Make a rename inside ``path`` durable (no-op where directories cannot be opened, e.g. Windows)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def read_text(path: str | Path, what: str = "file") -> str:
    """The UTF-8 text of ``path``; bytes that are not UTF-8 raise a DataError naming the file, line and column
    (instead of a bare ``UnicodeDecodeError``). ``what`` names the kind of file in the message."""
    path = Path(path)
    data = path.read_bytes()
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        line = data.count(b"\n", 0, e.start) + 1
        column = e.start - (data.rfind(b"\n", 0, e.start) + 1) + 1
        raise DataError(
            f"{what} is not UTF-8 text: byte 0x{data[e.start]:02x} at column {column}; re-encode it as UTF-8 "
            "(e.g. iconv -f latin1 -t utf-8)",
            path, line,
        ) from None


def settings_changes(path: str | Path, want: dict) -> list[str]:
    """The settings ``want`` against the JSON record at ``path`` of the ones that made a folder's contents:
    the first call writes the record (atomically) and returns []; later ones return ``"key A there, B now"``
    for each difference. A record that is not valid JSON is a :class:`DataError` naming its line."""
    import json

    path = Path(path)
    if not path.exists():
        atomic_write_text(path, json.dumps(want, indent=1) + "\n")
        return []
    try:
        have = json.loads(read_text(path, "settings record"))
    except json.JSONDecodeError as e:
        raise DataError(f"not valid JSON ({e.msg}); remove it or choose another output folder", path, e.lineno) from e
    return [f"{k} {have.get(k)!r} there, {v!r} now" for k, v in want.items() if have.get(k) != v]


def check_outputs(outputs: dict[str, str | Path | None], inputs: dict[str, str | Path | None]) -> None:
    """A DataError when an output (``{"--out": path}``) is one of the inputs or another output: writing it would
    destroy what is read (an LM written over its training text, a score over its references)."""
    seen: dict[Path, str] = {}
    for name, p in inputs.items():
        if p is not None:
            seen.setdefault(Path(p).resolve(), f"the input {name}")
    for name, p in outputs.items():
        if p is None:
            continue
        key = Path(p).resolve()
        if key in seen:
            raise DataError(f"{name} is {seen[key]}: writing it would destroy it; choose another output", p)
        seen[key] = f"also {name}"
