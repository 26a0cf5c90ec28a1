"""Text units: the dictionary, the word separator, label lines <-> text, and which unit a vocabulary holds.

Units (``Unit``): ``letter`` (fairseq's ``.ltr``: ``H E L L O | W O R L D |``, ``|`` the word separator),
``phone`` (``.phn``: space-separated phones), ``spm`` (sentencepiece pieces, ``▁`` starting a word) and
``word``. A :class:`Dictionary` is fairseq's ``dict.*.txt`` (``SYMBOL COUNT`` lines, an optional trailing
``#fairseq:overwrite`` flag accepted); indices 0..3 are the specials ``<s> <pad> </s> <unk>`` (``<s>`` is
the CTC blank), then the file's symbols in file order.

    text_to_letters("HELLO WORLD") == "H E L L O | W O R L D |"   # fairseq: " ".join(t.replace(" ", "|")) + " |"
    labels_to_text("H E L L O | W O R L D |") == "HELLO WORLD"    # fairseq post_process="letter"
    tokens_to_text(ids, dictionary.symbols, infer_unit(dictionary.symbols))

Difference from fairseq: ``Dictionary.encode`` raises a DataError naming the label file and line for a
symbol outside the dictionary instead of silently mapping it to ``<unk>`` (pass ``unk_ok=True`` for
fairseq's behaviour). Sentencepiece: ``train_sentencepiece`` trains a unigram or BPE model on the train
transcripts; ``SentencePieceVocab.encode_line`` gives the space-separated pieces of a label line.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Iterable, Literal, Sequence

from speech_ssl.errors import DataError
from speech_ssl.files import atomic_write_text, read_text

if TYPE_CHECKING:
    import torch

Unit = Literal["letter", "phone", "spm", "word"]
SPECIALS = ("<s>", "<pad>", "</s>", "<unk>")
WORD_SEP = "|"
SPM_SPACE = "\u2581"  # ▁


def infer_unit(symbols: Sequence[str]) -> Unit:
    """The unit of a vocabulary: ``letter`` if it has the word separator, ``spm`` if a symbol starts with
    ``▁``, else ``phone``."""
    if WORD_SEP in symbols:
        return "letter"
    if any(s.startswith(SPM_SPACE) for s in symbols):
        return "spm"
    return "phone"


def tokens_to_text(tokens: Sequence[int], symbols: Sequence[str], unit: Unit = "letter") -> str:
    """Token ids -> text. Special symbols (``<s> <pad> </s>``) are dropped; ``<unk>`` is kept.

    * ``letter``: symbols are concatenated, ``|`` becomes a space (fairseq ``post_process=letter``).
    * ``phone`` / ``word``: symbols joined by spaces.
    * ``spm``: pieces concatenated, ``▁`` becomes a space (fairseq ``post_process=sentencepiece``).
    """
    syms = [symbols[t] for t in tokens if symbols[t] not in SPECIALS[:3]]
    if unit == "letter":
        text = "".join(s if s != WORD_SEP else " " for s in syms)
    elif unit == "spm":
        text = "".join(syms).replace(SPM_SPACE, " ")
    elif unit in ("phone", "word"):
        text = " ".join(s for s in syms if s != WORD_SEP)
    else:
        raise ValueError(f"unknown unit {unit!r} (letter, phone, spm, word)")
    return " ".join(text.split())


def labels_to_text(label_line: str, unit: Unit = "letter") -> str:
    """A label line as stored next to a manifest (``.ltr``: ``H E L L O | W O R L D |``) -> text."""
    syms = label_line.split()
    if unit == "letter":
        return " ".join("".join(s if s != WORD_SEP else " " for s in syms).split())
    if unit == "spm":
        return " ".join("".join(syms).replace(SPM_SPACE, " ").split())
    return " ".join(s for s in syms if s != WORD_SEP)


def word_to_letters(word: str) -> list[str]:
    """Spelling of a word in a letter vocabulary: its characters followed by ``|``."""
    return list(word) + [WORD_SEP]


def text_to_letters(text: str) -> str:
    """Words -> fairseq letter line: ``"AB C" -> "A B | C |"``. Whitespace runs count as one space."""
    words = text.split()
    if not words:
        return ""
    joined = WORD_SEP.join(words)
    return " ".join(joined) + " " + WORD_SEP


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


class Dictionary:
    """fairseq ``Dictionary``: ``<s>``=0, ``<pad>``=1, ``</s>``=2, ``<unk>``=3, then symbols in order."""

    SPECIALS = SPECIALS

    def __init__(self, symbols: Iterable[str] = (), counts: Iterable[int] | None = None):
        self.symbols: list[str] = list(self.SPECIALS)
        self.count: list[int] = [0, 0, 0, 0]
        self.indices: dict[str, int] = {s: i for i, s in enumerate(self.symbols)}
        counts = list(counts) if counts is not None else None
        for j, s in enumerate(symbols):
            self.add_symbol(s, counts[j] if counts is not None else 1)

    bos_index, pad_index, eos_index, unk_index = 0, 1, 2, 3
    blank_index = 0  # CTC blank is fairseq's <s>

    def __len__(self) -> int:
        return len(self.symbols)

    def __contains__(self, sym: str) -> bool:
        return sym in self.indices

    def __getitem__(self, i: int) -> str:
        return self.symbols[i]

    def index(self, sym: str) -> int:
        return self.indices[sym]

    def add_symbol(self, sym: str, n: int = 1) -> int:
        if not sym or any(c.isspace() for c in sym):
            raise ValueError(f"dictionary symbol {sym!r} is empty or contains whitespace")
        if sym in self.indices:
            i = self.indices[sym]
            self.count[i] += n
            return i
        self.indices[sym] = len(self.symbols)
        self.symbols.append(sym)
        self.count.append(n)
        return self.indices[sym]

    @classmethod
    def from_counts(cls, counter: Counter | dict[str, int]) -> "Dictionary":
        """Symbols sorted by count (descending), ties by symbol, like fairseq's ``finalize`` (no padding)."""
        items = sorted(((s, c) for s, c in counter.items() if s not in cls.SPECIALS), key=lambda t: (-t[1], t[0]))
        return cls([s for s, _ in items], [c for _, c in items])

    @classmethod
    def load(cls, path: str | Path) -> "Dictionary":
        """Read ``dict.*.txt`` (``SYMBOL COUNT`` per line). Bad lines -> DataError file:line."""
        path = Path(path)
        if not path.is_file():
            raise DataError("dictionary not found", path)
        d = cls()
        lines = read_text(path, "dictionary").split("\n")
        if lines and lines[-1] == "":
            lines.pop()
        for lineno, raw in enumerate(lines, 1):
            line = raw.rstrip("\r\n")
            if not line.strip():
                raise DataError("malformed dictionary line: empty", path, lineno)
            overwrite = False
            if line.endswith(" #fairseq:overwrite"):
                overwrite = True
                line = line[: -len(" #fairseq:overwrite")]
            parts = line.rsplit(" ", 1)
            if len(parts) != 2:
                raise DataError("malformed dictionary line: expected 'SYMBOL COUNT'", path, lineno)
            sym, cnt = parts
            try:
                n = int(cnt)
            except ValueError:
                raise DataError(f"malformed dictionary line: count {cnt!r} is not an integer", path, lineno) from None
            if not sym or any(c.isspace() for c in sym):
                raise DataError(f"malformed dictionary line: bad symbol {sym!r}", path, lineno)
            if sym in d.indices and not overwrite:
                raise DataError(
                    f"duplicate symbol {sym!r} (add '#fairseq:overwrite' to override)", path, lineno
                )
            if sym in d.indices:
                d.count[d.indices[sym]] = n
            else:
                d.add_symbol(sym, n)
        return d

    def save(self, path: str | Path) -> None:
        """Write ``SYMBOL COUNT`` lines (specials omitted, as fairseq does), atomically."""
        atomic_write_text(
            path, "".join(f"{s} {c}\n" for s, c in zip(self.symbols[4:], self.count[4:]))
        )

    def encode(
        self,
        line: str,
        source: str | None = None,
        lineno: int | None = None,
        unk_ok: bool = False,
        append_eos: bool = False,
    ) -> "torch.Tensor":
        """Space-separated symbols -> (S,) int64 indices.

        Unknown symbols raise DataError naming ``source:lineno`` unless ``unk_ok`` (then ``<unk>``).
        """
        ids = []
        for sym in line.split():
            i = self.indices.get(sym)
            if i is None:
                if not unk_ok:
                    raise DataError(f"symbol {sym!r} is not in the dictionary", source, lineno)
                i = self.unk_index
            ids.append(i)
        if append_eos:
            ids.append(self.eos_index)
        import torch  # imported here so that data preparation does not need torch

        return torch.tensor(ids, dtype=torch.long)

    def decode(self, ids: "Iterable[int] | torch.Tensor", skip_specials: bool = True) -> str:
        """Indices -> space-separated symbols (specials dropped unless ``skip_specials=False``)."""
        if hasattr(ids, "tolist"):
            ids = ids.tolist()
        out = []
        for i in ids:
            i = int(i)
            if skip_specials and i < len(self.SPECIALS) and i != self.unk_index:
                continue
            out.append(self.symbols[i])
        return " ".join(out)
