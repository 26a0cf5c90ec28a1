"""The task interface: what the one :class:`~speech_ssl.train.trainer.Trainer` optimizes.

A task builds the model and the data, turns a batch into ``(loss, sample_size, logs)`` and turns summed
logs into metrics. The trainer owns everything else (optimizer, schedule, precision, DDP, checkpoints,
monitoring), so pretraining and CTC fine-tuning share it:

- ``loss`` is a *sum* over the batch (fairseq criterion convention); the trainer divides the gradients
  by the ``sample_size`` summed over micro-batches and ranks.
- ``logs`` values are sums over the batch; the trainer sums them over micro-batches, ranks and log
  intervals and hands the sums (plus ``loss``, ``sample_size``, ``n_batches``) to
  :meth:`Task.reduce_metrics`. Per-batch averages (perplexities, temperature) are summed too and divided
  by ``n_batches`` there, like fairseq.
- ``begin_update(model, n)`` runs before every update: Gumbel temperature, freezing parts for the first
  N updates (CTC), ...
- ``best_metric`` / ``maximize_best`` pick the best checkpoint (``loss`` here, ``wer`` for CTC).

The tasks: :class:`~speech_ssl.train.pretrain_task.PretrainTask` and
:class:`~speech_ssl.train.ctc_task.CTCTask`, listed by name with their config classes in
:data:`speech_ssl.train.tasks.TASKS`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from torch import nn

from speech_ssl.config import ConfigError, _from_dict, to_dict
from speech_ssl.data.audio import SAMPLE_RATE
from speech_ssl.data.sampler import DynamicBatchSampler
from speech_ssl.models.checkpoint import check_checkpoint, checkpoint_paths, compare_shapes, load_state_dict
from speech_ssl.models.config import PRESETS, Wav2Vec2Config, get_preset
from speech_ssl.train.config import TrainConfig
from speech_ssl.train.monitor import AlarmChecker

LN2 = math.log(2.0)


@dataclass
class StepOutput:
    loss: torch.Tensor  # () summed loss to backpropagate
    sample_size: torch.Tensor | float  # what the loss is normalised by (masked frames, sentences, ...)
    logs: dict[str, torch.Tensor | float] = field(default_factory=dict)  # summable values


@dataclass
class DataSplit:
    """One rank's view of a split for one epoch: the dataset, this rank's batches, the collater."""

    dataset: torch.utils.data.Dataset
    batches: list[list[int]]
    collate: Callable[[list[Any]], dict[str, torch.Tensor]]


class Task:
    """Interface between the trainer and a training objective (see the module docstring)."""

    name = "task"
    best_metric = "loss"
    maximize_best = False

    def __init__(self, cfg: TrainConfig, source: str | None = None):
        self.cfg = cfg
        self.source = source  # the YAML file the config came from (for error messages)
        self._datasets: dict[str, list] = {}
        self._samplers: dict[tuple[str, int, int], Any] = {}

    # -- model ----------------------------------------------------------------------------------------
    def build_model(self) -> nn.Module:
        raise NotImplementedError

    def save_weights(self, model: nn.Module, folder: Path, state_dict: dict[str, torch.Tensor] | None = None) -> None:
        """Write ``model.safetensors`` + ``config.json`` into ``folder``."""
        raise NotImplementedError

    def load_weights(self, model: nn.Module, folder: Path, strict: bool = True) -> None:
        """Load weights saved by :meth:`save_weights` (``--resume``, best) or a pretrained model (``--init-from``)."""
        raise NotImplementedError

    def init_from(self, model: nn.Module, path: Path) -> None:
        """``--init-from``: weights only. Default: same architecture, strict."""
        self.load_weights(model, path, strict=True)

    def ddp_find_unused_parameters(self) -> bool:
        return False

    def lr_scale(self, param_name: str) -> float:
        """The factor on the scheduled lr for one parameter (its name in the unwrapped model). The trainer puts
        parameters with the same factor into one optimizer group; 1.0 everywhere gives fairseq's single group."""
        return 1.0

    def grad_norm_group(self, param_name: str) -> str | None:  # noqa: ARG002
        """A name under which the trainer also logs this parameter's part of the gradient norm
        (``gnorm_<group>``), or None; none by default."""
        return None

    # -- data -----------------------------------------------------------------------------------------
    def build_dataset(self, manifest: str):
        """The dataset of one manifest (``PretrainDataset``, ``FinetuneDataset``, ...)."""
        raise NotImplementedError

    def datasets(self, name: str) -> list:
        """The datasets of split ``name`` (``train`` / ``valid``), one per manifest, built once."""
        if name not in self._datasets:
            d = self.cfg.data
            self._datasets[name] = [self.build_dataset(m) for m in (d.train if name == "train" else d.valid)]
        return self._datasets[name]

    def make_sampler(self, name: str, parts: list, max_tokens: int, **common):
        """The batch sampler of split ``name``: length-sorted dynamic batches over all its manifests
        (``common``: shuffle, seed, num_replicas, rank). Pretraining overrides it for multi-corpus sampling."""
        sizes = np.concatenate([p.sizes for p in parts])
        return DynamicBatchSampler(sizes, max_tokens, skip_oversize=name != "train", **common)

    def split(self, name: str, epoch: int, rank: int, world_size: int) -> DataSplit:
        """This rank's batches of split ``name`` for ``epoch`` (samplers are built once per split and rank)."""
        parts = self.datasets(name)
        d = self.cfg.data
        train = name == "train"
        key = (name, rank, world_size)
        if key not in self._samplers:
            max_tokens = d.max_tokens if train or d.valid_max_tokens is None else d.valid_max_tokens
            longest = max((int(p.sizes.max()) for p in parts if len(p.sizes)), default=0) if train else 0
            if longest > max_tokens:  # a training row that fits no batch: the keys, not a sampler error
                raise ConfigError(
                    f"{self.source + ': ' if self.source else ''}key 'data.max_tokens': {max_tokens} samples is "
                    f"below the longest training row kept ({longest} samples); raise it, or lower "
                    "data.max_sample_size (pretraining crops to it, fine-tuning drops longer rows)")
            self._samplers[key] = self.make_sampler(
                name, parts, max_tokens, shuffle=train, seed=self.cfg.seed, num_replicas=world_size, rank=rank
            )
        for p in parts:
            p.set_epoch(epoch)
        batches = [b.tolist() for b in self._samplers[key].rank_batches(epoch)]
        if not train and d.max_valid_batches is not None:
            batches = batches[: d.max_valid_batches]
        dataset = parts[0] if len(parts) == 1 else torch.utils.data.ConcatDataset(parts)
        # Every part of a split shares the same cropping / padding options, hence one collater.
        return DataSplit(dataset, batches, parts[0].collater)

    def has_valid(self) -> bool:
        return bool(self.cfg.data.valid)

    @staticmethod
    def batch_audio_samples(batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """Valid audio samples in a batch as a () tensor (for audio-seconds/s and hours per update); the trainer
        passes the host batch and sums it with the other logs, unread until it logs."""
        if "lengths" in batch:
            return batch["lengths"].sum()
        src = batch.get("source")
        return torch.tensor(src.numel() if src is not None else 0)

    # -- steps ----------------------------------------------------------------------------------------
    def begin_update(self, model: nn.Module, num_updates: int) -> None:
        if hasattr(model, "set_num_updates"):
            model.set_num_updates(num_updates)

    def train_step(self, model: nn.Module, batch: dict[str, torch.Tensor], num_updates: int) -> StepOutput:
        raise NotImplementedError

    def valid_step(self, model: nn.Module, batch: dict[str, torch.Tensor]) -> StepOutput:
        return self.train_step(model, batch, -1)

    def reduce_metrics(self, sums: dict[str, float]) -> dict[str, float]:
        """Summed logs (with ``loss``, ``sample_size``, ``n_batches``) -> display metrics."""
        ss = sums.get("sample_size", 0.0) or 1.0
        return {"loss": sums.get("loss", 0.0) / ss / LN2}

    def alarm_checker(self, warmup_end: int) -> AlarmChecker | None:
        return None

    def describe_batch(self) -> str:
        return ""

    def data_summary(self, rank: int, world_size: int) -> list[str]:
        """Lines printed at the start of a run: the training data kept and every row dropped, by reason."""
        split = self.split("train", 1, rank, world_size)
        parts = self.datasets("train")
        d = self.cfg.data
        hours = sum(float(p.raw_sizes.sum()) for p in parts) / SAMPLE_RATE / 3600
        short = sum(p.num_too_short for p in parts)
        long = sum(p.num_too_long for p in parts)
        empty = sum(p.num_empty_labels for p in parts)
        dropped = [f"{short} shorter than data.min_sample_size={d.min_sample_size} samples"]
        if long:
            dropped.append(f"{long} longer than data.max_sample_size={d.max_sample_size} samples (dropped, not "
                           "cropped, so that no audio is cut off its transcript)")
        if empty:
            dropped.append(f"{empty} with an empty transcript (finetune.skip_empty_labels)")
        lines = [
            f"train: {sum(len(p) for p in parts)} utterances, {hours:.2f} h; skipped {short + long + empty}: "
            f"{', '.join(dropped)}; {len(split.batches)} batches per epoch per rank"
        ]
        if self.has_valid():  # read now: a bad validation manifest or label file stops the run before it trains
            valid = self.datasets("valid")
            hours = sum(float(p.raw_sizes.sum()) for p in valid) / SAMPLE_RATE / 3600
            lines.append(f"valid: {sum(len(p) for p in valid)} utterances, {hours:.2f} h")
        return lines


def load_checkpoint_weights(model: nn.Module, folder: Path, strict: bool, what: str, hint: str) -> None:
    """Load the ``model.safetensors`` of our checkpoint ``folder`` into ``model``.

    With ``strict``, any missing / unexpected key or shape mismatch raises a ConfigError naming the weights
    file, ``what`` the model is and the settings to ``check`` (``hint``); without it the matching keys load.
    """
    check_checkpoint(folder)  # one of our checkpoints, and its weights are what its config.json says
    weights, _ = checkpoint_paths(folder)
    state = load_state_dict(weights)
    report = compare_shapes({k: tuple(v.shape) for k, v in model.state_dict().items()},
                            {k: tuple(v.shape) for k, v in state.items()})
    if strict and report:
        raise ConfigError(f"{weights}: weights do not match {what} (check {hint}):{report}")
    model.load_state_dict(state, strict=strict)


def check_sample_sizes(cfg: TrainConfig, model_cfg, source: str | None = None) -> None:
    """``data.min_sample_size`` / ``max_sample_size`` against the model and each other, before any data is read:
    rows shorter than the receptive field have no output frame (a model error about "input 0" mid-training
    otherwise), crops shorter than it neither, and min above max keeps no row."""
    rf = model_cfg.receptive_field
    d = cfg.data
    where = f"{source}: " if source else ""
    if d.min_sample_size < rf:
        raise ConfigError(
            f"{where}key 'data.min_sample_size': {d.min_sample_size} samples is below the model's receptive "
            f"field ({rf} samples): shorter rows have no output frame; set it to at least {rf}"
        )
    if d.max_sample_size < d.min_sample_size:
        raise ConfigError(f"{where}key 'data.max_sample_size': {d.max_sample_size} samples is below "
                          f"data.min_sample_size ({d.min_sample_size}): no row would be kept")


def model_config(cfg: TrainConfig, source: str | None = None, base=None, defaults: dict | None = None):
    """The run's ``Wav2Vec2Config``: ``base`` (a config, e.g. a pretrained checkpoint's; default the preset
    ``model.preset``), then ``defaults`` (a task's, e.g. fine-tuning's), then ``model.overrides``, types
    checked. A bad override names its key (``model.overrides.mask_prob``) and, when it came from a file, the line.
    """
    if base is None:
        if cfg.model.preset not in PRESETS:
            where = f"{source}: " if source else ""
            raise ConfigError(
                f"{where}key 'model.preset': unknown preset {cfg.model.preset!r} (known: {', '.join(PRESETS)})"
            )
        base = get_preset(cfg.model.preset)
    data = to_dict(base)
    data.update(defaults or {})
    data.update(cfg.model.overrides)
    return _from_dict(Wav2Vec2Config, data, ["model", "overrides"], source)
