"""speech-ssl decode's options: the defaults live in DecodeOptions / BeamConfig; the help states them truly,
and what the user gives reaches them."""

import argparse
import dataclasses
import math
import re

import pytest

from speech_ssl.cli import decode as decode_cli
from speech_ssl.decode.ctc import BeamConfig
from speech_ssl.decode.run import DecodeOptions


def _parser():
    parser = argparse.ArgumentParser()
    decode_cli.add_parser(parser.add_subparsers())
    return parser


def _defaults(cls):
    return {f.name: (f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default)
            for f in dataclasses.fields(cls)}


def test_help_states_the_dataclass_defaults():
    actions = {a.dest: a for a in _parser()._subparsers._group_actions[0].choices["decode"]._actions}
    want = _defaults(DecodeOptions) | _defaults(BeamConfig)
    checked = 0
    for dest, action in actions.items():
        m = re.search(r"default (-inf|[-\d.,]*\d)", action.help or "")
        if not m or dest not in want:
            continue
        text = m.group(1)
        if dest.startswith("tune_"):  # "0,0.5,...,3": the first and last values
            values = want[dest]
            parts = text.split(",")
            assert float(parts[0]) == values[0] and float(parts[-1]) == values[-1], dest
        else:
            value = -math.inf if text == "-inf" else float(text.replace(",", ""))
            assert value == want[dest], (dest, text, want[dest])
        assert action.default is None, dest  # the dataclass default applies
        checked += 1
    assert checked >= 10


def _opts(monkeypatch, argv):
    seen = {}
    monkeypatch.setattr("speech_ssl.decode.run.decode_manifest", lambda opts: seen.setdefault("opts", opts))
    args = _parser().parse_args(["decode", "--checkpoint", "c", "--manifest", "m", "--out", "o", *argv])
    assert args.func(args) == 0
    return seen["opts"]


def test_given_options_reach_the_dataclasses_and_the_rest_keep_theirs(monkeypatch):
    o = _opts(monkeypatch, [])
    assert o == DecodeOptions(checkpoint="c", manifest="m", out="o") and o.beam is None
    o = _opts(monkeypatch, ["--lm", "x.arpa", "--lexicon", "l.txt", "--beam", "50", "--word-score", "0.5",
                            "--tune", "--tune-lm-weights", "1,2", "--max-tokens", "1000", "--precision", "bf16"])
    assert o.beam == BeamConfig(lm="x.arpa", lexicon="l.txt", beam=50, word_score=0.5)
    assert o.tune_lm_weights == [1.0, 2.0] and o.max_tokens == 1000 and o.precision == "bf16"
    assert o.tune_word_scores == DecodeOptions.__dataclass_fields__["tune_word_scores"].default_factory()
    o = _opts(monkeypatch, ["--beam-only", "--beam", "20"])  # no LM: nothing to weigh
    assert o.beam == BeamConfig(beam=20, lm_weight=0.0, word_score=0.0)


@pytest.mark.parametrize("argv, named", [
    (["--beam", "100"], "--beam sets the beam search"),
    (["--sil-score", "1"], "--sil-score sets the beam search"),
    (["--beam-only", "--lm-weight", "3"], "--lm-weight weighs a language model"),
    (["--word-score", "2"], "--word-score weighs a language model"),
    (["--beam-only", "--tune"], "--tune weighs a language model"),
    (["--lm", "x.arpa", "--tune-lm-weights", "0,1"], "--tune-lm-weights is the grid of --tune"),
    (["--lm", "x.arpa", "--strict-lexicon"], "--strict-lexicon checks the spellings of --lexicon"),
])
def test_an_option_that_would_be_ignored_is_refused(monkeypatch, capsys, argv, named):
    monkeypatch.setattr("speech_ssl.decode.run.decode_manifest", lambda opts: pytest.fail("decoded"))
    args = _parser().parse_args(["decode", "--checkpoint", "c", "--manifest", "m", "--out", "o", *argv])
    assert args.func(args) == 2
    assert named in capsys.readouterr().err


def test_a_grid_of_negative_numbers_needs_no_equals_sign(monkeypatch):
    from speech_ssl.cli import main

    seen = {}
    monkeypatch.setattr("speech_ssl.decode.run.decode_manifest", lambda opts: seen.setdefault("opts", opts))
    assert main(["--threads", "1", "decode", "--checkpoint", "c", "--manifest", "m", "--out", "o", "--lm", "x.arpa",
                 "--tune", "--tune-word-scores", "-1,0", "--tune-lm-weights", "-.5,1", "--word-score", "-2"]) == 0
    o = seen["opts"]
    assert o.tune_word_scores == [-1.0, 0.0] and o.tune_lm_weights == [-0.5, 1.0] and o.beam.word_score == -2.0


def test_an_empty_or_bad_grid_is_refused_before_any_decoding(capsys):
    from speech_ssl.decode.run import decode_manifest

    for bad in (",", "", "1,x"):
        with pytest.raises(SystemExit):
            _parser().parse_args(["decode", "--checkpoint", "c", "--manifest", "m", "--out", "o",
                                  "--tune-word-scores", bad])
        err = capsys.readouterr().err
        assert "--tune-word-scores" in err and ("at least one number" in err or "comma-separated" in err)
    with pytest.raises(ValueError, match="at least one lm_weight"):  # the library checks it too, first thing
        decode_manifest(DecodeOptions(checkpoint="no-such-dir", manifest="no.tsv", out="o", tune=True,
                                      tune_lm_weights=[]))
