"""Model configuration: ``Wav2Vec2Config`` with fairseq's field names and BASE defaults, and presets.

Field names follow fairseq's ``Wav2Vec2Config`` (``fairseq/models/wav2vec/wav2vec2.py``) so that a fairseq
``cfg.model`` mapping can be read field by field. Defaults are the BASE pretraining values.

    cfg = get_preset("base", encoder_layerdrop=0.1)
    cfg = get_preset("tiny")
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Literal

from speech_ssl.config import ConfigError
from speech_ssl.models.feature_encoder import conv_output_length, receptive_field, total_stride

BASE_CONV_LAYERS: list[tuple[int, int, int]] = [(512, 10, 5)] + [(512, 3, 2)] * 4 + [(512, 2, 2)] * 2


@dataclass
class Wav2Vec2Config:
    """wav2vec 2.0 architecture + masking + loss settings (fairseq names, BASE defaults)."""

    # --- feature encoder (conv) ---
    extractor_mode: Literal["default", "layer_norm"] = "default"
    conv_feature_layers: list[tuple[int, int, int]] = field(default_factory=lambda: list(BASE_CONV_LAYERS))
    conv_bias: bool = False
    feature_grad_mult: float = 0.1
    # --- context network (Transformer) ---
    encoder_layers: int = 12
    encoder_embed_dim: int = 768
    encoder_ffn_embed_dim: int = 3072
    encoder_attention_heads: int = 12
    activation_fn: Literal["gelu"] = "gelu"
    layer_norm_first: bool = False
    layer_norm_eps: float = 1e-5
    conv_pos: int = 128
    conv_pos_groups: int = 16
    required_seq_len_multiple: int = 2
    # --- dropouts ---
    dropout: float = 0.1
    attention_dropout: float = 0.1
    activation_dropout: float = 0.0
    encoder_layerdrop: float = 0.05
    dropout_input: float = 0.1
    dropout_features: float = 0.1
    final_dropout: float = 0.0  # CTC head only (fairseq's Wav2Vec2AsrConfig.final_dropout)
    # --- quantizer / contrastive task ---
    final_dim: int = 256
    logit_temp: float = 0.1
    latent_vars: int = 320
    latent_groups: int = 2
    latent_dim: int = 0  # 0 -> final_dim (fairseq: vq_dim = latent_dim if > 0 else final_dim)
    latent_temp: tuple[float, float, float] = (2.0, 0.5, 0.999995)  # (max, min, decay per update)
    num_negatives: int = 100
    cross_sample_negatives: int = 0
    loss_weights: tuple[float, float] = (0.1, 10.0)  # (diversity, features_pen)
    # --- time masking ---
    mask_prob: float = 0.65
    mask_length: int = 10
    mask_selection: Literal["static", "uniform", "normal", "poisson"] = "static"
    mask_other: float = 0.0
    no_mask_overlap: bool = False
    mask_min_space: int = 1
    min_masks: int = 2
    require_same_masks: bool = True
    mask_dropout: float = 0.0
    # --- channel masking ---
    mask_channel_prob: float = 0.0
    mask_channel_length: int = 10
    mask_channel_selection: Literal["static", "uniform", "normal", "poisson"] = "static"
    mask_channel_other: float = 0.0
    no_mask_channel_overlap: bool = False
    mask_channel_min_space: int = 1
    mask_channel_min_masks: int = 0
    mask_channel_before: bool = False

    def __post_init__(self) -> None:
        self.conv_feature_layers = [tuple(int(v) for v in t) for t in self.conv_feature_layers]
        self.latent_temp = tuple(float(v) for v in self.latent_temp)
        self.loss_weights = tuple(float(v) for v in self.loss_weights)
        self.validate()

    # ------------------------------------------------------------------
    @property
    def conv_dim(self) -> int:
        """Channels of the last conv block (512 for every fairseq preset)."""
        return self.conv_feature_layers[-1][0]

    @property
    def vq_dim(self) -> int:
        return self.latent_dim if self.latent_dim > 0 else self.final_dim

    @property
    def receptive_field(self) -> int:
        """Samples seen by one output frame (400 for BASE)."""
        return receptive_field(self.conv_feature_layers)

    @property
    def total_stride(self) -> int:
        """Samples between output frames (320 for BASE)."""
        return total_stride(self.conv_feature_layers)

    def output_length(self, num_samples):
        """Frames for ``num_samples`` (int, tensor or numpy array; :func:`conv_output_length`)."""
        return conv_output_length(num_samples, self.conv_feature_layers)

    def validate(self) -> None:
        def bad(msg: str) -> None:
            raise ConfigError(f"Wav2Vec2Config: {msg}")

        if not self.conv_feature_layers:
            bad("conv_feature_layers is empty")
        for i, t in enumerate(self.conv_feature_layers):
            if len(t) != 3 or min(t) < 1:
                bad(f"conv_feature_layers[{i}]={t}: expected (dim, kernel, stride) of positive ints")
        if self.encoder_embed_dim % self.encoder_attention_heads:
            bad(
                f"encoder_embed_dim={self.encoder_embed_dim} is not divisible by "
                f"encoder_attention_heads={self.encoder_attention_heads}"
            )
        if self.encoder_embed_dim % self.conv_pos_groups:
            bad(f"encoder_embed_dim={self.encoder_embed_dim} is not divisible by conv_pos_groups={self.conv_pos_groups}")
        if self.vq_dim % self.latent_groups:
            bad(f"quantizer dim {self.vq_dim} is not divisible by latent_groups={self.latent_groups}")
        if len(self.latent_temp) != 3:
            bad(f"latent_temp must be (max, min, decay), got {self.latent_temp}")
        if len(self.loss_weights) != 2:
            bad(f"loss_weights must be (diversity, features_pen), got {self.loss_weights}")
        for name in ("dropout", "attention_dropout", "activation_dropout", "encoder_layerdrop", "dropout_input",
                     "dropout_features", "final_dropout", "mask_prob", "mask_channel_prob", "mask_dropout"):
            v = getattr(self, name)
            if not 0.0 <= v <= 1.0:
                bad(f"{name}={v} must be in [0, 1]")
        if self.mask_length < 1 or self.mask_channel_length < 1:
            bad("mask_length and mask_channel_length must be >= 1")
        if self.no_mask_overlap or self.no_mask_channel_overlap:
            bad("no_mask_overlap / no_mask_channel_overlap are not supported (fairseq's sequential "
                "interval-splitting sampler cannot be vectorized); use the default overlapping spans")
        if self.feature_grad_mult < 0:
            bad(f"feature_grad_mult={self.feature_grad_mult} must be >= 0")
        if self.required_seq_len_multiple < 1:
            bad("required_seq_len_multiple must be >= 1")
        if self.num_negatives < 0 or self.cross_sample_negatives < 0:
            bad("num_negatives and cross_sample_negatives must be >= 0")
        if self.num_negatives + self.cross_sample_negatives < 1:
            bad("need at least one negative (num_negatives + cross_sample_negatives >= 1)")

    def replace(self, **overrides) -> "Wav2Vec2Config":
        """A copy with some fields changed (unknown names are a ConfigError)."""
        names = {f.name for f in dataclasses.fields(self)}
        unknown = sorted(set(overrides) - names)
        if unknown:
            raise ConfigError(f"Wav2Vec2Config: unknown field(s) {unknown}")
        return dataclasses.replace(self, **overrides)


# ---------------------------------------------------------------------------
# Presets. Numbers from fairseq's examples/wav2vec configs (wav2vec2_base_librispeech.yaml,
# wav2vec2_large_librivox.yaml) and the released XLSR / XLS-R checkpoints' configs.

_LARGE_ARCH = dict(
    extractor_mode="layer_norm",
    layer_norm_first=True,
    conv_bias=True,
    encoder_layers=24,
    encoder_embed_dim=1024,
    encoder_ffn_embed_dim=4096,
    encoder_attention_heads=16,
    final_dim=768,
    latent_temp=(2.0, 0.1, 0.999995),
    loss_weights=(0.1, 0.0),
)

PRESETS: dict[str, dict] = {
    # CPU tests and demos: the full 7-block conv stack (stride 320, receptive field 400) with narrow
    # channels, a 2-layer pre-LN Transformer, and a temperature that anneals within ~1.4k updates.
    "tiny": dict(
        extractor_mode="layer_norm",
        layer_norm_first=True,
        conv_bias=True,
        conv_feature_layers=[(32, 10, 5)] + [(32, 3, 2)] * 4 + [(32, 2, 2)] * 2,
        encoder_layers=2,
        encoder_embed_dim=64,
        encoder_ffn_embed_dim=128,
        encoder_attention_heads=4,
        conv_pos=16,
        conv_pos_groups=4,
        final_dim=32,
        latent_vars=32,
        latent_groups=2,
        latent_temp=(2.0, 0.5, 0.999),
        num_negatives=20,
        loss_weights=(0.1, 0.0),
        encoder_layerdrop=0.0,
        dropout=0.0,
        attention_dropout=0.0,
        dropout_input=0.0,
        dropout_features=0.0,
        feature_grad_mult=1.0,
    ),
    # wav2vec2_base_librispeech.yaml: every field at its default.
    "base": {},
    # wav2vec2_large_librivox.yaml (LV-60).
    "large": dict(
        _LARGE_ARCH,
        dropout=0.0,
        attention_dropout=0.0,
        encoder_layerdrop=0.0,
        dropout_input=0.0,
        dropout_features=0.0,
        feature_grad_mult=1.0,
    ),
    # XLSR-53: LARGE architecture; dropouts as in the released checkpoint's config (0.1).
    "xlsr_53": dict(_LARGE_ARCH, feature_grad_mult=1.0, encoder_layerdrop=0.1),
    # XLS-R (sizes from the paper / released configs).
    "xls_r_300m": dict(_LARGE_ARCH, feature_grad_mult=1.0, encoder_layerdrop=0.1),
    "xls_r_1b": dict(
        _LARGE_ARCH, encoder_layers=48, encoder_embed_dim=1280, encoder_ffn_embed_dim=5120,
        final_dim=1024, feature_grad_mult=1.0, encoder_layerdrop=0.1,
    ),
    "xls_r_2b": dict(
        _LARGE_ARCH, encoder_layers=48, encoder_embed_dim=1920, encoder_ffn_embed_dim=7680,
        final_dim=1024, feature_grad_mult=1.0, encoder_layerdrop=0.1,
    ),
}


def preset_names() -> list[str]:
    return list(PRESETS)


def get_preset(name: str, **overrides) -> Wav2Vec2Config:
    """The named preset's config, with ``overrides`` applied (fairseq field names)."""
    if name not in PRESETS:
        raise ConfigError(f"unknown model preset {name!r} (known: {', '.join(PRESETS)})")
    return Wav2Vec2Config(**PRESETS[name]).replace(**overrides)
