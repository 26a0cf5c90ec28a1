"""Greedy CTC on hand cases; LM beam search beats greedy where the LM disambiguates."""

import math

import pytest
import torch

from speech_ssl.data.units import labels_to_text, tokens_to_text
from speech_ssl.decode.ctc import (
    BeamConfig,
    BeamSearchDecoder,
    blank_fraction,
    greedy_ctc,
    greedy_ctc_ids,
    read_lexicon,
    write_letter_lexicon,
)
from speech_ssl.decode.lm import write_arpa
from speech_ssl.errors import DataError

SYMBOLS = ["<s>", "<pad>", "</s>", "<unk>", "|", "A", "C", "D", "E", "O", "R", "T"]
IDX = {s: i for i, s in enumerate(SYMBOLS)}


def one_hot_logits(frames: list[int], V: int) -> torch.Tensor:
    x = torch.full((len(frames), V), -10.0)
    x[torch.arange(len(frames)), torch.tensor(frames)] = 0.0
    return x


def test_greedy_collapse_and_blank_removal():
    # frames: a a _ a b b _ _ c c   -> a a b c   (blank between the a's keeps both)
    frames = [5, 5, 0, 5, 6, 6, 0, 0, 7, 7]
    out = greedy_ctc(one_hot_logits(frames, 12)[None])
    assert out == [[5, 5, 6, 7]]
    # repeats with no blank collapse to one; only blanks -> empty
    assert greedy_ctc(one_hot_logits([8, 8, 8], 12)[None]) == [[8]]
    assert greedy_ctc(one_hot_logits([0, 0, 0], 12)[None]) == [[]]
    # other blank index
    assert greedy_ctc(one_hot_logits([1, 1, 2, 1], 12)[None], blank=1) == [[2]]


def test_greedy_batched_respects_lengths():
    a = [5, 0, 6, 6, 7, 0]
    b = [8, 8, 0, 9, 9, 9]  # padding frames (beyond length 3) would add token 9
    logits = torch.stack([one_hot_logits(a, 12), one_hot_logits(b, 12)])
    lengths = torch.tensor([6, 3])
    assert greedy_ctc(logits, lengths) == [[5, 6, 7], [8]]
    ids, counts = greedy_ctc_ids(logits, lengths)
    assert counts.tolist() == [3, 1]
    assert ids[1, 1:].eq(-1).all()
    # same results row by row as batched (no cross-row leakage)
    for i in range(2):
        assert greedy_ctc(logits[i : i + 1, : lengths[i]]) == [greedy_ctc(logits, lengths)[i]]
    assert blank_fraction(logits, lengths) == pytest.approx(3 / 9)


def test_greedy_repeat_across_padding_boundary():
    # row 0 ends with token 5; row content after length must not merge or add
    frames = torch.tensor([[5, 5, 5, 5], [0, 5, 0, 5]])
    assert greedy_ctc(frames, torch.tensor([2, 4])) == [[5], [5, 5]]


def test_tokens_to_text_units():
    ids = [IDX[c] for c in "RED|CAT|"]
    assert tokens_to_text(ids, SYMBOLS, "letter") == "RED CAT"
    assert tokens_to_text([0, 2] + ids, SYMBOLS, "letter") == "RED CAT"  # specials dropped
    phones = ["<s>", "<pad>", "</s>", "<unk>", "h", "aɪ", "|"]
    assert tokens_to_text([4, 5, 6, 4], phones, "phone") == "h aɪ h"
    pieces = ["<s>", "<pad>", "</s>", "<unk>", "\u2581he", "llo", "\u2581world"]
    assert tokens_to_text([4, 5, 6], pieces, "spm") == "hello world"
    assert labels_to_text("H E L L O | W O R L D |") == "HELLO WORLD"


def _emissions(spec: list[dict[str, float]], repeat: int = 2) -> torch.Tensor:
    """Log-probs (1, T, V): each spec entry is a distribution over symbols held for `repeat` frames,
    followed by one blank frame."""
    rows = []
    for dist in spec:
        p = torch.full((len(SYMBOLS),), 1e-3)
        for s, v in dist.items():
            p[IDX[s]] = v
        p = p / p.sum()
        rows += [p] * repeat
        blank = torch.full((len(SYMBOLS),), 1e-3)
        blank[0] = 1.0
        rows.append(blank / blank.sum())
    return torch.stack(rows).log()[None]


