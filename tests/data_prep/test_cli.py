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


def test_prepare_with_sentencepiece(tmp_path, capsys):
    from speech_ssl.data.manifest import read_labels
    from speech_ssl.data.units import Dictionary, SentencePieceVocab

    words = "THE QUICK BROWN FOX JUMPS OVER A LAZY DOG WHILE SPEECH MODELS LEARN FROM AUDIO".split()
    for sub in ("train-clean-100", "dev-clean"):
        d = tmp_path / "LS" / sub / "5" / "6"
        d.mkdir(parents=True)
        lines = []
        for i in range(30):
            sf.write(d / f"5-6-{i:04d}.flac", np.zeros(800), 16000)
            lines.append(f"5-6-{i:04d} " + " ".join(words[(i * 3 + k) % len(words)] for k in range(4 + i % 5)))
        (d / "5-6.trans.txt").write_text("\n".join(lines) + "\n")
    out = tmp_path / "o"
    args = _parser().parse_args(["prepare", "librispeech", "--root", str(tmp_path / "LS"), "--out", str(out),
                                 "--sentencepiece", "40", "--sentencepiece-type", "bpe"])
    assert args.func(args) == 0
    assert "trained on train-clean-100" in capsys.readouterr().out
    sp = SentencePieceVocab(out / "spm.model")
    d = Dictionary.load(out / "dict.spm.txt")
    for split in ("train-clean-100", "dev-clean"):
        wrd, spm = read_labels(out / f"{split}.wrd"), read_labels(out / f"{split}.spm")
        assert len(spm) == len(wrd) == 30
        assert [sp.decode_line(x) for x in spm] == wrd
        d.encode(spm[0])
    mtime = (out / "spm.model").stat().st_mtime_ns
    assert args.func(args) == 0  # second run: nothing retrained
    assert (out / "spm.model").stat().st_mtime_ns == mtime
