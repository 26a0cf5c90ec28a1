"""Our modified Kneser-Ney ARPA writer: probabilities normalise, KN behaviour, KenLM agrees."""

import json
import math
import random

import pytest

from speech_ssl.decode.lm import (
    BOS,
    EOS,
    UNK,
    ArpaLM,
    build_lm,
    estimate_kneser_ney,
    read_sentences,
    write_arpa,
)
from speech_ssl.errors import DataError


def _corpus(n=150, seed=0):
    rng = random.Random(seed)
    words = "the cat sat on a mat dog ran red blue".split()
    return [[rng.choice(words) for _ in range(rng.randint(1, 7))] for _ in range(n)]


@pytest.mark.parametrize("order", [2, 3, 4])
def test_arpa_probabilities_normalise(tmp_path, order):
    sents = _corpus()
    counts = write_arpa(sents, order, tmp_path / "lm.arpa")
    assert sorted(counts) == list(range(1, order + 1))
    lm = ArpaLM(tmp_path / "lm.arpa")
    assert lm.order == order
    predicted = [w for w in lm.vocab if w != BOS]
    assert UNK in predicted and EOS in predicted
    for ctx in [(), (BOS,), ("the",), ("the", "cat"), (BOS, "red"), ("zzz", "cat"), ("red", "blue", "the")]:
        total = sum(10 ** lm.log10_prob(ctx, w) for w in predicted)
        assert total == pytest.approx(1.0, abs=1e-5), ctx
    assert lm.log10_prob(("the",), BOS) <= -99  # <s> is never predicted


def test_kneser_ney_uses_continuation_counts(tmp_path):
    # "francisco" is frequent but only ever follows "san"; "glasses" is rarer but follows many words.
    sents = [["san", "francisco"]] * 30 + [[w, "glasses"] for w in "my his her old new red".split()] * 2
    sents += [[w] for w in "my his her old new red san".split()]
    write_arpa(sents, 2, tmp_path / "lm.arpa")
    lm = ArpaLM(tmp_path / "lm.arpa")
    # unseen context -> unigram backoff, where KN prefers the word with more distinct contexts
    assert lm.log10_prob(("zzz",), "glasses") > lm.log10_prob(("zzz",), "francisco")
    # but after "san", francisco dominates
    assert lm.log10_prob(("san",), "francisco") > math.log10(0.5)


def test_arpa_matches_kenlm_scoring(tmp_path):
    """flashlight's bundled KenLM loads our ARPA and gives the same sentence scores as our reader."""
    pytest.importorskip("flashlight.lib.text")
    from flashlight.lib.text.decoder.kenlm import KenLM
    from flashlight.lib.text.dictionary import Dictionary

    sents = _corpus()
    write_arpa(sents, 3, tmp_path / "lm.arpa")
    lm = ArpaLM(tmp_path / "lm.arpa")
    d = Dictionary()
    for w in lm.vocab:
        d.add_entry(w)
    ken = KenLM(str(tmp_path / "lm.arpa"), d)
    tests = sents[:30] + [["zzz", "cat", "the"], ["mat", "mat", "mat", "dog"]]
    for sent in tests:
        state, total = ken.start(False), 0.0
        for w in sent:
            state, s = ken.score(state, d.get_index(w if w in lm.vocab else UNK))
            total += s
        _, s = ken.finish(state)
        total += s
        assert total == pytest.approx(lm.sentence_log10(sent), abs=1e-4)


def test_build_lm_letters_and_errors(tmp_path):
    text = tmp_path / "text.txt"
    text.write_text("HELLO WORLD\n\nHELLO THERE\n")
    assert build_lm(text, 3, tmp_path / "c.arpa", units="letter", use_lmplz=False) == "ours"
    lm = ArpaLM(tmp_path / "c.arpa")
    assert "|" in lm.vocab and "H" in lm.vocab and "HELLO" not in lm.vocab
    # the same text as fairseq letter labels (.ltr) gives the same LM, not one where each letter is a word
    ltr = tmp_path / "text.ltr"
    ltr.write_text("H E L L O | W O R L D |\n\nH E L L O | T H E R E\n")
    assert read_sentences(ltr, "letter") == read_sentences(text, "letter")
    build_lm(ltr, 3, tmp_path / "l.arpa", units="letter", use_lmplz=False)
    assert (tmp_path / "l.arpa").read_text() == (tmp_path / "c.arpa").read_text()
    with pytest.raises(ValueError, match="order"):
        build_lm(text, 1, tmp_path / "u.arpa", use_lmplz=False)
    bad = tmp_path / "bad.txt"
    bad.write_text("fine line\nhas </s> inside\n")
    with pytest.raises(DataError, match=r"bad.txt:2:"):
        build_lm(bad, 2, tmp_path / "b.arpa", use_lmplz=False)
    with pytest.raises(DataError, match="not found"):
        build_lm(tmp_path / "missing.txt", 2, tmp_path / "m.arpa", use_lmplz=False)
    assert not (tmp_path / "b.arpa").exists()


