"""Gumbel-softmax product quantizer (fairseq's GumbelVectorQuantizer, wav2vec 2.0 paper section 2.2)."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from speech_ssl.precision import full_precision


@dataclass
class QuantizerOutput:
    x: torch.Tensor  # (B, T, vq_dim) quantized vectors (groups concatenated)
    prob_perplexity: torch.Tensor  # () sum over groups of exp(entropy of mean soft distribution)
    code_perplexity: torch.Tensor  # () same on hard one-hot codes (logging only)
    temp: float
    codes: torch.Tensor  # (B, T, G) chosen entry per group


def _perplexity(probs: torch.Tensor, weights: torch.Tensor | None) -> torch.Tensor:
    """probs (N, G, V), weights (N,) 0/1 or None -> () sum_g exp(H(mean_n probs[n, g]))."""
    if weights is None:
        avg = probs.mean(dim=0)
    else:
        w = weights.to(probs.dtype)
        avg = (probs * w[:, None, None]).sum(dim=0) / w.sum().clamp(min=1.0)
    return torch.exp(-torch.sum(avg * torch.log(avg + 1e-7), dim=-1)).sum()


class GumbelVectorQuantizer(nn.Module):
    """G groups x V entries; each group picks one entry, the entries are concatenated.

    Training: straight-through hard Gumbel-softmax with temperature ``curr_temp``; eval: argmax.
    The temperature follows ``max(max_temp * decay**num_updates, min_temp)`` (``set_num_updates``).
    All math runs in fp32, also under autocast.

    forward: x (B, T, C_in), mask (B, T) bool or None (frames that count for the perplexities)
      -> QuantizerOutput with x (B, T, vq_dim).
    """

    def __init__(self, input_dim: int, num_vars: int, groups: int, vq_dim: int,
                 temp: tuple[float, float, float] = (2.0, 0.5, 0.999995)):
        super().__init__()
        if vq_dim % groups:
            raise ValueError(f"vq_dim {vq_dim} must be divisible by groups {groups}")
        self.num_vars = num_vars
        self.groups = groups
        self.vq_dim = vq_dim
        # fairseq's `vars`: (1, G*V, vq_dim/G), uniform init.
        self.codevectors = nn.Parameter(torch.empty(1, groups * num_vars, vq_dim // groups))
        nn.init.uniform_(self.codevectors)
        self.weight_proj = nn.Linear(input_dim, groups * num_vars)
        nn.init.normal_(self.weight_proj.weight, mean=0.0, std=1.0)
        nn.init.zeros_(self.weight_proj.bias)
        self.max_temp, self.min_temp, self.temp_decay = (float(t) for t in temp)
        self.curr_temp = self.max_temp

    def set_num_updates(self, num_updates: int) -> None:
        self.curr_temp = max(self.max_temp * self.temp_decay**num_updates, self.min_temp)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None,
                generator: torch.Generator | None = None) -> QuantizerOutput:
        B, T, _ = x.shape
        G, V = self.groups, self.num_vars
        with full_precision(x.device):
            logits = F.linear(x.float(), self.weight_proj.weight.float(), self.weight_proj.bias.float())
            logits = logits.view(B * T, G, V)
            idx = logits.argmax(dim=-1)  # (N, G)
            hard = torch.zeros_like(logits).scatter_(-1, idx.unsqueeze(-1), 1.0)
            w = None if mask is None else mask.reshape(-1)
            with torch.no_grad():
                code_ppl = _perplexity(hard, w)
            prob_ppl = _perplexity(torch.softmax(logits, dim=-1), w)
            if self.training:
                # Straight-through Gumbel-softmax (== F.gumbel_softmax(hard=True), with an optional generator).
                gdev = generator.device if generator is not None else logits.device
                u = torch.empty(logits.shape, device=gdev).exponential_(generator=generator).to(logits.device)
                soft = torch.softmax((logits - u.log()) / self.curr_temp, dim=-1)
                sidx = soft.argmax(dim=-1)
                onehot = torch.zeros_like(soft).scatter_(-1, sidx.unsqueeze(-1), 1.0)
                probs = onehot - soft.detach() + soft
                codes = sidx
            else:
                probs = hard
                codes = idx
            # (N, G, V) x (G, V, d) -> (N, G, d)
            book = self.codevectors.float().view(G, V, -1)
            q = torch.einsum("ngv,gvd->ngd", probs, book).reshape(B, T, -1)
        return QuantizerOutput(
            x=q, prob_perplexity=prob_ppl, code_perplexity=code_ppl, temp=self.curr_temp,
            codes=codes.view(B, T, G),
        )
