"""wav2vec 2.0 pretraining as a task of the one trainer (fairseq ``audio_pretraining`` + ``wav2vec`` criterion).

The loss itself is the model's (:class:`~speech_ssl.models.wav2vec2.Wav2Vec2ForPretraining`); this task
builds the model and the cropped-audio data, and turns summed logs into fairseq's metrics.
"""

from __future__ import annotations

import math
from pathlib import Path

import torch
from torch import nn

from speech_ssl.data.datasets import PretrainDataset
from speech_ssl.data.sampler import MultiCorpusBatchSampler
from speech_ssl.models.checkpoint import save_model
from speech_ssl.models.wav2vec2 import Wav2Vec2ForPretraining
from speech_ssl.train.config import TrainConfig
from speech_ssl.train.monitor import AlarmChecker
from speech_ssl.train.task import (
    LN2,
    StepOutput,
    Task,
    check_sample_sizes,
    load_checkpoint_weights,
    model_config,
)


class PretrainTask(Task):
    """wav2vec 2.0 pretraining: contrastive + diversity + feature-penalty loss on cropped audio."""

    name = "pretrain"
    best_metric = "loss"
    maximize_best = False

    def __init__(self, cfg: TrainConfig, source: str | None = None):
        super().__init__(cfg, source)
        self.model_cfg = model_config(cfg, source)

    # -- model ----------------------------------------------------------------------------------------
    def build_model(self) -> nn.Module:
        check_sample_sizes(self.cfg, self.model_cfg, self.source)
        return Wav2Vec2ForPretraining(self.model_cfg)

    def save_weights(self, model: nn.Module, folder: Path, state_dict: dict[str, torch.Tensor] | None = None) -> None:
        if state_dict is not None:  # a gathered (FSDP) state: rebuild an unsharded copy on CPU
            model = self.build_model()
            model.load_state_dict(state_dict, strict=True)
        save_model(model, folder, extra={"normalize": self.cfg.data.normalize})

    def load_weights(self, model: nn.Module, folder: Path, strict: bool = True) -> None:
        load_checkpoint_weights(model, folder, strict, "the configured model", "model.preset and model.overrides")

    # -- data -----------------------------------------------------------------------------------------
    def build_dataset(self, manifest: str) -> PretrainDataset:
        d = self.cfg.data
        return PretrainDataset(manifest, d.min_sample_size, d.max_sample_size, d.normalize, seed=self.cfg.seed)

    def make_sampler(self, name: str, parts: list, max_tokens: int, **common):
        """Several training manifests: XLSR's multi-corpus sampling (``data.alpha``); else one dynamic sampler."""
        if len(parts) > 1 and name == "train":
            names = [Path(m).parent.name + "/" + Path(m).stem for m in self.cfg.data.train]
            return MultiCorpusBatchSampler([p.sizes for p in parts], names, max_tokens, alpha=self.cfg.data.alpha,
                                           **common)
        return super().make_sampler(name, parts, max_tokens, **common)

    def data_summary(self, rank: int, world_size: int) -> list[str]:
        lines = super().data_summary(rank, world_size)
        sampler = self._samplers[("train", rank, world_size)]
        if hasattr(sampler, "language_shares"):  # under the train line (the valid one follows)
            lines[1:1] = [
                f"  {name}: {sh['hours']:.2f} h, natural share {sh['natural']:.3f} -> sampled "
                f"{sh['target']:.3f} (alpha {self.cfg.data.alpha})"
                for name, sh in sampler.language_shares(1).items()
            ]
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
