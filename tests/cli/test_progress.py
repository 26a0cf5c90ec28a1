"""Progress bars: on a terminal only (never in logs, pipes or the demo's children)."""

import io

from speech_ssl import progress as P


def test_bar_only_on_a_terminal(monkeypatch):
    class Tty(io.StringIO):
        def isatty(self):
            return True

    monkeypatch.delenv("SPEECH_SSL_NO_BAR", raising=False)
    monkeypatch.setattr(P.sys, "stderr", io.StringIO())
    assert not P.bar_enabled() and list(P.progress(range(3))) == [0, 1, 2]
    monkeypatch.setattr(P.sys, "stderr", Tty())
    assert P.bar_enabled()
    assert list(P.progress(range(3), desc="x")) == [0, 1, 2] and "x" in P.sys.stderr.getvalue()
    monkeypatch.setenv("SPEECH_SSL_NO_BAR", "1")
    assert not P.bar_enabled()
