"""Progress bars for the long steps of every command: tqdm on stderr when stderr is a terminal, nothing in logs,
pipes, CI or the demo's children (``SPEECH_SSL_NO_BAR=1``)."""

from __future__ import annotations

import os
import sys
from typing import Iterable, TypeVar

from tqdm import tqdm

T = TypeVar("T")


def bar_enabled() -> bool:
    return sys.stderr.isatty() and not os.environ.get("SPEECH_SSL_NO_BAR")


def progress(iterable: Iterable[T], total: int | None = None, desc: str = "", unit: str = "it") -> Iterable[T]:
    """``iterable`` with a bar when :func:`bar_enabled`; the bar disappears when the loop ends."""
    return tqdm(iterable, total=total, desc=desc, unit=unit, disable=not bar_enabled(), file=sys.stderr,
                dynamic_ncols=True, leave=False)
