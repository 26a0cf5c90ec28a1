"""The command line as users meet it: progress bars on a terminal only, help without markup."""

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


def test_help_has_no_restructuredtext_markup():
    import argparse

    from speech_ssl.cli import build_parser

    def texts(p: argparse.ArgumentParser):
        yield p.format_help()
        for a in p._actions:
            if isinstance(a, argparse._SubParsersAction):
                for sub in a.choices.values():
                    yield from texts(sub)

    for t in texts(build_parser()):
        assert "``" not in t and ":func:`" not in t and ":class:`" not in t, t[:200]