def test_estimate_requires_order_2():
    with pytest.raises(ValueError):
        estimate_kneser_ney([["a"]], 1)


def test_lm_build_cli(tmp_path, capsys):
    import argparse

    from speech_ssl.cli import lm as lm_cli

    parser = argparse.ArgumentParser()
    lm_cli.add_parser(parser.add_subparsers())
    text = tmp_path / "t.txt"
    text.write_text("hello world\nhello there world\n")
    args = parser.parse_args(
        ["lm", "build", "--text", str(text), "--order", "3", "--out", str(tmp_path / "o.arpa"),
         "--engine", "ours", "--upper", "--lexicon-out", str(tmp_path / "lex.txt")]
    )
    assert args.func(args) == 0
    out = capsys.readouterr().out
    assert "3-gram word LM by ours" in out and "1=" in out
    assert "HELLO\tH E L L O |" in (tmp_path / "lex.txt").read_text()
    assert "HELLO" in ArpaLM(tmp_path / "o.arpa").vocab


def _reference_kneser_ney(sentences, order):
    """Straightforward dict-based interpolated modified Kneser-Ney (Chen & Goodman), written from the
    formulas independently of the vectorized estimator."""
    from collections import defaultdict

    def discounts(counts):
        t = [0] * 5
        for c in counts.values():
            if c <= 4:
                t[c] += 1
        try:
            y = t[1] / (t[1] + 2 * t[2])
            d = tuple(k - (k + 1) * y * t[k + 1] / t[k] for k in (1, 2, 3))
        except ZeroDivisionError:
            return (0.5, 1.0, 1.5)
        return d if all(0 < dk < k + 1 for k, dk in zip((1, 2, 3), d)) else (0.5, 1.0, 1.5)

    raw = [defaultdict(int) for _ in range(order + 1)]
    vocab = set()
    for sent in sentences:
        toks = [BOS, *sent, EOS]
        vocab.update(sent)
        for n in range(1, order + 1):
            for i in range(len(toks) - n + 1):
                raw[n][tuple(toks[i : i + n])] += 1
    raw[1].pop((BOS,), None)
    adj = [dict() for _ in range(order + 1)]
    adj[order] = dict(raw[order])
    for n in range(order - 1, 0, -1):
        cont = defaultdict(int)
        for g in raw[n + 1]:
            cont[g[1:]] += 1
        for g, c in raw[n].items():
            adj[n][g] = c if g[0] == BOS else cont.get(g, c)
    npred = len(vocab | {EOS, UNK})
    probs = [dict() for _ in range(order + 1)]
    gammas = [dict() for _ in range(order + 1)]
    for n in range(1, order + 1):
        d = discounts(adj[n])
        tot, nk = defaultdict(int), defaultdict(lambda: [0, 0, 0])
        for g, c in adj[n].items():
            tot[g[:-1]] += c
            nk[g[:-1]][min(c, 3) - 1] += 1
        for ctx, s in tot.items():
            gammas[n - 1][ctx] = sum(dk * nn for dk, nn in zip(d, nk[ctx])) / s
        for g, c in adj[n].items():
            lower = 1.0 / npred if n == 1 else probs[n - 1][g[1:]]
            probs[n][g] = (c - d[min(c, 3) - 1]) / tot[g[:-1]] + gammas[n - 1][g[:-1]] * lower
    probs[1][(UNK,)] = gammas[0][()] / npred
    out = []
    for n in range(1, order + 1):
        t = {g: (math.log10(p), math.log10(gammas[n][g]) if n < order and g in gammas[n] else None)
             for g, p in probs[n].items()}
        if n == 1:
            t[(BOS,)] = (-99.0, math.log10(gammas[1][(BOS,)]))
        out.append(t)
    return out


