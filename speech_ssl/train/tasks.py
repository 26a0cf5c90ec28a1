"""Tasks: what the one :class:`~speech_ssl.train.trainer.Trainer` optimizes.

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

A fine-tuning task subclasses :class:`Task` (and, for its own YAML section, :class:`TrainConfig`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch
from torch import nn

from speech_ssl.config import ConfigError, _from_dict, to_dict
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
    def split(self, name: str, epoch: int, rank: int, world_size: int) -> DataSplit:
        raise NotImplementedError

    def has_valid(self) -> bool:
        return bool(self.cfg.data.valid)

    @staticmethod
    def batch_audio_samples(batch: dict[str, torch.Tensor]) -> int:
        """Valid audio samples in a batch (for audio-seconds/s and hours per update)."""
        if "lengths" in batch:
            return int(batch["lengths"].sum())
        src = batch.get("source")
        return int(src.numel()) if src is not None else 0

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
        """Lines printed at the start of a run (corpus size, language shares, ...)."""
        return []


def load_checkpoint_weights(model: nn.Module, folder: Path, strict: bool, what: str, hint: str) -> None:
    """Load the ``model.safetensors`` of our checkpoint ``folder`` into ``model``.

    With ``strict``, any missing / unexpected key or shape mismatch raises a ConfigError naming the weights
    file, ``what`` the model is and the settings to ``check`` (``hint``); without it the matching keys load.
    """
    from speech_ssl.models.checkpoint import checkpoint_paths, load_state_dict, read_checkpoint_config

    read_checkpoint_config(folder)  # a clear error when the folder is not one of our checkpoints
    weights, _ = checkpoint_paths(folder)
    state = load_state_dict(weights)
    own = model.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    shapes = [k for k in own if k in state and state[k].shape != own[k].shape]
    if strict and (missing or unexpected or shapes):
        raise ConfigError(
            f"{weights}: weights do not match {what} (missing {missing[:4]}, unexpected "
            f"{unexpected[:4]}, shape mismatches {shapes[:4]}); check {hint}"
        )
    model.load_state_dict(state, strict=strict)


def build_model_config(cfg: TrainConfig, source: str | None = None):
    """The run's ``Wav2Vec2Config``: ``model.preset`` with ``model.overrides``, types checked.

    A bad override names its key (``model.overrides.mask_prob``) and, when it came from a file, the line.
    """
    from speech_ssl.models.config import PRESETS, Wav2Vec2Config, get_preset

    if cfg.model.preset not in PRESETS:
        where = f"{source}: " if source else ""
        raise ConfigError(f"{where}key 'model.preset': unknown preset {cfg.model.preset!r} (known: {', '.join(PRESETS)})")
    data = to_dict(get_preset(cfg.model.preset))
    data.update(cfg.model.overrides)
    return _from_dict(Wav2Vec2Config, data, ["model", "overrides"], source)


class PretrainTask(Task):
    """wav2vec 2.0 pretraining: contrastive + diversity + feature-penalty loss on cropped audio."""

    name = "pretrain"
    best_metric = "loss"
    maximize_best = False

    def __init__(self, cfg: TrainConfig, source: str | None = None):
        super().__init__(cfg, source)
        self.model_cfg = build_model_config(cfg, source)
        self._datasets: dict[str, Any] = {}
        self._samplers: dict[tuple[str, int, int], Any] = {}

    # -- model ----------------------------------------------------------------------------------------
    def build_model(self) -> nn.Module:
        from speech_ssl.models.wav2vec2 import Wav2Vec2ForPretraining

        return Wav2Vec2ForPretraining(self.model_cfg)

    def save_weights(self, model: nn.Module, folder: Path, state_dict: dict[str, torch.Tensor] | None = None) -> None:
        from speech_ssl.models.checkpoint import save_model

        if state_dict is not None:  # a gathered (FSDP) state: rebuild an unsharded copy on CPU
            model = self.build_model()
            model.load_state_dict(state_dict, strict=True)
        save_model(model, folder)

    def load_weights(self, model: nn.Module, folder: Path, strict: bool = True) -> None:
        load_checkpoint_weights(model, folder, strict, "the configured model", "model.preset and model.overrides")

    # -- data -----------------------------------------------------------------------------------------
    def _dataset(self, name: str):
        if name not in self._datasets:
            from speech_ssl.data.datasets import PretrainDataset

            d = self.cfg.data
            manifests = d.train if name == "train" else d.valid
            parts = [
                PretrainDataset(m, d.min_sample_size, d.max_sample_size, d.normalize, seed=self.cfg.seed)
                for m in manifests
            ]
            self._datasets[name] = parts
        return self._datasets[name]

    def split(self, name: str, epoch: int, rank: int, world_size: int) -> DataSplit:
        from speech_ssl.data.sampler import DynamicBatchSampler, MultiCorpusBatchSampler

        parts = self._dataset(name)
        d = self.cfg.data
        key = (name, rank, world_size)
        train = name == "train"
        max_tokens = d.max_tokens if train or d.valid_max_tokens is None else d.valid_max_tokens
        if key not in self._samplers:
            common = dict(shuffle=train, seed=self.cfg.seed, num_replicas=world_size, rank=rank)
            if len(parts) > 1 and train:
                names = [Path(m).parent.name + "/" + Path(m).stem for m in d.train]
                self._samplers[key] = MultiCorpusBatchSampler(
                    [p.sizes for p in parts], names, max_tokens, alpha=d.alpha, **common
                )
            else:
                import numpy as np

                sizes = np.concatenate([p.sizes for p in parts])
                self._samplers[key] = DynamicBatchSampler(sizes, max_tokens, skip_oversize=not train, **common)
        sampler = self._samplers[key]
        for p in parts:
            p.set_epoch(epoch)
        batches = [b.tolist() for b in sampler.rank_batches(epoch)]
        if name == "valid" and d.max_valid_batches is not None:
            batches = batches[: d.max_valid_batches]
        dataset = parts[0] if len(parts) == 1 else torch.utils.data.ConcatDataset(parts)
        # Crops depend only on (seed, epoch, ids); every part shares the same cropping options.
        return DataSplit(dataset, batches, parts[0].collater)

    def data_summary(self, rank: int, world_size: int) -> list[str]:
        split = self.split("train", 1, rank, world_size)
        parts = self._dataset("train")
        hours = sum(float(p.raw_sizes.sum()) for p in parts) / 16000 / 3600
        skipped = sum(p.num_skipped for p in parts)
        lines = [
            f"train: {sum(len(p) for p in parts)} utterances, {hours:.2f} h ({skipped} skipped as shorter than "
            f"{self.cfg.data.min_sample_size} samples), {len(split.batches)} batches per epoch per rank"
        ]
        sampler = self._samplers[("train", rank, world_size)]
        if hasattr(sampler, "language_shares"):
            for name, sh in sampler.language_shares(1).items():
                lines.append(
                    f"  {name}: {sh['hours']:.2f} h, natural share {sh['natural']:.3f} -> sampled "
                    f"{sh['target']:.3f} (alpha {self.cfg.data.alpha})"
                )
        return lines

    def describe_batch(self) -> str:
        c = self.model_cfg
        return (
            f"K={c.num_negatives} negatives, mask {c.mask_prob}x{c.mask_length}, "
            f"{c.latent_groups}x{c.latent_vars} codes"
        )

    # -- steps ----------------------------------------------------------------------------------------
    def train_step(self, model: nn.Module, batch: dict[str, torch.Tensor], num_updates: int) -> StepOutput:
        out = model(batch["source"], batch["lengths"])
        return StepOutput(out.loss, out.sample_size, dict(out.logs))

    def reduce_metrics(self, sums: dict[str, float]) -> dict[str, float]:
        """fairseq's wav2vec criterion: summed losses / sample_size in bits, per-batch values averaged."""
        ss = sums.get("sample_size", 0.0) or 1.0
        nb = sums.get("n_batches", 0.0) or 1.0
        m: dict[str, float] = {"loss": sums.get("loss", 0.0) / ss / LN2}
        for out_key, key in (
            ("loss_contrastive", "contrastive_loss"),
            ("loss_diversity", "diversity_term"),
            ("loss_features_pen", "features_pen_term"),
        ):
            if key in sums:
                m[out_key] = sums[key] / ss / LN2
        if "count" in sums:
            m["accuracy"] = sums.get("correct", 0.0) / max(sums["count"], 1.0)
        for out_key, key in (
            ("prob_perplexity", "prob_perplexity"),
            ("code_perplexity", "code_perplexity"),
            ("temp", "temperature"),
            ("features_pen", "features_pen"),
        ):
            if key in sums:
                m[out_key] = sums[key] / nb
        m["sample_size"] = sums.get("sample_size", 0.0) / nb
        return m

    def alarm_checker(self, warmup_end: int) -> AlarmChecker:
        c = self.model_cfg
        k = c.num_negatives + c.cross_sample_negatives
        return AlarmChecker(
            chance_bits=math.log2(k + 1), num_codes=c.latent_groups * c.latent_vars, warmup_end=warmup_end
        )


def build_task(cfg: TrainConfig, source: str | None = None) -> Task:
    """The task named by ``cfg.task``: ``pretrain`` here, ``ctc`` from ``speech_ssl.train.finetune``."""
    if cfg.task == "pretrain":
        return PretrainTask(cfg, source)
    if cfg.task == "ctc":
        from speech_ssl.train.finetune import CTCTask

        return CTCTask(cfg, source)
    where = f"{source}: " if source else ""
    raise ConfigError(f"{where}key 'task': unknown task {cfg.task!r} (known: pretrain, ctc)")
