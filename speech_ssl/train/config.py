"""Typed configuration of a training run (pretraining or fine-tuning), read from YAML.

    cfg = load_train_config("recipes/synth/conf/pretrain.yaml", ["optim.lr=1e-3"])

Every section is a dataclass; unknown keys and wrong types raise ``ConfigError`` naming the key and the
file:line (see :mod:`speech_ssl.config`). A fine-tuning task may subclass :class:`TrainConfig` to add
its own section; the trainer only reads the sections defined here.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from speech_ssl.config import ConfigError, load_config
from speech_ssl.data.audio import SAMPLE_RATE
from speech_ssl.train.schedules import ScheduleConfig


@dataclass
class ModelSection:
    """Which model to build: a preset of ``speech_ssl.models`` plus field overrides."""

    preset: str = "base"
    overrides: dict[str, Any] = field(default_factory=dict)  # Wav2Vec2Config fields, checked when built


@dataclass
class DataSection:
    """Where the audio is and how it is batched (sizes in samples at 16 kHz)."""

    train: list[str] = field(default_factory=list)  # manifest .tsv files; several = multi-corpus
    valid: list[str] = field(default_factory=list)
    alpha: float = 1.0  # multi-corpus sampling p_l ∝ (n_l/N)^alpha (XLSR: 0.5); 1 = natural, 0 = uniform
    max_tokens: int = 1_400_000  # samples per GPU per micro-batch
    valid_max_tokens: int | None = None  # None -> max_tokens
    max_sample_size: int = 250_000  # crop longer utterances (pretraining)
    min_sample_size: int = 32_000  # drop shorter ones
    normalize: bool = False  # per-utterance zero mean / unit variance
    num_workers: int = 0
    max_valid_batches: int | None = None  # cap validation cost (None = the whole set)

    def __post_init__(self) -> None:
        if self.max_tokens <= 0:
            raise ValueError(f"max_tokens must be > 0, got {self.max_tokens}")
        if self.alpha < 0:
            raise ValueError(f"alpha must be >= 0 (0 = uniform over corpora), got {self.alpha}")


@dataclass
class OptimConfig:
    """Adam with decoupled weight decay (fairseq ``adam`` == torch AdamW), clipping, accumulation."""

    lr: float = 5e-4
    betas: tuple[float, float] = (0.9, 0.98)
    eps: float = 1e-6
    weight_decay: float = 0.01
    clip_norm: float = 0.0  # 0 = no clipping (fairseq's default for pretraining)
    update_freq: int = 1  # micro-batches accumulated per update
    # AdamW implementation (speech_ssl.train.optim): auto = fused where torch has it (CPU, CUDA; not under
    # FSDP), else torch's default; fused also skips a non-finite update without a device sync
    impl: Literal["auto", "fused", "foreach", "for_loop"] = "auto"
    max_update: int = 400_000
    # The recipe's batch, to print how to reach it on this machine's GPU count.
    reference_gpus: int = 0  # 0 = no reference
    reference_update_freq: int = 1

    def __post_init__(self) -> None:
        if self.update_freq < 1:
            raise ValueError(f"update_freq must be >= 1, got {self.update_freq}")
        if self.max_update < 1:
            raise ValueError(f"max_update must be >= 1, got {self.max_update}")
        if self.lr <= 0:
            raise ValueError(f"lr must be > 0, got {self.lr}")


@dataclass
class CheckpointConfig:
    save_interval_updates: int = 25_000
    save_interval_minutes: float = 0.0  # also save when this much wall time has passed (0: off); bounds
    # the work a crash or a lost node costs (elastic restarts resume from the newest checkpoint)
    keep_last: int = 1  # keep the last K periodic checkpoints (the best one is kept apart)
    keep_best: bool = True  # save checkpoints/best whenever validation's best_metric improves
    best_metric: str | None = None  # None -> the task's default (loss for pretraining)
    maximize_best: bool | None = None  # None -> the task's default


@dataclass
class DistributedConfig:
    backend: Literal["auto", "nccl", "gloo"] = "auto"  # auto: NCCL on GPU, Gloo on CPU
    strategy: Literal["ddp", "fsdp"] = "ddp"  # fsdp: shard params/grads/optimizer (1B/2B presets)
    find_unused_parameters: bool = False
    activation_checkpointing: bool = False  # recompute Transformer layers in backward
    compile: bool = False  # torch.compile (dynamic shapes) the conv encoder, positional conv and each layer
    # The positional convolution as the convolution ("conv"), through the FFT ("fft": the same function in fp32,
    # to rounding; cuDNN's grouped 128-tap kernels are slow on GPUs) or "auto" (FFT on CUDA only).
    pos_conv_impl: Literal["conv", "fft", "auto"] = "conv"
    timeout_minutes: float = 30.0  # a collective that waits longer fails the job instead of hanging


@dataclass
class PrecisionConfig:
    mode: Literal["fp32", "bf16", "fp16"] = "fp32"
    # fp32 matmuls and convolutions on TF32 tensor cores (Ampere+): faster, ~1e-3 relative error.
    # None keeps torch's defaults (TF32 for cuDNN convolutions, not for matmuls).
    allow_tf32: bool | None = None
    fp16_init_scale: float = 128.0  # fairseq's fp16_init_scale
    fp16_scale_window: int = 2000  # updates without overflow before doubling the scale
    min_loss_scale: float = 1e-4  # fp16: abort below this scale (fairseq's min_loss_scale)
    max_consecutive_nonfinite: int = 10  # skipped updates in a row before aborting


@dataclass
class LoggingConfig:
    log_interval: int = 200  # updates between train log lines
    valid_interval_updates: int = 10_000  # 0 = validate only at the end
    progress_bar: bool = True
    tensorboard: bool = True  # used when the `tb` extra is installed
    alarms: bool = True


@dataclass
class TrainConfig:
    """A whole run. ``task`` selects what the trainer optimizes."""

    task: str = "pretrain"
    seed: int = 1
    device: str = "auto"  # auto | cpu | cuda
    model: ModelSection = field(default_factory=ModelSection)
    data: DataSection = field(default_factory=DataSection)
    optim: OptimConfig = field(default_factory=OptimConfig)
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)
    checkpoint: CheckpointConfig = field(default_factory=CheckpointConfig)
    distributed: DistributedConfig = field(default_factory=DistributedConfig)
    precision: PrecisionConfig = field(default_factory=PrecisionConfig)
    logging: LoggingConfig = field(default_factory=LoggingConfig)


# The backbone settings fine-tuning starts from: fairseq ``Wav2Vec2AsrConfig``'s defaults (its
# ``arg_overrides`` of the pretrained model's config). ``model.overrides`` of a fine-tuning config go on top
# (the LibriSpeech recipes set the paper's values: mask_prob 0.65, mask_channel_prob 0.25-0.5 with
# mask_channel_length 64, layerdrop 0.05-0.1, activation_dropout 0.1). feature_grad_mult 0 = the conv
# encoder is frozen.
FINETUNE_MODEL_DEFAULTS: dict[str, Any] = {
    "feature_grad_mult": 0.0,
    "dropout": 0.0,
    "attention_dropout": 0.0,
    "activation_dropout": 0.0,
    "dropout_input": 0.0,
    "final_dropout": 0.0,
    "encoder_layerdrop": 0.0,
    "mask_prob": 0.5,
    "mask_length": 10,
    "mask_selection": "static",
    "mask_other": 0.0,
    "mask_channel_prob": 0.0,
    "mask_channel_length": 10,
    "mask_channel_selection": "static",
    "mask_channel_other": 0.0,
    "mask_channel_before": False,
    "require_same_masks": True,
    "mask_dropout": 0.0,
}


@dataclass
class FinetuneSection:
    """CTC fine-tuning settings (the backbone's own settings go under ``model.overrides``, on top of
    :data:`FINETUNE_MODEL_DEFAULTS`)."""

    pretrained: str = ""  # our checkpoint folder / .safetensors prefix; "" = fresh model.preset
    labels: str = "ltr"  # label extension next to each manifest: ltr, phn, wrd, or a sentencepiece ext
    dictionary: str | None = None  # default: dict.<labels>.txt next to the first train manifest
    unit: Literal["letter", "phone", "spm", "word"] | None = None  # None: from the dictionary
    new_head: bool = False  # continuing from a CTC checkpoint: keep its head (same vocab) or start a new one
    freeze_finetune_updates: int = 0
    head_lr_scale: float = 1.0  # the CTC output layer's lr = this x the scheduled lr (fairseq: one lr for all)
    # A new head's start (see CTCTask.init_head). Default: bias = log of the frame-level unit distribution of
    # the training labels (blank = 1 - labels/frames) and zero weights, so every frame starts at that prior.
    # fairseq: head_bias_init=zero head_weight_init=xavier; HF transformers: zero + hf (normal, std 0.02).
    head_bias_init: Literal["prior", "zero"] = "prior"
    head_weight_init: Literal["zero", "xavier", "hf"] = "zero"
    init_blank_prob: float | None = None  # "prior" with this blank posterior instead of 1 - labels/frames
    skip_empty_labels: bool = False  # rows with an empty transcript: an error (default), or skipped and counted
    reinit_layers: int = 0  # fresh weights for the top N Transformer layers of the pretrained model (fairseq: 0)
    # Monitoring
    all_blank_threshold: float = 0.999
    all_blank_grace_updates: int = 500  # updates after the freeze ends before all-blank output alarms
    # "stuck at the prior": validation outputs that barely depend on the input (frame/output mutual
    # information below this fraction of the output entropy) for stuck_validations validations in a row,
    # or (train) blank winning no frame for blank_free_updates updates, after the freeze ended +
    # all_blank_grace_updates
    stuck_mi_frac: float = 0.46
    stuck_validations: int = 2
    blank_free_updates: int = 200

    def __post_init__(self) -> None:
        if self.freeze_finetune_updates < 0:
            raise ValueError("freeze_finetune_updates must be >= 0")
        if self.reinit_layers < 0:
            raise ValueError("reinit_layers must be >= 0")
        if self.head_lr_scale <= 0:
            raise ValueError("head_lr_scale must be > 0")
        if self.init_blank_prob is not None and not 0 < self.init_blank_prob < 1:
            raise ValueError("init_blank_prob must be in (0, 1)")
        if not 0 < self.all_blank_threshold <= 1:
            raise ValueError("all_blank_threshold must be in (0, 1]")


@dataclass
class FinetuneDataSection(DataSection):
    """Fine-tuning pads instead of cropping: keep every utterance long enough for one frame; fairseq's
    fine-tuning batches are 3.2M samples (BASE) per GPU."""

    max_tokens: int = 3_200_000
    max_sample_size: int = SAMPLE_RATE * 3600
    min_sample_size: int = 400


@dataclass
class FinetuneOptimConfig(OptimConfig):
    """fairseq fine-tuning: Adam(0.9, 0.98), eps 1e-8, no weight decay, lr 5e-5, 13k updates (10 min / 1 h)."""

    lr: float = 5e-5
    eps: float = 1e-8
    weight_decay: float = 0.0
    max_update: int = 13_000


@dataclass
class FinetuneScheduleConfig(ScheduleConfig):
    """Tri-stage: 10% linear warmup from 0.01*lr, 40% hold, 50% exponential decay to 0.05*lr."""

    name: Literal["polynomial_decay", "tri_stage", "constant"] = "tri_stage"


@dataclass
class FinetuneConfig(TrainConfig):
    """A fine-tuning run: :class:`TrainConfig` with fine-tuning defaults and a ``finetune`` section."""

    task: str = "ctc"
    data: FinetuneDataSection = field(default_factory=FinetuneDataSection)
    optim: FinetuneOptimConfig = field(default_factory=FinetuneOptimConfig)
    schedule: FinetuneScheduleConfig = field(default_factory=FinetuneScheduleConfig)
    finetune: FinetuneSection = field(default_factory=FinetuneSection)


def matching_update_freq(optim: OptimConfig, world_size: int) -> int:
    """``update_freq`` that gives the recipe's batch (``reference_gpus x reference_update_freq`` micro-batches
    per update) on ``world_size`` ranks, rounded up; the config's own ``update_freq`` when it has no reference."""
    ref = optim.reference_gpus * optim.reference_update_freq
    return max(1, math.ceil(ref / max(world_size, 1))) if optim.reference_gpus > 0 else optim.update_freq


def load_train_config(
    path: str | Path | None, overrides: list[str] | tuple[str, ...] = (), cls: type = TrainConfig
) -> Any:
    """Read a run config (``cls`` = :class:`TrainConfig` or a task's subclass) with dotted overrides."""
    cfg = load_config(cls, path, list(overrides))
    if not cfg.data.train:
        where = f"{path}: " if path is not None else ""
        raise ConfigError(f"{where}key 'data.train': at least one training manifest is required")
    return cfg
