"""Errors for bad user input. Messages name the file and, for text, the line."""

from __future__ import annotations


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