@pytest.fixture
def lm_files(tmp_path):
    text = ["RED CAT"] * 20 + ["A COT"] * 20 + ["A RED COT"] * 2 + ["A CAT"] * 5 + ["RED DOT"] * 3
    sents = [t.split() for t in text]
    arpa = tmp_path / "lm.arpa"
    write_arpa(sents, 3, arpa)
    lex = tmp_path / "lexicon.txt"
    write_letter_lexicon(["RED", "CAT", "COT", "A", "DOT", "ACT"], lex, SYMBOLS)
    letters = [[c for w in s for c in (*w, "|")] for s in sents]
    char_arpa = tmp_path / "char.arpa"
    write_arpa(letters, 6, char_arpa)
    return arpa, lex, char_arpa


def test_lm_beam_beats_greedy(lm_files):
    pytest.importorskip("flashlight.lib.text")
    arpa, lex, char_arpa = lm_files
    # "R E D | C ? T |" where the vowel is acoustically O 0.5 / A 0.4: greedy says COT.
    spec = [{"R": 1}, {"E": 1}, {"D": 1}, {"|": 1}, {"C": 1}, {"O": 0.5, "A": 0.4}, {"T": 1}, {"|": 1}]
    em = _emissions(spec)
    greedy = tokens_to_text(greedy_ctc(em)[0], SYMBOLS)
    assert greedy == "RED COT"

    dec = BeamSearchDecoder(SYMBOLS, BeamConfig(lm=str(arpa), lexicon=str(lex), beam=20, lm_weight=2.0))
    hyp = dec.decode(em, torch.tensor([em.shape[1]]))[0][0]
    assert hyp.words == ["RED", "CAT"]
    assert tokens_to_text(hyp.tokens, SYMBOLS) == "RED CAT"
    # with lm_weight 0 the acoustics win again (the search itself is not biased)
    dec.set_weights(0.0, 0.0)
    assert dec.decode(em)[0][0].words == ["RED", "COT"]

    # lexicon-free with a letter LM also fixes it
    free = BeamSearchDecoder(SYMBOLS, BeamConfig(lm=str(char_arpa), beam=20, lm_weight=1.0))
    assert free.to_text(free.decode(em)[0][0]) == "RED CAT"
    # and lexicon-free without an LM equals greedy here
    nolm = BeamSearchDecoder(SYMBOLS, BeamConfig(beam=20, lm_weight=0.0))
    assert nolm.to_text(nolm.decode(em)[0][0]) == greedy


def test_lexicon_constrains_to_words(lm_files):
    pytest.importorskip("flashlight.lib.text")
    arpa, lex, _ = lm_files
    # acoustics say "R E T" which is not a word; the lexicon forces RED
    spec = [{"R": 1}, {"E": 1}, {"T": 0.6, "D": 0.3}, {"|": 1}, {"C": 1}, {"A": 1}, {"T": 1}, {"|": 1}]
    em = _emissions(spec)
    assert tokens_to_text(greedy_ctc(em)[0], SYMBOLS) == "RET CAT"
    dec = BeamSearchDecoder(SYMBOLS, BeamConfig(lm=str(arpa), lexicon=str(lex), beam=20, lm_weight=0.5, nbest=3))
    hyps = dec.decode(torch.cat([em, em]), torch.tensor([em.shape[1], em.shape[1]]))
    assert len(hyps) == 2 and hyps[0][0].words == ["RED", "CAT"] == hyps[1][0].words
    assert all(math.isfinite(h.score) for h in hyps[0])


def test_lexicon_errors_name_file_and_line(tmp_path):
    p = tmp_path / "lex.txt"
    p.write_text("RED R E D |\nCAT C A X |\nCAT C A T |\n")
    with pytest.raises(DataError, match=r"lex.txt:2: .*'X'"):
        read_lexicon(p, SYMBOLS, strict=True)
    assert read_lexicon(p, SYMBOLS) == {"RED": [list("RED|")], "CAT": [list("CAT|")]}  # skipped and counted
    p.write_text("CAX C A X |\n")
    with pytest.raises(DataError, match=r"lexicon is empty \(all 1 spellings skipped\)"):
        read_lexicon(p, SYMBOLS)
    p.write_text("RED\n")
    with pytest.raises(DataError, match=r"lex.txt:1:"):
        read_lexicon(p, SYMBOLS)


def test_missing_lm_file_is_a_clear_error(tmp_path, lm_files):
    pytest.importorskip("flashlight.lib.text")
    _, lex, _ = lm_files
    with pytest.raises(DataError, match="not found"):
        BeamSearchDecoder(SYMBOLS, BeamConfig(lm=str(tmp_path / "nope.arpa"), lexicon=str(lex)))


