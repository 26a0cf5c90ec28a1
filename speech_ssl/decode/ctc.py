"""CTC decoding: batched greedy decoding and flashlight-text beam search with a KenLM n-gram.

Conventions (fairseq): the blank is index 0 (``<s>``); letter vocabularies use ``|`` as the word
boundary (``H E L L O | W O R L D |``); sentencepiece pieces mark word starts with ``▁``; phone
vocabularies are whitespace-separated phone symbols.

    tokens = greedy_ctc(logits, out_lengths)              # list of B lists of token ids
    texts = [tokens_to_text(t, symbols, "letter") for t in tokens]

    dec = BeamSearchDecoder(symbols, BeamConfig(lm="lm.arpa", lexicon="lexicon.txt", lm_weight=2.0))
    hyps = dec.decode(logits.log_softmax(-1), out_lengths)  # list of B lists of Hypothesis (n-best)

Beam search needs the ``lm`` extra (``pip install 'speech_ssl[lm]'`` -> flashlight-text).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import torch

from speech_ssl.data.units import WORD_SEP, SentencePieceVocab, Unit, tokens_to_text, word_to_letters
from speech_ssl.errors import DataError
from speech_ssl.files import atomic_write_text, read_text

logger = logging.getLogger(__name__)

# ----------------------------------------------------------------------------------------------
# Greedy
# ----------------------------------------------------------------------------------------------


def greedy_ctc_ids(
    logits: torch.Tensor, lengths: torch.Tensor | None = None, blank: int = 0
) -> tuple[torch.Tensor, torch.Tensor]:
    """Vectorized greedy CTC: argmax per frame, collapse repeats, drop blanks and padding.

    Args:
        logits: ``(B, T, V)`` scores (logits, log-probs or probs: only the argmax is used), or
            ``(B, T)`` int frame labels already argmaxed.
        lengths: ``(B,)`` valid frames per row (None: all ``T``).
    Returns:
        ``ids (B, T)`` int64 with the kept tokens left-aligned and the rest filled with -1, and
        ``counts (B,)`` the number of kept tokens per row.
    """
    frames = logits.argmax(-1) if logits.dim() == 3 else logits
    if frames.dim() != 2:
        raise ValueError(f"expected logits (B, T, V) or frame labels (B, T), got {tuple(logits.shape)}")
    B, T = frames.shape
    frames = frames.long()
    valid = torch.ones(B, T, dtype=torch.bool, device=frames.device)
    if lengths is not None:
        valid = torch.arange(T, device=frames.device)[None, :] < lengths.to(frames.device)[:, None]
    new = torch.ones_like(valid)
    new[:, 1:] = frames[:, 1:] != frames[:, :-1]
    keep = valid & new & (frames != blank)
    counts = keep.sum(1)
    # Stable left-packing: target slot of each kept frame is its rank among kept frames of its row.
    slot = keep.long().cumsum(1) - 1
    out = torch.full((B, T), -1, dtype=torch.long, device=frames.device)
    rows = torch.arange(B, device=frames.device)[:, None].expand(B, T)
    out[rows[keep], slot[keep]] = frames[keep]
    return out, counts


def greedy_ctc(logits: torch.Tensor, lengths: torch.Tensor | None = None, blank: int = 0) -> list[list[int]]:
    """Greedy CTC decoding of a batch: ``(B, T, V)`` (+ ``lengths (B,)``) -> B lists of token ids."""
    ids, counts = greedy_ctc_ids(logits, lengths, blank)
    ids, counts = ids.cpu(), counts.cpu().tolist()
    return [row[:n].tolist() for row, n in zip(ids, counts)]


def blank_fraction(logits: torch.Tensor, lengths: torch.Tensor | None = None, blank: int = 0) -> float:
    """Fraction of valid frames whose argmax is the blank (``(B, T, V)`` logits)."""
    frames = logits.argmax(-1)
    B, T = frames.shape
    valid = torch.ones(B, T, dtype=torch.bool, device=frames.device)
    if lengths is not None:
        valid = torch.arange(T, device=frames.device)[None, :] < lengths.to(frames.device)[:, None]
    n = valid.sum().item()
    return float(((frames == blank) & valid).sum().item() / max(n, 1))


# ----------------------------------------------------------------------------------------------
# Beam search (flashlight-text)
# ----------------------------------------------------------------------------------------------


def _flashlight():
    try:
        from flashlight.lib.text import decoder as fl_decoder
        from flashlight.lib.text import dictionary as fl_dict
        from flashlight.lib.text.decoder.kenlm import KenLM
    except ImportError as e:
        raise ImportError(
            "beam-search decoding needs flashlight-text (the 'lm' extra): "
            "pip install 'speech_ssl[lm]'  (or: pip install flashlight-text)"
        ) from e
    return fl_decoder, fl_dict, KenLM


@dataclass
class BeamConfig:
    """Beam-search settings (names and defaults follow fairseq's ``w2l_decoder``/flashlight).

    With ``lexicon``: lexicon-constrained search (words from the lexicon only) with a word-level
    ``lm``. Without ``lexicon``: lexicon-free search over tokens; ``lm`` must then be a token-level
    LM whose "words" are vocabulary symbols (``speech-ssl lm build --units letter``), or None.
    """

    lm: str | None = None
    lexicon: str | None = None
    # Defaults: fairseq's wav2vec README decoding command (--lm-weight 2 --word-score -1 --sil-weight 0)
    # with the paper's 4-gram beam of 500 (unverified); tune lm_weight/word_score on dev (--tune).
    beam: int = 500
    beam_size_token: int | None = None  # None: the vocabulary size
    beam_threshold: float = 25.0
    lm_weight: float = 2.0
    word_score: float = -1.0  # per word (lexicon); lexicon-free: added to sil_score at each word boundary
    unk_score: float = float("-inf")
    sil_score: float = 0.0
    nbest: int = 1
    strict_lexicon: bool = False  # a lexicon spelling outside the vocabulary: error (True) or skipped and counted


@dataclass
class Hypothesis:
    tokens: list[int]  # CTC-collapsed token ids (blanks removed)
    words: list[str]  # lexicon search: the words; lexicon-free: empty
    score: float


def read_lexicon(path: str | Path, symbols: Sequence[str], strict: bool = False) -> dict[str, list[list[str]]]:
    """Read a lexicon (``WORD<whitespace>t1 t2 ...`` per line; several lines per word allowed).

    A spelling with a token outside ``symbols`` (a real LibriSpeech lexicon always has a few words with
    letters the model does not have) is skipped, counted and logged with its file:line; ``strict`` makes it an
    error. Malformed lines are errors naming the file and line.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError("lexicon file not found", path)
    known = set(symbols)
    lex: dict[str, list[list[str]]] = {}
    skipped: list[tuple[int, str, str]] = []
    for lineno, line in enumerate(read_text(path, "lexicon").splitlines(), 1):
        parts = line.split()
        if not parts:
            continue
        if len(parts) < 2:
            raise DataError(f"expected 'WORD t1 t2 ...', got {line!r}", path, lineno)
        word, spelling = parts[0], parts[1:]
        bad = [t for t in spelling if t not in known]
        if bad:
            if strict:
                raise DataError(f"spelling of {word!r} uses {bad[0]!r}, which is not in the vocabulary", path, lineno)
            skipped.append((lineno, word, bad[0]))
            continue
        lex.setdefault(word, []).append(spelling)
    if skipped:
        lineno, word, sym = skipped[0]
        logger.warning("%s: skipped %d spellings with symbols outside the model's vocabulary, e.g. line %d: %r "
                       "uses %r (--strict-lexicon makes this an error)", path, len(skipped), lineno, word, sym)
    if not lex:
        raise DataError("lexicon is empty" + (f" (all {len(skipped)} spellings skipped)" if skipped else ""), path)
    return lex


def write_letter_lexicon(words: Sequence[str], path: str | Path, symbols: Sequence[str] | None = None) -> int:
    """Write a letter lexicon ``WORD W O R D |`` for ``words`` (atomic). Words with characters not
    in ``symbols`` (when given) are skipped. Returns the number of words written."""
    known = set(symbols) if symbols is not None else None
    lines = []
    for w in sorted(set(words)):
        if w in ("<s>", "</s>", "<unk>") or not w:
            continue
        spell = word_to_letters(w)
        if known is not None and any(c not in known for c in spell):
            continue
        lines.append(f"{w}\t{' '.join(spell)}\n")
    atomic_write_text(path, "".join(lines))
    return len(lines)


def write_spm_lexicon(words: Sequence[str], spm_model: str | Path, path: str | Path) -> int:
    """Write a sentencepiece lexicon ``WORD ▁pie ces`` (the model's segmentation of each word), atomically.

    For lexicon-constrained search over sentencepiece units (the silence token is then ``</s>``, which
    CTC never emits, so words are delimited by the ``▁`` pieces themselves)."""
    sp = SentencePieceVocab(spm_model)
    lines = []
    for w in sorted(set(words)):
        if w in ("<s>", "</s>", "<unk>") or not w:
            continue
        lines.append(f"{w}\t{sp.encode_line(w)}\n")
    atomic_write_text(path, "".join(lines))
    return len(lines)


class BeamSearchDecoder:
    """CTC beam search through flashlight-text, optionally with a KenLM n-gram (ARPA or binary).

    Args:
        symbols: the output vocabulary (index -> symbol); blank is ``symbols[blank]``.
        cfg: :class:`BeamConfig`.
    The word-boundary ("silence") token is ``|`` when present, else ``</s>`` (fairseq's choice).
    """

    def __init__(self, symbols: Sequence[str], cfg: BeamConfig, blank: int = 0):
        fl, fl_dict, KenLM = _flashlight()
        self.symbols = list(symbols)
        self.cfg = cfg
        self.blank = blank
        self.index = {s: i for i, s in enumerate(self.symbols)}
        V = len(self.symbols)
        if WORD_SEP in self.index:
            self.silence = self.index[WORD_SEP]
        elif "</s>" in self.index:
            self.silence = self.index["</s>"]
        else:
            self.silence = blank
        beam_token = cfg.beam_size_token or V
        if cfg.lm is not None and not Path(cfg.lm).is_file():
            raise DataError("language model file not found", cfg.lm)

        if cfg.lexicon is not None:
            if cfg.lm is None:
                raise ValueError("lexicon-constrained search needs a word LM (--lm)")
            lexicon = read_lexicon(cfg.lexicon, self.symbols, strict=cfg.strict_lexicon)
            if "<unk>" not in lexicon:
                lexicon_for_dict = dict(lexicon)
                lexicon_for_dict["<unk>"] = [["<unk>"]]
            else:
                lexicon_for_dict = lexicon
            self.word_dict = fl_dict.create_word_dict(lexicon_for_dict)
            self.lm = _load_kenlm(KenLM, cfg.lm, self.word_dict)
            unk_word = self.word_dict.get_index("<unk>")
            self.trie = fl.Trie(V, self.silence)
            start = self.lm.start(False)
            for word, spellings in lexicon.items():
                widx = self.word_dict.get_index(word)
                _, score = self.lm.score(start, widx)
                for spelling in spellings:
                    self.trie.insert([self.index[t] for t in spelling], widx, score)
            self.trie.smear(fl.SmearingMode.MAX)
            opts = fl.LexiconDecoderOptions(
                beam_size=cfg.beam,
                beam_size_token=beam_token,
                beam_threshold=cfg.beam_threshold,
                lm_weight=cfg.lm_weight,
                word_score=cfg.word_score,
                unk_score=cfg.unk_score,
                sil_score=cfg.sil_score,
                log_add=False,
                criterion_type=fl.CriterionType.CTC,
            )
            self.decoder = fl.LexiconDecoder(opts, self.trie, self.lm, self.silence, blank, unk_word, [], False)
            self.lexicon_free = False
        else:
            if cfg.lm is not None:
                # The lexicon-free decoder scores token ids directly with the LM, so the LM's word
                # indices must equal the token ids. (create_word_dict from a mapping, as fairseq does,
                # does not keep the order in flashlight-text 0.0.7.)
                if len(self.index) != V:
                    raise ValueError("vocabulary symbols are not unique")
                _check_token_lm(cfg.lm, self.symbols)
                self.word_dict = fl_dict.Dictionary()
                for s in self.symbols:
                    self.word_dict.add_entry(s)
                self.lm = _load_kenlm(KenLM, cfg.lm, self.word_dict)
            else:
                self.word_dict = None
                self.lm = fl.ZeroLM()
            opts = fl.LexiconFreeDecoderOptions(
                beam_size=cfg.beam,
                beam_size_token=beam_token,
                beam_threshold=cfg.beam_threshold,
                lm_weight=cfg.lm_weight,
                sil_score=cfg.sil_score + cfg.word_score,
                log_add=False,
                criterion_type=fl.CriterionType.CTC,
            )
            self.decoder = fl.LexiconFreeDecoder(opts, self.lm, self.silence, blank, [])
            self.lexicon_free = True

    def set_weights(self, lm_weight: float, word_score: float) -> None:
        """Rebuild the search with new LM weight / word score (the LM and trie are reused)."""
        fl, _, _ = _flashlight()
        self.cfg.lm_weight, self.cfg.word_score = lm_weight, word_score
        beam_token = self.cfg.beam_size_token or len(self.symbols)
        c = self.cfg
        if self.lexicon_free:
            opts = fl.LexiconFreeDecoderOptions(
                beam_size=c.beam, beam_size_token=beam_token, beam_threshold=c.beam_threshold,
                lm_weight=c.lm_weight, sil_score=c.sil_score + c.word_score, log_add=False,
                criterion_type=fl.CriterionType.CTC,
            )
            self.decoder = fl.LexiconFreeDecoder(opts, self.lm, self.silence, self.blank, [])
        else:
            opts = fl.LexiconDecoderOptions(
                beam_size=c.beam, beam_size_token=beam_token, beam_threshold=c.beam_threshold,
                lm_weight=c.lm_weight, word_score=c.word_score, unk_score=c.unk_score,
                sil_score=c.sil_score, log_add=False, criterion_type=fl.CriterionType.CTC,
            )
            unk_word = self.word_dict.get_index("<unk>")
            self.decoder = fl.LexiconDecoder(opts, self.trie, self.lm, self.silence, self.blank, unk_word, [], False)

    def decode(self, log_probs: torch.Tensor, lengths: torch.Tensor | None = None) -> list[list[Hypothesis]]:
        """Beam search over a batch.

        Args:
            log_probs: ``(B, T, V)`` CTC log-probabilities (``logits.log_softmax(-1)``; fairseq
                decodes log-probs).
            lengths: ``(B,)`` valid frames per row.
        Returns:
            B lists (best first, at most ``nbest``) of :class:`Hypothesis`.
        """
        if log_probs.dim() != 3 or log_probs.shape[-1] != len(self.symbols):
            raise ValueError(
                f"expected (B, T, {len(self.symbols)}) log-probs, got {tuple(log_probs.shape)}"
            )
        em = log_probs.detach().float().cpu().contiguous()
        B, T, V = em.shape
        lens = [T] * B if lengths is None else lengths.cpu().tolist()
        out = []
        for b in range(B):
            t = int(lens[b])
            if t == 0:
                out.append([Hypothesis([], [], 0.0)])
                continue
            results = self.decoder.decode(em.data_ptr() + b * em.stride(0) * 4, t, V)
            hyps = []
            for r in results[: self.cfg.nbest]:
                toks = _collapse(list(r.tokens), self.blank)
                words = []
                if not self.lexicon_free:
                    words = [self.word_dict.get_entry(w) for w in r.words if w >= 0]
                hyps.append(Hypothesis(toks, words, float(r.score)))
            out.append(hyps or [Hypothesis([], [], float("-inf"))])
        return out

    def to_text(self, hyp: Hypothesis, unit: Unit = "letter") -> str:
        """Text of a hypothesis: the lexicon words when searching with a lexicon, else its tokens."""
        if not self.lexicon_free:
            return " ".join(hyp.words)
        return tokens_to_text(hyp.tokens, self.symbols, unit)


def _check_token_lm(lm: str, symbols: Sequence[str]) -> None:
    """Lexicon-free search scores the model's output symbols with the LM: an ARPA whose 1-grams are mostly
    other tokens (a word LM) would give empty hypotheses, so it is a DataError saying what to give instead.
    A KenLM binary cannot be read here and is taken as it is."""
    from speech_ssl.decode.lm import read_arpa_unigrams

    try:
        grams = set(read_arpa_unigrams(lm)) - {"<s>", "</s>", "<unk>"}
    except DataError:
        return
    covered = grams & set(symbols)
    if len(covered) * 2 < len(grams):
        other = sorted(grams - covered)[:3]
        raise DataError(
            f"its 1-grams are not this model's output symbols ({len(covered)} of {len(grams)} are; e.g. "
            f"{', '.join(map(repr, other))}): a word LM needs --lexicon; lexicon-free search (--lm alone) needs a "
            "token LM (speech-ssl lm build --units letter on word transcripts)", lm)


def _collapse(tokens: list[int], blank: int) -> list[int]:
    """flashlight returns frame-level token paths (with padding -1 at the ends): collapse them."""
    out = []
    prev = None
    for t in tokens:
        if t < 0:
            prev = None
            continue
        if t != prev and t != blank:
            out.append(t)
        prev = t
    return out


def _load_kenlm(KenLM, path: str, word_dict):
    try:
        return KenLM(str(path), word_dict)
    except Exception as e:  # flashlight raises RuntimeError with KenLM's message
        raise DataError(f"cannot load as a KenLM model (ARPA or binary): {e}", path) from e
