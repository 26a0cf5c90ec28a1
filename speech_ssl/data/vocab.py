"""Output vocabularies for CTC fine-tuning: letters (fairseq style), phones, sentencepiece.

Letters: ``text_to_letters("HELLO WORLD") == "H E L L O | W O R L D |"`` (fairseq's
``" ".join(text.replace(" ", "|")) + " |"`` after collapsing runs of spaces);
``letters_to_text`` inverts it (fairseq's ``post_process="letter"``).
Phones: ``.phn`` lines are already space-separated phones.
Sentencepiece: ``train_sentencepiece`` trains a unigram or BPE model on the train transcripts;
``SentencePieceVocab.encode_line`` gives the space-separated pieces that go into a ``.<name>`` label file
and a fairseq dictionary of the pieces.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Iterable, Literal

from speech_ssl.data.manifest import Dictionary, atomic_write_text

WORD_SEP = "|"


def text_to_letters(text: str) -> str:
    """Words -> fairseq letter line: ``"AB C" -> "A B | C |"``. Whitespace runs count as one space."""
    words = text.split()
    if not words:
        return ""
    joined = WORD_SEP.join(words)
    return " ".join(joined) + " " + WORD_SEP


def letters_to_text(letters: str) -> str:
    """Inverse of ``text_to_letters`` (fairseq's ``letter`` post-processing)."""
    return " ".join("".join(letters.split()).replace(WORD_SEP, " ").split())


def count_symbols(lines: Iterable[str]) -> Counter:
    """Counts of the space-separated symbols in label lines."""
    c: Counter = Counter()
    for ln in lines:
        c.update(ln.split())
    return c


def build_dictionary(lines: Iterable[str]) -> Dictionary:
    """fairseq dictionary of the symbols in label lines (``.ltr``, ``.phn``, pieces), by count."""
    return Dictionary.from_counts(count_symbols(lines))


def train_sentencepiece(
    texts: Iterable[str],
    model_prefix: str | Path,
    vocab_size: int = 1000,
    model_type: Literal["unigram", "bpe"] = "unigram",
    character_coverage: float = 1.0,
    seed: int = 0,
) -> Path:
    """Train a sentencepiece model on ``texts`` (one transcript each); returns ``<prefix>.model``.

    ``<prefix>.vocab`` is written too. Deterministic for a given input and seed (single thread).
    """
    import sentencepiece as spm

    model_prefix = Path(model_prefix)
    model_prefix.parent.mkdir(parents=True, exist_ok=True)
    corpus = model_prefix.with_name(model_prefix.name + ".train.txt")
    atomic_write_text(corpus, "".join(t.strip() + "\n" for t in texts if t.strip()))
    if hasattr(spm, "set_random_generator_seed"):
        spm.set_random_generator_seed(seed)
    spm.SentencePieceTrainer.train(
        input=str(corpus),
        model_prefix=str(model_prefix),
        vocab_size=vocab_size,
        model_type=model_type,
        character_coverage=character_coverage,
        bos_id=-1,
        eos_id=-1,
        unk_id=0,
        num_threads=1,
        minloglevel=2,
        hard_vocab_limit=False,
    )
    corpus.unlink()
    return Path(str(model_prefix) + ".model")


class SentencePieceVocab:
    """A trained sentencepiece model: text -> space-separated pieces, and back."""

    def __init__(self, model_path: str | Path):
        import sentencepiece as spm

        self.path = Path(model_path)
        self.sp = spm.SentencePieceProcessor(model_file=str(self.path))

    def encode_line(self, text: str) -> str:
        return " ".join(self.sp.encode(text.strip(), out_type=str))

    def decode_line(self, pieces: str) -> str:
        return self.sp.decode(pieces.split())

    def dictionary(self) -> Dictionary:
        """fairseq dictionary of all pieces (except sentencepiece's ``<unk>``), in the model's order."""
        syms = [self.sp.id_to_piece(i) for i in range(self.sp.get_piece_size())]
        syms = [s for s in syms if s not in Dictionary.SPECIALS]
        return Dictionary(syms)