def test_lm_beam_beats_greedy_on_noisy_sentences(tmp_path):
    """Noisy letter emissions of sentences from the LM's own language: greedy is poor, LM beam is not."""
    pytest.importorskip("flashlight.lib.text")
    import random

    from speech_ssl.decode.score import score

    letters = list("|ETAONIHSRDLUMWCFGYPBVK'XJQZ")
    syms = ["<s>", "<pad>", "</s>", "<unk>"] + letters
    idx = {s: i for i, s in enumerate(syms)}
    rng = random.Random(0)
    vocab = ["THE", "CAT", "SAT", "ON", "A", "MAT", "DOG", "RAN", "TO", "HIS", "RED", "BALL", "AND", "HER"]
    grammar = [["THE", "A", "HIS", "HER"], ["RED", ""], ["CAT", "DOG", "BALL"], ["SAT", "RAN"], ["ON", "TO"],
               ["THE", "A"], ["MAT", "BALL"]]
    sents = [" ".join(w for w in (rng.choice(slot) for slot in grammar) if w) for _ in range(300)]
    write_arpa([s.split() for s in sents], 3, tmp_path / "lm.arpa")
    write_letter_lexicon(vocab, tmp_path / "lex.txt", syms)
    g = torch.Generator().manual_seed(0)
    refs, ems = sents[:15], []
    for s in refs:
        frames = [f for c in s.replace(" ", "|") + "|" for f in (idx[c], idx[c], 0)]
        logits = 1.5 * torch.randn(len(frames), len(syms), generator=g)
        logits[torch.arange(len(frames)), torch.tensor(frames)] += 4.0
        ems.append(logits.log_softmax(-1))
    greedy = [tokens_to_text(greedy_ctc(e[None])[0], syms) for e in ems]
    dec = BeamSearchDecoder(syms, BeamConfig(lm=str(tmp_path / "lm.arpa"), lexicon=str(tmp_path / "lex.txt"), beam=50))
    beam = [dec.to_text(dec.decode(e[None])[0][0]) for e in ems]
    wer_greedy, wer_beam = score(refs, greedy).error_rate, score(refs, beam).error_rate
    assert wer_greedy > 0.3
    assert wer_beam < 0.05 and wer_beam < wer_greedy / 5


def test_spm_lexicon_and_beam_over_pieces(tmp_path):
    """Sentencepiece units: lexicon of piece spellings; lexicon beam returns words; greedy joins pieces."""
    pytest.importorskip("flashlight.lib.text")
    from speech_ssl.data.units import SentencePieceVocab, train_sentencepiece
    from speech_ssl.decode.ctc import write_spm_lexicon

    texts = ["the cat sat on the mat", "the dog ran to the cat", "a red ball on a mat"] * 20
    model = train_sentencepiece(texts, tmp_path / "sp", vocab_size=30, model_type="unigram")
    sp = SentencePieceVocab(model)
    syms = list(sp.dictionary().symbols)
    assert write_spm_lexicon(["the", "cat", "mat"], model, tmp_path / "lex.txt") == 3
    lex = read_lexicon(tmp_path / "lex.txt", syms)
    assert "".join(lex["cat"][0]).replace("\u2581", "") == "cat"
    write_arpa([t.split() for t in texts], 2, tmp_path / "lm.arpa")
    write_spm_lexicon({w for t in texts for w in t.split()}, model, tmp_path / "lex.txt")
    ids = [syms.index(p) for p in sp.encode_line("the cat sat").split()]
    frames = [f for i in ids for f in (i, i, 0)]
    em = one_hot_logits(frames, len(syms)).log_softmax(-1)[None]
    assert tokens_to_text(greedy_ctc(em)[0], syms, "spm") == "the cat sat"
    dec = BeamSearchDecoder(syms, BeamConfig(lm=str(tmp_path / "lm.arpa"), lexicon=str(tmp_path / "lex.txt"), beam=10))
    assert dec.decode(em)[0][0].words == ["the", "cat", "sat"]


def test_clear_error_without_flashlight(monkeypatch):
    import sys

    for name in ["flashlight.lib.text", "flashlight.lib.text.decoder", "flashlight.lib.text.dictionary",
                 "flashlight.lib.text.decoder.kenlm"]:
        monkeypatch.setitem(sys.modules, name, None)
    with pytest.raises(ImportError, match=r"speech_ssl\[lm\]"):
        BeamSearchDecoder(SYMBOLS, BeamConfig())
