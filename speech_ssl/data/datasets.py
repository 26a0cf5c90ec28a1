"""Datasets over fairseq manifests: pretraining (crop) and CTC fine-tuning (pad + targets).

    ds = PretrainDataset("data/train.tsv", min_sample_size=32000, max_sample_size=250000)
    sampler = DynamicBatchSampler(ds.sizes, max_tokens=1_400_000, seed=1)
    loader = DataLoader(ds, batch_sampler=sampler, collate_fn=ds.collater, num_workers=4)
    for epoch in ...: ds.set_epoch(epoch); sampler.set_epoch(epoch); for batch in loader: ...

Batches are dicts: ``id`` (B,) int64 row indices, ``source`` (B, L) float32 at 16 kHz (zeros as padding),
``lengths`` (B,) int64 valid samples; fine-tuning adds ``target`` (B, S) int64 padded with the
dictionary's ``<pad>`` (1) and ``target_lengths`` (B,) int64.

fairseq semantics kept: rows shorter than ``min_sample_size`` are dropped when the manifest is loaded
(counted in ``num_skipped``); pretraining crops every item of a batch to ``min(shortest item,
max_sample_size)`` at a uniformly random offset (``RawAudioDataset.collater`` with ``pad=False``);
``normalize`` is per-utterance zero mean / unit variance applied before cropping, as fairseq does.
Crop offsets come from a generator seeded by (seed, epoch, batch ids), so batches are reproducible
whichever DataLoader worker builds them. (The trainer's workers live for the whole run: its batch sampler
tags every index with its epoch and ``train.stream.EpochTagged`` calls ``set_epoch`` before loading.)

Difference from fairseq: ``FinetuneDataset`` never crops (fairseq crops to ``max_sample_size`` even when
padding, which would cut audio away from its transcript); rows longer than ``max_sample_size`` are
dropped at load time instead and counted in ``num_skipped``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from speech_ssl.data.audio import SAMPLE_RATE, read_audio
from speech_ssl.data.manifest import Manifest, read_labels, read_manifest
from speech_ssl.data.units import Dictionary
from speech_ssl.errors import DataError

logger = logging.getLogger(__name__)


@dataclass
class DatasetConfig:
    """One dataset: a manifest (+ labels for fine-tuning) and fairseq's size/normalization options."""

    manifest: str = ""
    min_sample_size: int = 0
    max_sample_size: int | None = None
    normalize: bool = False
    sample_rate: int = SAMPLE_RATE
    labels: str | None = None  # label extension for fine-tuning: "ltr", "phn", "wrd", ...
    dictionary: str | None = None  # default: <manifest dir>/dict.<labels>.txt
    seed: int = 1


# A manifest's num_samples must match the audio (at the loader's rate) within 1%: batching, cropping and the
# CTC frame counts all rely on it.
LENGTH_TOLERANCE = 0.01


def length_mismatch(path: Path, listed: int, actual: int, rate: int) -> str:
    """The message for a manifest count that disagrees with the audio, with the likely cause."""
    msg = f"the manifest lists {listed} samples for {path} but it has {actual} at {rate} Hz"
    ratio = listed / max(actual, 1)
    if ratio < 0.99 and any(abs(ratio - r / rate) < 0.01 for r in (8000, 11025, 22050, 24000, 44100, 48000)):
        msg += (f" (x{ratio:.3f}: a count of frames at the file's own rate, as fairseq's manifest script writes for "
                "audio that is not 16 kHz; counts here are samples after resampling to 16 kHz: rewrite the "
                "manifest with `speech-ssl prepare` or the resampled lengths)")
    else:
        msg += " (a stale manifest, or a file replaced after it was written: write the manifest again)"
    return msg


def _as_manifest(manifest: str | Path | Manifest) -> Manifest:
    return manifest if isinstance(manifest, Manifest) else read_manifest(manifest)


