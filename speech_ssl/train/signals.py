"""Stop signals: SIGTERM / SIGUSR1 make a run save a checkpoint at the end of the update and exit with
:data:`EXIT_STOPPED` (75, sysexits' EX_TEMPFAIL: not finished, continue with ``--resume``), so a wrapper (a
recipe, a scheduler) never mistakes a stopped run for a finished one; a finished run exits 0.

The main process only records the signal (:class:`StopSignals`); the trainer sends the flag through the
update's all-reduce so that every rank stops at the same update, then saves. DataLoader workers ignore
the signals (:func:`ignore_stop_signals`): a scheduler (or ``timeout``) signals the whole process group,
and a worker dying first would crash the step instead.
"""

from __future__ import annotations

import contextlib
import signal
import sys
import threading

EXIT_STOPPED = 75  # stopped by a signal after saving: resume to finish (sysexits EX_TEMPFAIL)


def ignore_stop_signals(worker_id: int) -> None:
    """``worker_init_fn`` of every DataLoader: ignore SIGTERM/SIGUSR1/SIGINT."""
    for s in (signal.SIGTERM, signal.SIGUSR1, signal.SIGINT):
        signal.signal(s, signal.SIG_IGN)


class StopSignals:
    """While installed, SIGTERM / SIGUSR1 only record the signal (``received``)."""

    def __init__(self, announce: bool):
        self.announce = announce  # rank 0 says what is going to happen
        self.received: int | None = None

    def _on_signal(self, signum, frame) -> None:  # noqa: ARG002
        self.received = signum
        if self.announce:
            print(
                f"received {signal.Signals(signum).name}: saving a checkpoint at the end of this update, then exiting",
                file=sys.stderr,
                flush=True,
            )

    @contextlib.contextmanager
    def installed(self):
        """Handle the signals inside the block (main thread only), the previous handlers after it."""
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        old = {s: signal.signal(s, self._on_signal) for s in (signal.SIGTERM, signal.SIGUSR1)}
        try:
            yield
        finally:
            for s, h in old.items():
                signal.signal(s, h)
