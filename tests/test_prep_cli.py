"""``speech-ssl prepare``: subcommands, exit codes, --skip-bad, and no torch import for preparation."""

import argparse
import subprocess
import sys

import numpy as np
import soundfile as sf

from speech_ssl.cli import prepare


def _parser():
    p = argparse.ArgumentParser(prog="speech-ssl")
    sub = p.add_subparsers(dest="command")
    prepare.add_parser(sub)
    return p


def _tree(root):
    d = root / "dev-clean" / "1" / "2"
    d.mkdir(parents=True)
    sf.write(d / "1-2-0000.flac", np.zeros(1600), 16000)
    sf.write(d / "1-2-0001.flac", np.zeros(3200), 16000)
    (d / "1-2.trans.txt").write_text("1-2-0000 HELLO\n1-2-0001 GOOD DAY\n1-2-0002 NO AUDIO\n")


def test_prepare_librispeech_cli(tmp_path, capsys):
    _tree(tmp_path / "LS")
    args = _parser().parse_args(["prepare", "librispeech", "--root", str(tmp_path / "LS"), "--out", str(tmp_path / "o"),
                                 "--workers", "1"])
    assert args.func(args) == 1
    err = capsys.readouterr().err
    assert "1-2.trans.txt:3: transcript without audio: 1-2-0002" in err and "--skip-bad" in err
    args = _parser().parse_args(["prepare", "librispeech", "--root", str(tmp_path / "LS"), "--out", str(tmp_path / "o"),
                                 "--skip-bad"])
    assert args.func(args) == 0
    out = capsys.readouterr().out
    assert "dev-clean" in out and "kept 2 utterances, skipped 1 bad inputs" in out
    assert (tmp_path / "o" / "dev-clean.tsv").read_text().splitlines()[1:] == [
        "dev-clean/1/2/1-2-0000.flac\t1600", "dev-clean/1/2/1-2-0001.flac\t3200"]
    assert (tmp_path / "o" / "dev-clean.ltr").read_text() == "H E L L O |\nG O O D | D A Y |\n"


def test_all_corpora_registered():
    p = _parser()
    for corpus in ("librispeech", "librilight", "commonvoice", "babel"):
        args = p.parse_args(["prepare", corpus, "--root", "r", "--out", "o"])
        assert args.corpus == corpus and callable(args.prepare_run)
    try:
        import data_prep.synth.cli  # noqa: F401
    except ImportError:
        return
    args = p.parse_args(["prepare", "synth", "--out", "o"])
    assert args.corpus == "synth"


def test_preparation_does_not_import_torch():
    code = ("import sys, data_prep.librispeech, data_prep.librilight, data_prep.commonvoice, data_prep.babel; "
            "print('torch' in sys.modules)")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert res.stdout.strip() == "False", res.stderr
