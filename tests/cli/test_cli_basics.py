"""The command line as users meet it: progress bars on a terminal only, help without markup."""

import io

import pytest

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


def test_an_output_that_is_an_input_is_refused(tmp_path, capsys):
    """lm build / lm eval / lm lexicon / score: an output named like one of the inputs would destroy it."""
    from speech_ssl.cli import main

    text = tmp_path / "text.txt"
    text.write_text("a b\na c\n")
    hyp = tmp_path / "hyp.txt"
    hyp.write_text("a c\nb c\n")
    for args, named in (
        (["lm", "build", "--text", str(text), "--order", "2", "--out", str(text)], "--out is the input --text"),
        (["lm", "build", "--text", str(text), "--order", "2", "--out", str(tmp_path / "x.arpa"), "--lexicon-out",
          str(tmp_path / "x.arpa")], "--lexicon-out is also --out"),
        (["lm", "lexicon", "--text", str(text), "--out", str(text)], "--out is the input --text"),
        (["score", "--ref", str(text), "--hyp", str(hyp), "--json", str(hyp)], "--json is the input --hyp"),
    ):
        assert main(["--threads", "1", *args]) == 1, args
        assert named in capsys.readouterr().err, args
    assert text.read_text() == "a b\na c\n" and hyp.read_text() == "a c\nb c\n"
    assert not (tmp_path / "x.arpa").exists()
    with pytest.raises(SystemExit):
        main(["plan", "recipes/synth/conf/pretrain.yaml", "--throughput", "-5"])
    assert "expected a number > 0" in capsys.readouterr().err
