"""Context network: convolutional relative positions + Transformer encoder (post-LN or pre-LN)."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.parametrizations import weight_norm

from speech_ssl.precision import full_precision

POS_CONV_IMPLS = ("conv", "fft", "auto")


def check_pos_conv_impl(impl: str) -> str:
    if impl not in POS_CONV_IMPLS:
        raise ValueError(f"positional conv impl must be one of {', '.join(POS_CONV_IMPLS)}, got {impl!r}")
    return impl


class PositionalConv(nn.Module):
    """Conv1d(D, D, k, padding=k//2, groups) with weight norm over dim 2, drop the last frame when k is even,
    GELU. x (B, T, D) -> (B, T, D) (the caller adds it to x).

    ``impl``: ``"conv"`` (the convolution; the default), ``"fft"`` (the same function through the FFT, in fp32)
    or ``"auto"`` (FFT on CUDA, the convolution elsewhere); the trainer sets it from ``distributed.pos_conv_impl``.
    cuDNN runs this grouped, 128-tap convolution with generic kernels: on an H200 it took 16.4 ms of a 57.8 ms
    BASE bf16 update (forward + backward, 8 x 15 s) for 3% of the update's FLOPs (``bench/gpu_components.py``,
    2026-12-04). The FFT path's GPU time is not measured yet (``pc_fft`` in that script), so it is not the
    default. On a CPU the convolution is faster at batch 1 (BASE, 5 s, fp32, 2 threads: 59-66 vs 150-164 ms
    forward + backward), slower at batch 4 (203-212 vs 154-157 ms); ``auto`` keeps it there (decoding runs one utterance at a
    time). Both compute the same function, equal to fp32 rounding (relative 1e-6; tests/models/test_context.py).
    The FFT path works in fixed blocks (overlap-save): its weight spectrum does not grow with the input's
    length, and it stays eager under ``distributed.compile`` (its block count depends on T).
    """

    def __init__(self, dim: int, kernel: int, groups: int, impl: str = "conv"):
        super().__init__()
        check_pos_conv_impl(impl)
        conv = nn.Conv1d(dim, dim, kernel_size=kernel, padding=kernel // 2, groups=groups)
        nn.init.normal_(conv.weight, mean=0.0, std=math.sqrt(4.0 / (kernel * dim)))
        nn.init.zeros_(conv.bias)
        self.conv = weight_norm(conv, name="weight", dim=2)
        self.remove = 1 if kernel % 2 == 0 else 0
        self.impl = impl

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.impl == "fft" or (self.impl == "auto" and x.device.type == "cuda"):
            return self._fft(x)
        y = self.conv(x.transpose(1, 2))
        if self.remove:
            y = y[:, :, : -self.remove]
        return F.gelu(y).transpose(1, 2)

    @torch.compiler.disable  # its block count depends on T: compiled, each new length would recompile
    def _fft(self, x: torch.Tensor) -> torch.Tensor:
        """The grouped cross-correlation by overlap-save, in fp32: blocks of L = n - k + 1 output frames, each
        from n = 2^ceil(log2(2k)) padded input frames, multiplied in the frequency domain by the conjugate
        spectrum of each group's (D/G x D/G x k) weight. Output frame t is sum_j w[j] x[t + j - k//2]; a block's
        first L frames of the circular correlation are free of wrap-around. The weight's spectrum does not grow
        with T: (G, D/G, D/G, n/2 + 1) complex, 38 MB for BASE."""
        B, T, D = x.shape
        w = self.conv.weight  # (D, D/G, k), weight norm applied
        Dg, k = w.shape[1], w.shape[2]
        G = D // Dg
        n = 1 << (2 * k - 1).bit_length()  # a power of two >= 2k
        L = n - k + 1
        blocks = -(-T // L)
        with full_precision(x.device):
            xs = x.float().transpose(1, 2).reshape(B, G, Dg, T)
            xs = F.pad(xs, (k // 2, blocks * L + k - 1 - k // 2 - T))  # (B, G, Dg, blocks * L + k - 1)
            spec = torch.fft.rfft(xs.unfold(-1, n, L), n=n)  # (B, G, Dg_in, blocks, F)
            ws = torch.fft.rfft(w.float().reshape(G, Dg, Dg, k), n=n).conj()  # (G, Dg_out, Dg_in, F)
            y = torch.fft.irfft(torch.einsum("bgicf,goif->bgocf", spec, ws), n=n)[..., :L]
            y = y.reshape(B, D, blocks * L)[..., :T] + self.conv.bias.float()[:, None]
            return F.gelu(y).transpose(1, 2).to(x.dtype)


class SelfAttention(nn.Module):
    """Multi-head self-attention with separate q/k/v/out projections (fairseq MultiheadAttention).

    x (B, T, D), key_padding_mask (B, T) bool True = padding -> (B, T, D).
    """

    def __init__(self, dim: int, heads: int, dropout: float):
        super().__init__()
        self.heads = heads
        self.dropout = dropout
        self.q_proj = nn.Linear(dim, dim)
        self.k_proj = nn.Linear(dim, dim)
        self.v_proj = nn.Linear(dim, dim)
        self.out_proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor, key_padding_mask: torch.Tensor | None = None) -> torch.Tensor:
        B, T, D = x.shape
        h = self.heads

        def split(t: torch.Tensor) -> torch.Tensor:
            return t.view(B, T, h, D // h).transpose(1, 2)

        q, k, v = split(self.q_proj(x)), split(self.k_proj(x)), split(self.v_proj(x))
        attn_mask = None if key_padding_mask is None else ~key_padding_mask[:, None, None, :]
        y = F.scaled_dot_product_attention(
            q, k, v, attn_mask=attn_mask, dropout_p=self.dropout if self.training else 0.0
        )
        return self.out_proj(y.transpose(1, 2).reshape(B, T, D))


class TransformerLayer(nn.Module):
    """fairseq TransformerSentenceEncoderLayer. Post-LN (``layer_norm_first=False``):
    x = LN(x + drop(attn(x))); x = LN(x + drop(fc2(drop_act(gelu(fc1(x)))))).
    Pre-LN: x = x + drop(attn(LN(x))); x = x + drop(fc2(drop_act(gelu(fc1(LN(x)))))).
    x (B, T, D) -> (B, T, D)."""

    def __init__(self, dim: int, ffn_dim: int, heads: int, dropout: float, attention_dropout: float,
                 activation_dropout: float, layer_norm_first: bool, eps: float = 1e-5):
        super().__init__()
        self.attn = SelfAttention(dim, heads, attention_dropout)
        self.attn_norm = nn.LayerNorm(dim, eps=eps)
        self.fc1 = nn.Linear(dim, ffn_dim)
        self.fc2 = nn.Linear(ffn_dim, dim)
        self.final_norm = nn.LayerNorm(dim, eps=eps)
        self.drop = nn.Dropout(dropout)
        self.act_drop = nn.Dropout(activation_dropout)
        self.layer_norm_first = layer_norm_first

    def _ffn(self, x: torch.Tensor) -> torch.Tensor:
        return self.drop(self.fc2(self.act_drop(F.gelu(self.fc1(x)))))

    def forward(self, x: torch.Tensor, key_padding_mask: torch.Tensor | None = None) -> torch.Tensor:
        if self.layer_norm_first:
            x = x + self.drop(self.attn(self.attn_norm(x), key_padding_mask))
            return x + self._ffn(self.final_norm(x))
        x = self.attn_norm(x + self.drop(self.attn(x, key_padding_mask)))
        return self.final_norm(x + self._ffn(x))


def _zero_touch(module: nn.Module) -> torch.Tensor:
    """0 * (sum of the first element of every parameter): keeps a skipped layer's parameters in the
    autograd graph (zero gradients) so DDP needs no ``find_unused_parameters``."""
    terms = [p.reshape(-1)[0] for p in module.parameters() if p.requires_grad]
    if not terms:
        return torch.zeros(())
    return torch.stack(terms).sum() * 0.0


class TransformerEncoder(nn.Module):
    """Positional conv + Transformer layers (fairseq's TransformerEncoder).

    Steps: zero padded frames; x = x + pos_conv(x); post-LN: LayerNorm here; pad T to a multiple of
    ``required_seq_len_multiple`` (extra frames are masked keys, so results do not depend on it); dropout;
    layers (LayerDrop in training); pre-LN: final LayerNorm.

    LayerDrop: in training each layer is skipped with probability ``layerdrop``, decided by ``torch.rand``
    (optionally from ``generator``). A skipped layer returns ``x + 0 * sum(first element of each of its
    parameters)``, so every parameter takes part in the graph and gets a (zero) gradient: DDP works
    without ``find_unused_parameters`` even when ranks skip different layers. (Under activation
    checkpointing the decision is made outside the checkpointed function, so recomputation is consistent.)

    forward: x (B, T, D), padding_mask (B, T) bool (True = padding; None when no frame is padded, as the backbone
    passes it: then attention needs no mask)
      -> (last (B, T, D), hidden_states: list of L+1 tensors (B, T, D)); hidden_states[0] is the input of
      the first layer, hidden_states[n] the output of layer n (before the pre-LN final LayerNorm, as HF
      transformers 5.x ``hidden_states``). ``keep_hidden=False``: an empty list, and each layer's output is
      freed as soon as the next one is computed (inference holds one layer's activations, not L + 1).
    """

    def __init__(self, dim: int, ffn_dim: int, layers: int, heads: int, dropout: float, attention_dropout: float,
                 activation_dropout: float, layer_norm_first: bool, conv_pos: int, conv_pos_groups: int,
                 layerdrop: float = 0.0, required_seq_len_multiple: int = 2, eps: float = 1e-5):
        super().__init__()
        self.pos_conv = PositionalConv(dim, conv_pos, conv_pos_groups)
        self.layer_norm = nn.LayerNorm(dim, eps=eps)
        self.dropout = nn.Dropout(dropout)
        self.layers = nn.ModuleList(
            TransformerLayer(dim, ffn_dim, heads, dropout, attention_dropout, activation_dropout,
                             layer_norm_first, eps)
            for _ in range(layers)
        )
        self.layer_norm_first = layer_norm_first
        self.layerdrop = layerdrop
        self.multiple = required_seq_len_multiple
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """BERT init for every Linear of the layers: N(0, 0.02), bias 0 (fairseq init_bert_params)."""
        for m in self.layers.modules():
            if isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, mean=0.0, std=0.02)
                nn.init.zeros_(m.bias)

    def reinit_top_layers(self, n: int) -> None:
        """Fresh weights for the top ``n`` layers (BERT init, LayerNorms reset) and, in pre-LN, the final
        LayerNorm: the last layers of a contrastively pretrained model are specialised to that objective
        (Pasad et al. 2021, "Layer-wise analysis of a self-supervised speech representation model")."""
        if not 0 <= n <= len(self.layers):
            raise ValueError(f"cannot re-initialise {n} of {len(self.layers)} Transformer layers")
        for layer in list(self.layers)[len(self.layers) - n:]:
            for m in layer.modules():
                if isinstance(m, nn.Linear):
                    nn.init.normal_(m.weight, mean=0.0, std=0.02)
                    nn.init.zeros_(m.bias)
                elif isinstance(m, nn.LayerNorm):
                    m.reset_parameters()
        if n and self.layer_norm_first:
            self.layer_norm.reset_parameters()

    def forward(self, x: torch.Tensor, padding_mask: torch.Tensor | None = None,
                generator: torch.Generator | None = None,
                keep_hidden: bool = True) -> tuple[torch.Tensor, list[torch.Tensor]]:
        B, T, D = x.shape
        if padding_mask is not None:
            x = x.masked_fill(padding_mask.unsqueeze(-1), 0.0)
        x = x + self.pos_conv(x)
        if not self.layer_norm_first:
            x = self.layer_norm(x)
        pad = (-T) % self.multiple
        kpm = padding_mask
        if pad:
            x = F.pad(x, (0, 0, 0, pad))
            if kpm is None:
                kpm = torch.zeros((B, T), dtype=torch.bool, device=x.device)
            kpm = F.pad(kpm, (0, pad), value=True)
        x = self.dropout(x)
        hidden = [x[:, :T]] if keep_hidden else []
        if self.training and self.layerdrop > 0:
            dev = generator.device if generator is not None else torch.device("cpu")
            drop = torch.rand(len(self.layers), generator=generator, device=dev).cpu() < self.layerdrop
        else:
            drop = torch.zeros(len(self.layers), dtype=torch.bool)
        for layer, skip in zip(self.layers, drop.tolist()):
            if skip:
                x = x + _zero_touch(layer).to(x.dtype)
            else:
                x = layer(x, kpm)
            if keep_hidden:
                hidden.append(x[:, :T])
        x = x[:, :T]
        if self.layer_norm_first:
            x = self.layer_norm(x)
        return x, hidden