@pytest.mark.parametrize("order,seed", [(2, 1), (3, 2), (4, 3), (5, 4)])
def test_vectorized_estimate_equals_reference(order, seed):
    sents = _corpus(120, seed) + [["single"]]
    ours = estimate_kneser_ney(sents, order)
    ref = _reference_kneser_ney(sents, order)
    for n in range(order):
        assert set(ours[n]) == set(ref[n]), n + 1
        for g, (lp, bo) in ref[n].items():
            assert ours[n][g][0] == pytest.approx(lp, abs=1e-9), g
            assert (ours[n][g][1] is None) == (bo is None), g
            if bo is not None:
                assert ours[n][g][1] == pytest.approx(bo, abs=1e-9), g


def test_row_keys_int_and_void_paths_agree():
    import numpy as np

    from speech_ssl.decode.lm import _unique_rows

    rng = np.random.default_rng(0)
    rows = rng.integers(0, 50, size=(500, 3)).astype(np.int32)
    u_int, _, c_int = _unique_rows(rows, 50)  # int64 keys
    u_void, k_void, c_void = _unique_rows(rows, 2**30)  # 2**90 > 2**63: byte keys
    assert k_void.dtype.kind == "V"
    np.testing.assert_array_equal(u_int, u_void)
    np.testing.assert_array_equal(c_int, c_void)
    assert [tuple(r) for r in u_int] == sorted({tuple(r) for r in rows.tolist()})


def test_build_lm_runs_lmplz_when_on_path(tmp_path, monkeypatch):
    """The lmplz branch: order and --discount_fallback passed, text on stdin, ARPA from stdout, atomic."""
    import os
    import stat

    bindir = tmp_path / "bin"
    bindir.mkdir()
    fake = bindir / "lmplz"  # records its arguments and stdin, answers with a fixed ARPA
    fake.write_text(
        "#!/bin/sh\n"
        f'echo "$@" > {tmp_path}/args\n'
        f"cat > {tmp_path}/stdin\n"
        "printf '\\\\data\\\\\\nngram 1=1\\n\\n\\\\1-grams:\\n0\\t</s>\\n\\n\\\\end\\\\\\n'\n"
    )
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", f"{bindir}{os.pathsep}{os.environ['PATH']}")
    text = tmp_path / "t.txt"
    text.write_text("a b c\n")
    assert build_lm(text, 3, tmp_path / "o.arpa") == "lmplz"
    assert (tmp_path / "args").read_text().split()[:3] == ["-o", "3", "--discount_fallback"]
    assert (tmp_path / "stdin").read_text() == "a b c\n"
    assert (tmp_path / "o.arpa").read_text().startswith("\\data\\")
    # letter units always use our estimator
    assert build_lm(text, 3, tmp_path / "l.arpa", units="letter") == "ours"


def test_evaluate_perplexity_and_oov_by_hand(tmp_path):
    from speech_ssl.decode.lm import evaluate

    arpa = tmp_path / "u.arpa"
    arpa.write_text("\\data\\\nngram 1=4\n\n\\1-grams:\n-99\t<s>\n-0.30103\ta\n-0.60206\t</s>\n"
                    "-0.60206\t<unk>\n\n\\end\\\n")
    res = evaluate(ArpaLM(arpa), [["a", "b"], ["a"]])
    # p(a) = 1/2, p(</s>) = p(<unk>) = 1/4; 'b' is out of the vocabulary
    assert (res["sentences"], res["words"], res["oov"]) == (2, 3, 1)
    assert res["oov_rate"] == pytest.approx(1 / 3)
    assert res["ppl"] == pytest.approx((0.5 * 0.25 * 0.25 * 0.5 * 0.25) ** (-1 / 5), rel=1e-4)
    assert res["ppl_in_vocab"] == pytest.approx((0.5 * 0.25 * 0.5 * 0.25) ** (-1 / 4), rel=1e-4)


def test_lm_eval_cli(tmp_path, capsys):
    from speech_ssl.cli import main

    text = tmp_path / "train.txt"
    text.write_text("the cat sat\nthe dog sat\nthe cat ran\n")
    test = tmp_path / "test.txt"
    test.write_text("the cat sat\nthe bird sang\n")
    assert main(["lm", "build", "--text", str(text), "--order", "2", "--out", str(tmp_path / "lm.arpa"),
                 "--engine", "ours"]) == 0
    assert main(["lm", "eval", "--lm", str(tmp_path / "lm.arpa"), "--text", str(test), "--json",
                 str(tmp_path / "e.json")]) == 0
    res = json.loads((tmp_path / "e.json").read_text())
    assert res["oov"] == 2 and res["words"] == 6 and res["ppl"] > res["ppl_in_vocab"] > 1
    assert "OOV 33.33%" in capsys.readouterr().out
