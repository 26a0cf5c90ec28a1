"""Convolutional feature encoder (waveform -> latent frames), fairseq's ConvFeatureExtractionModel."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def conv_output_length(lengths, layers):
    """Frames the conv stack makes of ``lengths`` samples: ``floor((L - k) / s) + 1`` per block, at least 0.

    ``lengths``: an int, an int64 tensor or an integer numpy array (any shape; same type out);
    ``layers``: ``(dim, kernel, stride)`` per block (``Wav2Vec2Config.conv_feature_layers``).
    """
    for _, k, s in layers:
        lengths = (lengths - k) // s + 1
    return max(lengths, 0) if isinstance(lengths, int) else lengths.clip(min=0)


def receptive_field(layers) -> int:
    """Samples seen by one output frame (400 for every fairseq preset)."""
    rf, jump = 1, 1
    for _, k, s in layers:
        rf += (k - 1) * jump
        jump *= s
    return rf


def total_stride(layers) -> int:
    """Samples between consecutive output frames (320 for every fairseq preset)."""
    jump = 1
    for _, _, s in layers:
        jump *= s
    return jump


def _fp32_inside(x: torch.Tensor) -> bool:
    """Whether a norm kernel may take ``x`` as it is and compute in fp32 inside: bf16 on CPU, whose group and
    layer norm kernels read bf16 with fp32 affine parameters and do their arithmetic in fp32 (as the explicit
    upcast does), without the two copies of the (B, C, L) activations the upcast costs (~7% of a BASE bf16
    inference forward on CPU)."""
    return x.dtype == torch.bfloat16 and x.device.type == "cpu"


def _fp32(p: torch.Tensor | None) -> torch.Tensor | None:
    return None if p is None else p.float()


class Fp32GroupNorm(nn.GroupNorm):
    """GroupNorm computed in fp32 (as fairseq) and cast back. x: (B, C, T)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if _fp32_inside(x):
            return F.group_norm(x, self.num_groups, _fp32(self.weight), _fp32(self.bias), self.eps)
        y = F.group_norm(x.float(), self.num_groups, _fp32(self.weight), _fp32(self.bias), self.eps)
        return y.type_as(x)


class Fp32ChannelLayerNorm(nn.LayerNorm):
    """LayerNorm over the channel axis of (B, C, T), computed in fp32 and cast back."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w, b = _fp32(self.weight), _fp32(self.bias)
        # Not when training: the CPU layer norm's backward from bf16 loses precision in the affine gradients
        # (~15x the upcast's error; tests/models/test_feature_encoder.py), the group norm's does not.
        if _fp32_inside(x) and not torch.is_grad_enabled():
            return F.layer_norm(x.transpose(1, 2), self.normalized_shape, w, b, self.eps).transpose(1, 2)
        y = F.layer_norm(x.transpose(1, 2).float(), self.normalized_shape, w, b, self.eps)
        return y.transpose(1, 2).type_as(x)


class ConvBlock(nn.Module):
    """Conv1d -> (dropout) -> optional norm -> GELU.  (B, C_in, L) -> (B, C_out, L')."""

    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int, bias: bool, norm: str | None,
                 dropout: float = 0.0):
        super().__init__()
        self.kernel = kernel
        self.stride = stride
        self.conv = nn.Conv1d(c_in, c_out, kernel, stride=stride, bias=bias)
        nn.init.kaiming_normal_(self.conv.weight)
        if bias:
            nn.init.zeros_(self.conv.bias)
        self.dropout = nn.Dropout(dropout)
        if norm == "group":
            self.norm: nn.Module | None = Fp32GroupNorm(c_out, c_out, affine=True)
        elif norm == "layer":
            self.norm = Fp32ChannelLayerNorm(c_out, elementwise_affine=True)
        else:
            self.norm = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.dropout(self.conv(x))
        if self.norm is not None:
            x = self.norm(x)
        return F.gelu(x)


class ConvFeatureEncoder(nn.Module):
    """Stack of conv blocks. ``mode="default"``: GroupNorm (one group per channel) in block 0 only;
    ``mode="layer_norm"``: LayerNorm over channels in every block.

    forward: waveforms (B, L) float -> features (B, C, T).

    Group-norm mode normalises block 0 over the whole time axis, padding included, so a padded batch does
    not give the same per-utterance features as one utterance at a time (as in fairseq and HF).
    """

    def __init__(self, layers: list[tuple[int, int, int]], mode: str = "default", conv_bias: bool = False,
                 dropout: float = 0.0):
        super().__init__()
        if mode not in ("default", "layer_norm"):
            raise ValueError(f"extractor_mode must be 'default' or 'layer_norm', got {mode!r}")
        blocks = []
        c_in = 1
        for i, (dim, k, s) in enumerate(layers):
            norm = "layer" if mode == "layer_norm" else ("group" if i == 0 else None)
            blocks.append(ConvBlock(c_in, dim, k, s, conv_bias, norm, dropout))
            c_in = dim
        self.blocks = nn.ModuleList(blocks)
        self.out_dim = c_in
        self.layers = [tuple(x) for x in layers]
        self.receptive_field = receptive_field(layers)
        self.total_stride = total_stride(layers)

    def output_lengths(self, lengths: torch.Tensor) -> torch.Tensor:
        """Frames produced for ``lengths`` samples (:func:`conv_output_length`). (B,) -> (B,) int64."""
        return conv_output_length(lengths.to(torch.int64), self.layers)

    def forward(self, waveforms: torch.Tensor) -> torch.Tensor:
        x = waveforms.unsqueeze(1)
        for b in self.blocks:
            x = b(x)
        return x
