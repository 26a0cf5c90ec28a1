"""Errors for bad user input. Messages name the file and, for text, the line."""

from __future__ import annotations

import re


class DataError(ValueError):
    """Bad input data: unreadable audio, malformed manifest rows, unknown symbols, ...

    ``path`` and ``line`` (1-based) locate the problem; ``str(err)`` starts with ``path:line:``.
    """

    def __init__(self, message: str, path: object = None, line: int | None = None):
        self.path = None if path is None else str(path)
        self.line = line
        self.reason = message
        where = ""
        if self.path is not None:
            where = f"{self.path}:{line}: " if line is not None else f"{self.path}: "
        super().__init__(where + message)


def describe_load_error(e: BaseException) -> str:
    """One sentence for a ``torch.load(weights_only=True)`` failure, without torch's advice to turn the
    protection off: which object it refused, or that the file is not a complete torch archive."""
    text = str(e)
    if "Weights only load failed" in text:
        m = re.search(r"Unsupported global: GLOBAL (\S+)", text)
        what = f"a pickled {m.group(1)} object" if m else "pickled Python objects"
        return (f"it contains {what}; only tensors and plain values are loaded (code in a pickle could run), "
                "so this file was not written by this tool or was changed since")
    if "central directory" in text or "zip archive" in text:
        return "not a complete torch archive (truncated or corrupted; restore it or use an older checkpoint)"
    return f"{type(e).__name__}: {text.splitlines()[0] if text else ''}"