class AudioDataset(torch.utils.data.Dataset):
    """Raw audio rows of a manifest. Use ``PretrainDataset`` or ``FinetuneDataset``."""

    pad: bool = False

    def __init__(
        self,
        manifest: str | Path | Manifest,
        min_sample_size: int = 0,
        max_sample_size: int | None = None,
        normalize: bool = False,
        sample_rate: int = SAMPLE_RATE,
        seed: int = 1,
        drop_longer: bool = False,
    ):
        self.manifest = _as_manifest(manifest)
        self.min_sample_size = int(min_sample_size or 0)
        self.max_sample_size = int(max_sample_size) if max_sample_size else None
        self.normalize = normalize
        self.sample_rate = sample_rate
        self.seed = seed
        self.epoch = 1
        all_sizes = np.asarray(self.manifest.sizes, dtype=np.int64)
        keep = all_sizes >= self.min_sample_size
        self.num_too_short = int((~keep).sum())
        self.num_too_long = 0
        if drop_longer and self.max_sample_size is not None:
            longer = all_sizes > self.max_sample_size
            self.num_too_long = int((keep & longer).sum())
            keep &= ~longer
        self.rows = np.flatnonzero(keep)  # dataset index -> manifest row
        self.raw_sizes = all_sizes[self.rows]
        self.num_empty_labels = 0  # rows dropped for an empty transcript (fine-tuning, when asked)
        self.num_skipped = self.num_too_short + self.num_too_long
        if self.num_skipped:
            logger.info(
                "%s: kept %d rows, skipped %d shorter than %d samples and %d longer than %s",
                self.manifest.source, len(self.rows), self.num_too_short, self.min_sample_size,
                self.num_too_long, self.max_sample_size,
            )
        if len(self.rows) == 0:
            raise DataError(
                f"no rows left after dropping {self.num_skipped} outside [{self.min_sample_size}, "
                f"{self.max_sample_size}] samples",
                self.manifest.source,
            )

    def __len__(self) -> int:
        return len(self.rows)

    @property
    def sizes(self) -> np.ndarray:
        """(N,) int64 lengths used for batching: capped at ``max_sample_size`` when cropping."""
        if not self.pad and self.max_sample_size is not None:
            return np.minimum(self.raw_sizes, self.max_sample_size)
        return self.raw_sizes

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def load(self, index: int) -> torch.Tensor:
        """(L,) float32 waveform of dataset item ``index``."""
        row = int(self.rows[index])
        e = self.manifest.entries[row]
        try:
            x = read_audio(
                self.manifest.full_path(row), e.start, e.end, target_sr=self.sample_rate, normalize=self.normalize
            )
        except DataError as err:
            raise DataError(
                f"{err.reason} (manifest {self.manifest.source}:{self.manifest.line_of(row)})", err.path
            ) from err
        if abs(len(x) - e.num_samples) > max(LENGTH_TOLERANCE * e.num_samples, 16):
            raise DataError(length_mismatch(self.manifest.full_path(row), e.num_samples, len(x), self.sample_rate),
                            self.manifest.source, self.manifest.line_of(row))
        return torch.from_numpy(x)

    def __getitem__(self, index: int) -> dict[str, Any]:
        return {"id": int(index), "source": self.load(index)}

    def _rng(self, ids: list[int]) -> np.random.Generator:
        return np.random.default_rng([self.seed, self.epoch, *ids])

    def collate_audio(self, samples: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
        ids = [int(s["id"]) for s in samples]
        sources = [s["source"] for s in samples]
        sizes = torch.tensor([len(s) for s in sources], dtype=torch.long)
        if self.pad:
            target = int(sizes.max())
        else:
            target = int(sizes.min())
            if self.max_sample_size is not None:
                target = min(target, self.max_sample_size)
        out = torch.zeros(len(sources), target, dtype=torch.float32)
        rng = self._rng(ids)
        # One offset per item, drawn in item order (fairseq: randint(0, diff + 1) for each longer item).
        for i, src in enumerate(sources):
            diff = len(src) - target
            if diff > 0:
                start = int(rng.integers(0, diff + 1))
                out[i] = src[start : start + target]
            else:
                out[i, : len(src)] = src
        lengths = torch.clamp(sizes, max=target)
        return {"id": torch.tensor(ids, dtype=torch.long), "source": out, "lengths": lengths}

    def collater(self, samples: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
        if not samples:
            return {}
        return self.collate_audio(samples)


class PretrainDataset(AudioDataset):
    """Unlabelled audio for pretraining; batches cropped to their shortest item (fairseq ``pad=False``)."""

    pad = False

    @classmethod
    def from_config(cls, cfg: DatasetConfig) -> "PretrainDataset":
        return cls(cfg.manifest, cfg.min_sample_size, cfg.max_sample_size, cfg.normalize, cfg.sample_rate, cfg.seed)


class FinetuneDataset(AudioDataset):
    """Audio + line-aligned labels for CTC; batches zero-padded, targets padded with ``<pad>``.

    ``labels``: the label file (default ``<manifest>.<label_ext>``); ``dictionary``: a ``Dictionary`` or
    the path of ``dict.<ext>.txt``. All labels are encoded when the dataset is built, so a symbol outside
    the dictionary fails at once, naming the label file and line. An empty transcript is an error too unless
    ``skip_empty_labels`` (then the row is dropped and counted in ``num_empty_labels``). Rows longer than
    ``max_sample_size`` are dropped (counted in ``num_too_long``): cropping would cut audio off its transcript.
    """

    pad = True

    def __init__(
        self,
        manifest: str | Path | Manifest,
        labels: str | Path,
        dictionary: Dictionary | str | Path,
        min_sample_size: int = 0,
        max_sample_size: int | None = None,
        normalize: bool = False,
        sample_rate: int = SAMPLE_RATE,
        seed: int = 1,
        unk_ok: bool = False,
        skip_empty_labels: bool = False,
    ):
        super().__init__(
            manifest, min_sample_size, max_sample_size, normalize, sample_rate, seed, drop_longer=True
        )
        self.dictionary = dictionary if isinstance(dictionary, Dictionary) else Dictionary.load(dictionary)
        self.label_path = str(labels)
        lines = read_labels(labels, len(self.manifest), self.manifest.source)
        empty = [int(r) for r in self.rows if not lines[r].strip()]
        self.num_empty_labels = len(empty)  # a DataError below unless skip_empty_labels
        if empty and not skip_empty_labels:
            raise DataError(
                f"empty transcript ({len(empty)} in this file): CTC would train on an empty target; fix or "
                "remove the row, or skip and count such rows (finetune.skip_empty_labels=true)",
                self.label_path, empty[0] + 1,
            )
        if empty:
            keep = np.array([bool(lines[r].strip()) for r in self.rows])
            self.rows, self.raw_sizes = self.rows[keep], self.raw_sizes[keep]
            self.num_skipped += len(empty)
            logger.info("%s: skipped %d rows with empty transcripts, e.g. line %d", self.label_path, len(empty),
                        empty[0] + 1)
            if len(self.rows) == 0:
                raise DataError("no rows left after skipping empty transcripts", self.label_path)
        self.targets = [
            self.dictionary.encode(lines[r], self.label_path, int(r) + 1, unk_ok=unk_ok) for r in self.rows
        ]
        self.target_sizes = np.array([len(t) for t in self.targets], dtype=np.int64)

    @classmethod
    def from_config(cls, cfg: DatasetConfig) -> "FinetuneDataset":
        if not cfg.labels:
            raise DataError("fine-tuning needs 'labels' (a label extension such as ltr)", cfg.manifest)
        man = Path(cfg.manifest)
        labels = man.with_suffix("." + cfg.labels)
        dictionary = cfg.dictionary or str(man.parent / f"dict.{cfg.labels}.txt")
        return cls(
            cfg.manifest, labels, dictionary, cfg.min_sample_size, cfg.max_sample_size, cfg.normalize,
            cfg.sample_rate, cfg.seed,
        )

    def __getitem__(self, index: int) -> dict[str, Any]:
        return {"id": int(index), "source": self.load(index), "target": self.targets[index]}

    def collater(self, samples: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
        if not samples:
            return {}
        batch = self.collate_audio(samples)
        targets = [s["target"] for s in samples]
        tlen = torch.tensor([len(t) for t in targets], dtype=torch.long)
        batch["target"] = torch.nn.utils.rnn.pad_sequence(
            targets, batch_first=True, padding_value=self.dictionary.pad_index
        ) if len(targets) and int(tlen.max()) > 0 else torch.full(
            (len(targets), 0), self.dictionary.pad_index, dtype=torch.long
        )
        batch["target_lengths"] = tlen
        return batch
