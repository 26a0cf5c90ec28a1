"""Batch samplers: dynamic batches by ``max_tokens``, DDP sharding, mid-epoch resume, language sampling.

A batch is valid while ``n_items * max_len <= max_tokens`` (samples) and, if set, ``n_items <=
max_sentences``; ``max_len`` is the longest ``size`` in the batch (pass the dataset's ``sizes``, which are
already capped at ``max_sample_size`` for cropping datasets). As in fairseq
(``required_batch_size_multiple``, default 8), a batch of at least ``batch_size_multiple`` items is cut
down to a multiple of it.

Batch formation (``num_buckets=0``, fairseq's ``batch_by_size`` over ``ordered_indices``): items sorted by
size, longest first, ties broken at random; consecutive items fill a batch greedily; then the batch order
is shuffled. With ``num_buckets=K > 0`` the items are split into K length buckets (quantiles); each epoch
every bucket is shuffled and cut into batches of ``max_tokens // longest-in-bucket`` items, so batch
composition changes from epoch to epoch at the price of some padding.

Everything is a function of (seed, epoch): ``set_epoch(e)`` before each epoch. Across ``num_replicas``
DDP ranks every rank gets the same number of batches (the shuffled list is padded by repeating its first
batches, like ``DistributedSampler``), rank r takes batches r, r+W, r+2W, ...

Resume: ``state_dict()`` is ``{"epoch", "position", ...}``; ``position`` counts batches this rank has
consumed in the epoch (the sampler counts what it yielded; with DataLoader prefetching pass the number the
training loop actually consumed: ``state_dict(batches_done=n)``). ``load_state_dict`` makes the next
iteration start at that batch of that epoch.

Items larger than ``max_tokens`` raise a ValueError (``skip_oversize=True`` drops them and counts them in
``num_oversize``).

``MultiCorpusBatchSampler`` resamples languages each epoch with p_l ∝ (n_l / N)^alpha (n_l = samples of
audio of language l; alpha=1 natural, 0 uniform) and reports the shares in ``language_shares()``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Iterator, Sequence

import numpy as np

from speech_ssl.data.audio import SAMPLE_RATE


@dataclass
class SamplerConfig:
    """Batching: samples per batch, optional cap on items, buckets, seed."""

    max_tokens: int = 1_400_000
    max_sentences: int | None = None
    batch_size_multiple: int = 8  # fairseq's required_batch_size_multiple
    num_buckets: int = 0
    shuffle: bool = True
    seed: int = 1
    skip_oversize: bool = False
    alpha: float = 0.5  # multilingual: p_l ∝ (n_l/N)^alpha


def _batch_size(longest: int, max_tokens: int, max_sentences: int | None, multiple: int) -> int:
    """Items that fit a batch whose longest item is ``longest`` (at least 1), fairseq's multiple rule."""
    k = max(1, int(max_tokens // max(int(longest), 1)))
    if max_sentences:
        k = min(k, int(max_sentences))
    if multiple > 1 and k >= multiple:
        k -= k % multiple
    return k


def _chunk_sorted_desc(
    order: np.ndarray, sizes: np.ndarray, max_tokens: int, max_sentences: int | None, multiple: int
) -> list[np.ndarray]:
    """Greedy batches over indices sorted by size, longest first: the first item is each batch's longest.

    Loops over batches (not items): the batch starting at item i holds ``max_tokens // size_i`` items.
    """
    batches = []
    n = len(order)
    s = sizes[order]
    i = 0
    while i < n:
        k = _batch_size(int(s[i]), max_tokens, max_sentences, multiple)
        batches.append(order[i : i + k])
        i += k
    return batches


class DynamicBatchSampler:
    """Yields lists of dataset indices; see the module docstring. ``len()`` = batches for this rank."""

    def __init__(
        self,
        sizes: Sequence[int] | np.ndarray,
        max_tokens: int,
        max_sentences: int | None = None,
        shuffle: bool = True,
        seed: int = 1,
        num_replicas: int = 1,
        rank: int = 0,
        num_buckets: int = 0,
        skip_oversize: bool = False,
        batch_size_multiple: int = 8,
    ):
        if max_tokens <= 0:
            raise ValueError(f"max_tokens must be positive, got {max_tokens}")
        if not 0 <= rank < num_replicas:
            raise ValueError(f"rank {rank} outside [0, {num_replicas})")
        self.sizes = np.asarray(sizes, dtype=np.int64)
        self.max_tokens = int(max_tokens)
        self.max_sentences = max_sentences
        self.shuffle = shuffle
        self.seed = int(seed)
        self.num_replicas = int(num_replicas)
        self.rank = int(rank)
        self.num_buckets = int(num_buckets)
        self.batch_size_multiple = max(1, int(batch_size_multiple))
        over = self.sizes > self.max_tokens
        self.num_oversize = int(over.sum())
        if self.num_oversize and not skip_oversize:
            first = int(np.flatnonzero(over)[0])
            raise ValueError(
                f"{self.num_oversize} items are longer than max_tokens={self.max_tokens} samples (e.g. item "
                f"{first}: {int(self.sizes[first])}); raise max_tokens, set max_sample_size, or skip_oversize"
            )
        self.valid = np.flatnonzero(~over)
        if len(self.valid) == 0:
            raise ValueError("no items fit in max_tokens")
        if self.num_buckets > 0:
            qs = np.quantile(self.sizes[self.valid], np.linspace(0, 1, self.num_buckets + 1)[1:-1])
            self._bucket_of = np.searchsorted(np.unique(qs), self.sizes, side="left")
        self.epoch = 1
        self.position = 0
        self._cache: tuple[int, list[np.ndarray]] | None = None

    @classmethod
    def from_config(cls, cfg: "SamplerConfig", sizes, num_replicas: int = 1, rank: int = 0) -> "DynamicBatchSampler":
        return cls(
            sizes, cfg.max_tokens, cfg.max_sentences, cfg.shuffle, cfg.seed, num_replicas, rank, cfg.num_buckets,
            cfg.skip_oversize, cfg.batch_size_multiple,
        )

    # -- epoch content -------------------------------------------------------------------------------
    def _rng(self, epoch: int, stream: int) -> np.random.Generator:
        return np.random.default_rng([self.seed, epoch, stream])

    def epoch_indices(self, epoch: int) -> np.ndarray:
        """Item indices making up ``epoch`` (all valid items; subclasses resample)."""
        return self.valid

    def _batches_for(self, idx: np.ndarray, rng: np.random.Generator) -> list[np.ndarray]:
        sizes = self.sizes
        if self.num_buckets <= 0 or not self.shuffle:
            tie = rng.permutation(len(idx)) if self.shuffle else np.arange(len(idx))
            order = idx[np.lexsort((tie, -sizes[idx]))]  # size descending, random ties
            return _chunk_sorted_desc(order, sizes, self.max_tokens, self.max_sentences, self.batch_size_multiple)
        batches = []
        buckets = self._bucket_of[idx]
        for b in np.unique(buckets):
            members = idx[buckets == b]
            members = members[rng.permutation(len(members))]
            k = _batch_size(int(sizes[members].max()), self.max_tokens, self.max_sentences, self.batch_size_multiple)
            batches.extend(np.split(members, np.arange(k, len(members), k)))
        return batches

    def all_batches(self, epoch: int | None = None) -> list[np.ndarray]:
        """Every batch of the epoch over all ranks, in order, padded to a multiple of ``num_replicas``."""
        epoch = self.epoch if epoch is None else epoch
        if self._cache is not None and self._cache[0] == epoch:
            return self._cache[1]
        rng = self._rng(epoch, 0)
        batches = self._batches_for(self.epoch_indices(epoch), rng)
        if self.shuffle:
            perm = self._rng(epoch, 1).permutation(len(batches))
            batches = [batches[i] for i in perm]
        per_rank = math.ceil(len(batches) / self.num_replicas)
        pad = per_rank * self.num_replicas - len(batches)
        batches = batches + [batches[i % len(batches)] for i in range(pad)]
        self._cache = (epoch, batches)
        return batches

    def rank_batches(self, epoch: int | None = None) -> list[np.ndarray]:
        return self.all_batches(epoch)[self.rank :: self.num_replicas]

    # -- iteration and state ---------------------------------------------------------------------------
    def set_epoch(self, epoch: int) -> None:
        """Select the epoch to iterate next; resets the position unless it is the epoch already loaded."""
        if int(epoch) != self.epoch:
            self.epoch = int(epoch)
            self.position = 0

    def __len__(self) -> int:
        return len(self.rank_batches())

    def __iter__(self) -> Iterator[list[int]]:
        batches = self.rank_batches()
        start = self.position
        for i in range(start, len(batches)):
            self.position = i + 1
            yield batches[i].tolist()
        self.position = 0  # the epoch is complete; a new iteration starts it again

    def state_dict(self, batches_done: int | None = None) -> dict:
        """Small resumable state. ``batches_done``: batches consumed this epoch (default: yielded)."""
        return {
            "epoch": self.epoch,
            "position": self.position if batches_done is None else int(batches_done),
            "seed": self.seed,
            "num_replicas": self.num_replicas,
            "num_batches": len(self),
        }

    def load_state_dict(self, state: dict) -> None:
        if int(state.get("seed", self.seed)) != self.seed:
            raise ValueError(f"sampler state has seed {state['seed']}, this sampler {self.seed}")
        if int(state.get("num_replicas", self.num_replicas)) != self.num_replicas:
            raise ValueError(
                f"sampler state is for {state['num_replicas']} ranks, this run has {self.num_replicas}"
            )
        self.epoch = int(state["epoch"])
        self.position = int(state["position"])
        self._cache = None
        if "num_batches" in state and int(state["num_batches"]) != len(self):
            raise ValueError(
                f"sampler state has {state['num_batches']} batches per epoch, this data gives {len(self)} "
                "(different data or batching options)"
            )


def language_probs(amounts: Sequence[float], alpha: float) -> np.ndarray:
    """p_l ∝ (n_l / N)^alpha over languages (alpha=1: natural shares, 0: uniform). (L,) float64."""
    n = np.asarray(amounts, dtype=np.float64)
    if (n <= 0).any():
        raise ValueError("every language needs a positive amount of data")
    q = (n / n.sum()) ** float(alpha)
    return q / q.sum()


class MultiCorpusBatchSampler(DynamicBatchSampler):
    """Batches over concatenated corpora (e.g. ``torch.utils.data.ConcatDataset``), languages resampled.

    ``corpus_sizes[l]``: sizes of corpus l; global index = offset of l + local index. Each epoch corpus l
    contributes items amounting to about p_l of the epoch's audio (the epoch keeps the natural total):
    ratio r_l = p_l / (n_l/N); every item is taken floor(r_l) times plus a random subset of
    ``round(frac(r_l) * count_l)`` items (without replacement), so down-sampled corpora see different items
    each epoch. Batches mix languages.
    """

    def __init__(
        self,
        corpus_sizes: Sequence[Sequence[int]],
        names: Sequence[str],
        max_tokens: int,
        alpha: float = 0.5,
        **kwargs,
    ):
        if len(corpus_sizes) != len(names):
            raise ValueError("one name per corpus")
        self.names = list(names)
        sizes = [np.asarray(s, dtype=np.int64) for s in corpus_sizes]
        self.offsets = np.cumsum([0] + [len(s) for s in sizes])
        super().__init__(np.concatenate(sizes), max_tokens, **kwargs)
        self.alpha = float(alpha)
        valid_mask = np.zeros(len(self.sizes), dtype=bool)
        valid_mask[self.valid] = True
        self._members = [
            np.flatnonzero(valid_mask[self.offsets[i] : self.offsets[i + 1]]) + self.offsets[i]
            for i in range(len(sizes))
        ]
        self.amounts = np.array([self.sizes[m].sum() for m in self._members], dtype=np.float64)
        self.natural = self.amounts / self.amounts.sum()
        self.probs = language_probs(self.amounts, self.alpha)
        self.ratios = self.probs / self.natural

    def epoch_indices(self, epoch: int) -> np.ndarray:
        rng = self._rng(epoch, 2)
        out = []
        for m, r in zip(self._members, self.ratios):
            whole = int(math.floor(r))
            extra = int(round((r - whole) * len(m)))
            out.extend([m] * whole)
            if extra:
                out.append(rng.choice(m, size=min(extra, len(m)), replace=False))
        return np.concatenate(out)

    def language_shares(self, epoch: int | None = None) -> dict[str, dict[str, float]]:
        """Per language: ``natural`` n_l/N, ``target`` p_l, ``epoch`` the realized share of audio this epoch,
        ``hours`` of audio in the corpus (at 16 kHz)."""
        epoch = self.epoch if epoch is None else epoch
        idx = self.epoch_indices(epoch)
        lang = np.searchsorted(self.offsets, idx, side="right") - 1
        amt = np.bincount(lang, weights=self.sizes[idx], minlength=len(self.names))
        realized = amt / amt.sum()
        return {
            name: {
                "natural": float(self.natural[i]),
                "target": float(self.probs[i]),
                "epoch": float(realized[i]),
                "hours": float(self.amounts[i] / SAMPLE_RATE / 3600),
            }
            for i, name in enumerate(self.names)
        }
