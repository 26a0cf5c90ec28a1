"""Scores equal jiwer's on known strings; S/D/I breakdowns; the score CLI."""

import json

import jiwer
import pytest

from speech_ssl.cli import score as score_cli
from speech_ssl.decode.score import score


def main(argv):
    """Run the score subcommand alone (independent of the other subcommands being importable)."""
    import argparse

    parser = argparse.ArgumentParser()
    score_cli.add_parser(parser.add_subparsers())
    args = parser.parse_args(argv)
    return args.func(args)

REFS = ["the cat sat on the mat", "hello world", "a b c d", "one two three"]
HYPS = ["the cat sit on mat", "hello big world", "a b c d", "two three four"]


def test_wer_equals_jiwer_and_hand_counts():
    r = score(REFS, HYPS, "word")
    assert r.error_rate == pytest.approx(jiwer.wer(REFS, HYPS))
    # by hand: utt1 1 sub + 1 del; utt2 1 ins; utt4 1 del + 1 ins  -> 5 errors / 15 words
    assert (r.total.sub, r.total.dele, r.total.ins) == (1, 2, 2)
    assert r.total.ref_len == 15 and r.error_rate == pytest.approx(5 / 15)
    per = {u.id: u.counts for u in r.utterances}
    assert (per["1"].sub, per["1"].dele, per["1"].ins) == (1, 1, 0)
    assert per["3"].errors == 0
    assert ("sat", "sit", 1) in r.confusions
    assert r.summary_line().startswith("WER 33.33 % [ 5 / 15, 1 sub, 2 del, 2 ins ]")


def test_cer_and_per_equal_jiwer():
    r = score(REFS, HYPS, "char")
    assert r.error_rate == pytest.approx(jiwer.cer(REFS, HYPS))
    assert r.name == "CER"
    phones_ref = ["h ə l oʊ", "w ɜː l d"]
    phones_hyp = ["h ɛ l oʊ", "w ɜː d"]
    p = score(phones_ref, phones_hyp, "phone")
    assert p.name == "PER" and p.error_rate == pytest.approx(2 / 8)
    assert p.error_rate == pytest.approx(jiwer.wer(phones_ref, phones_hyp))


def test_per_speaker_sums_to_total():
    ids = ["84-1-0", "84-1-1", "174-2-0", "174-2-1"]
    r = score(REFS, HYPS, "word", ids=ids, speaker_of=lambda i: i.split("-")[0])
    assert set(r.speakers) == {"84", "174"}
    assert r.speakers["84"].errors + r.speakers["174"].errors == r.total.errors
    assert r.speakers["174"].rate == pytest.approx(2 / 7)


def test_normalize_and_empty_hyp():
    r = score(["Hello, World!"], ["hello world"], normalize=True)
    assert r.error_rate == 0
    r = score(["a b"], [""])
    assert r.total.dele == 2 and r.error_rate == 1.0


def test_score_cli_plain_and_ids(tmp_path, capsys):
    ref, hyp, js = tmp_path / "ref.txt", tmp_path / "hyp.txt", tmp_path / "out.json"
    ids = ["84-1-0", "84-1-1", "174-2-0", "174-2-1"]
    ref.write_text("".join(f"{i}\t{t}\n" for i, t in zip(ids, REFS)))
    # hypotheses in another order: matched by id
    hyp.write_text("".join(f"{i}\t{t}\n" for i, t in reversed(list(zip(ids, HYPS)))))
    assert main(["score", "--ref", str(ref), "--hyp", str(hyp), "--json", str(js)]) == 0
    out = capsys.readouterr().out.strip().splitlines()
    assert out[-1].startswith("WER 33.33 %")
    assert any("Per speaker" in ln for ln in out)
    data = json.loads(js.read_text())
    assert data["errors"] == 5 and data["sub"] == 1 and len(data["utterances"]) == 4
    assert set(data["speakers"]) == {"84", "174"}

    ref.write_text("\n".join(REFS) + "\n")
    hyp.write_text("\n".join(HYPS) + "\n")
    assert main(["score", "--ref", str(ref), "--hyp", str(hyp), "--unit", "char"]) == 0
    last = capsys.readouterr().out.strip().splitlines()[-1]
    assert last.startswith(f"CER {100 * jiwer.cer(REFS, HYPS):.2f} %")


def test_score_cli_errors(tmp_path, capsys):
    ref, hyp = tmp_path / "ref.txt", tmp_path / "hyp.txt"
    ref.write_text("a\tx y\nb\tz\n")
    hyp.write_text("a\tx y\n")
    assert main(["score", "--ref", str(ref), "--hyp", str(hyp)]) == 2
    assert "hyp.txt" in capsys.readouterr().err
    ref.write_text("a\tx y\na\tz\n")
    assert main(["score", "--ref", str(ref), "--hyp", str(hyp)]) == 2
    assert "ref.txt:2:" in capsys.readouterr().err
    ref.write_text("x y\nz\n")
    hyp.write_text("x y\n")
    assert main(["score", "--ref", str(ref), "--hyp", str(hyp)]) == 2
    capsys.readouterr()
    # nothing to score: an error, not "WER 0.00 %"; empty references: undefined, not "inf %"
    ref.write_text("")
    hyp.write_text("")
    assert main(["score", "--ref", str(ref), "--hyp", str(hyp)]) == 2
    assert "ref.txt: no utterances" in capsys.readouterr().err
    ref.write_text("\n\n")
    hyp.write_text("a b\n\n")
    assert main(["score", "--ref", str(ref), "--hyp", str(hyp)]) == 2
    err = capsys.readouterr().err
    assert "every reference is empty (2 utterances)" in err and "WER is undefined" in err and "2 words" in err
