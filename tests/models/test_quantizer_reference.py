"""The quantizer against hand-computed references (issue 11).

1. Diversity loss: fairseq's ``prob_perplexity`` is computed from the *softmax* of the quantizer logits,
   averaged over the (masked) frames per group: ``sum_g exp(-sum_v p̄_gv log(p̄_gv + 1e-7))``, and the loss is
   ``(G*V - prob_perplexity) / (G*V)``. The reference below recomputes it with plain Python loops over
   frames, groups and entries (float64) from the logits, so a swap to the hard-code perplexity is caught.
2. Gumbel sampling: the hard Gumbel-softmax sample ``argmax((logits + g) / tau)`` with ``g ~ Gumbel(0, 1)``
   picks entry ``v`` with probability ``softmax(logits)[v]`` whatever tau (the Gumbel-max trick). The test
   counts many draws of the quantizer's own training path against those probabilities.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from speech_ssl.models import Wav2Vec2ForPretraining, get_preset
from speech_ssl.models.masking import compute_mask_indices, sample_negatives
from speech_ssl.models.quantizer import GumbelVectorQuantizer


# ------------------------------------------------------------------ plain-Python reference
def ref_softmax(row: list[float]) -> list[float]:
    m = max(row)
    e = [math.exp(v - m) for v in row]
    s = sum(e)
    return [v / s for v in e]


def ref_prob_perplexity(logits: np.ndarray, use: list[bool] | None = None) -> float:
    """logits (N, G, V) float64; ``use`` (N,) which frames count -> sum over groups of exp(H(mean softmax))."""
    N, G, V = logits.shape
    frames = [n for n in range(N) if use is None or use[n]]
    total = 0.0
    for g in range(G):
        avg = [0.0] * V
        for n in frames:
            p = ref_softmax([float(logits[n, g, v]) for v in range(V)])
            for v in range(V):
                avg[v] += p[v] / len(frames)
        entropy = 0.0
        for v in range(V):
            entropy -= avg[v] * math.log(avg[v] + 1e-7)
        total += math.exp(entropy)
    return total


def ref_code_perplexity(logits: np.ndarray, use: list[bool] | None = None) -> float:
    """Same on hard argmax one-hots (what fairseq logs as code_perplexity)."""
    N, G, V = logits.shape
    frames = [n for n in range(N) if use is None or use[n]]
    total = 0.0
    for g in range(G):
        counts = [0] * V
        for n in frames:
            row = [float(logits[n, g, v]) for v in range(V)]
            counts[row.index(max(row))] += 1
        entropy = 0.0
        for v in range(V):
            avg = counts[v] / len(frames)
            entropy -= avg * math.log(avg + 1e-7)
        total += math.exp(entropy)
    return total


def quantizer_logits(q: GumbelVectorQuantizer, x: torch.Tensor) -> np.ndarray:
    """x (B, T, C) -> (B*T, G, V) float64 logits of ``q.weight_proj``, computed outside the module."""
    W = q.weight_proj.weight.detach().double().numpy()
    b = q.weight_proj.bias.detach().double().numpy()
    flat = x.detach().double().reshape(-1, x.shape[-1]).numpy()
    return (flat @ W.T + b).reshape(-1, q.groups, q.num_vars)


# ------------------------------------------------------------------ 1. diversity loss
@pytest.mark.parametrize("scale", [0.05, 0.3])
def test_prob_perplexity_is_softmax_mean_not_code_counts(scale):
    torch.manual_seed(1)
    q = GumbelVectorQuantizer(input_dim=8, num_vars=5, groups=3, vq_dim=6).eval()
    x = torch.randn(2, 7, 8) * scale  # small logits: softmax far from one-hot, so the two perplexities differ
    mask = torch.zeros(2, 7, dtype=torch.bool)
    mask[0, 1:5] = True
    mask[1, 2:7] = True
    logits = quantizer_logits(q, x)
    use = mask.reshape(-1).tolist()
    with torch.no_grad():
        out_all = q(x)
        out_masked = q(x, mask=mask)
    prob_all, prob_masked = ref_prob_perplexity(logits), ref_prob_perplexity(logits, use)
    assert abs(prob_all - ref_code_perplexity(logits)) > 0.05  # the test can tell the two apart
    assert float(out_all.prob_perplexity) == pytest.approx(prob_all, rel=1e-5)
    assert float(out_masked.prob_perplexity) == pytest.approx(prob_masked, rel=1e-5)
    assert float(out_all.code_perplexity) == pytest.approx(ref_code_perplexity(logits), rel=1e-5)
    assert float(out_masked.code_perplexity) == pytest.approx(ref_code_perplexity(logits, use), rel=1e-5)
    # training mode (Gumbel noise on the codes) leaves the soft perplexity unchanged
    q.train()
    with torch.no_grad():
        out_train = q(x, mask=mask, generator=torch.Generator().manual_seed(0))
    assert float(out_train.prob_perplexity) == pytest.approx(prob_masked, rel=1e-5)


def test_pretraining_diversity_loss_matches_hand_computed_reference():
    cfg = get_preset("tiny", loss_weights=(0.1, 0.0))
    model = Wav2Vec2ForPretraining(cfg).train()
    captured: dict = {}

    def hook(module, args, kwargs):
        captured["x"] = args[0].detach().clone()
        captured["mask"] = kwargs["mask"].detach().clone()

    handle = model.quantizer.register_forward_pre_hook(hook, with_kwargs=True)
    g = torch.Generator().manual_seed(3)
    x = torch.randn(2, 8000, generator=g) * 0.3
    T = int(model.wav2vec2.output_lengths(torch.tensor([8000]))[0])
    mask = compute_mask_indices((2, T), None, 0.5, 3, min_masks=2, generator=g)
    neg = sample_negatives(mask, cfg.num_negatives, generator=g)
    try:
        out = model(x, mask_indices=mask, negative_indices=neg, generator=g)
    finally:
        handle.remove()
    assert torch.equal(captured["mask"], mask)  # perplexities count the masked frames only (fairseq)
    logits = quantizer_logits(model.quantizer, captured["x"])
    use = mask.reshape(-1).tolist()
    GV = cfg.latent_groups * cfg.latent_vars
    ppl = ref_prob_perplexity(logits, use)
    assert abs(ppl - ref_code_perplexity(logits, use)) > 1e-2  # the two differ on this input
    diversity = (GV - ppl) / GV
    assert out.logs["prob_perplexity"] == pytest.approx(ppl, rel=1e-5)
    assert out.logs["diversity_loss"] == pytest.approx(diversity, rel=1e-5, abs=1e-6)
    n = out.sample_size
    assert n == int(mask.sum())
    assert out.logs["diversity_term"] == pytest.approx(cfg.loss_weights[0] * diversity * n, rel=1e-5, abs=1e-6)
    assert out.logs["code_perplexity"] == pytest.approx(ref_code_perplexity(logits, use), rel=1e-5)


# ------------------------------------------------------------------ 2. Gumbel sampling
LOGITS = [[2.0, 1.0, 0.5, 0.0, -0.5, -1.5], [-1.0, 0.3, 1.2, 0.0, 0.0, -2.0]]  # (G, V)


def fixed_logit_quantizer(temp: float) -> GumbelVectorQuantizer:
    """A quantizer whose logits are LOGITS for every frame: zero weights, the logits as the bias."""
    G, V = len(LOGITS), len(LOGITS[0])
    q = GumbelVectorQuantizer(input_dim=1, num_vars=V, groups=G, vq_dim=2 * G)
    with torch.no_grad():
        q.weight_proj.weight.zero_()
        q.weight_proj.bias.copy_(torch.tensor(LOGITS).reshape(-1))
    q.curr_temp = temp
    return q.train()


def draw_frequencies(q: GumbelVectorQuantizer, n: int, generator: torch.Generator | None) -> np.ndarray:
    """(G, V) frequency of each entry over n hard samples of the training path."""
    with torch.no_grad():
        out = q(torch.ones(1, n, 1), generator=generator)
    codes = out.codes.reshape(n, q.groups)
    # the straight-through output is exactly the chosen codevector of each group
    book = q.codevectors.detach().view(q.groups, q.num_vars, -1)
    chosen = torch.stack([book[g, codes[:, g]] for g in range(q.groups)], dim=1).reshape(1, n, -1)
    assert torch.allclose(out.x, chosen, atol=1e-6)
    return np.stack([np.bincount(codes[:, g].numpy(), minlength=q.num_vars) / n for g in range(q.groups)])


@pytest.mark.parametrize("temp,use_generator", [(2.0, True), (0.5, True), (1.0, False)])
def test_hard_gumbel_samples_follow_softmax_of_logits(temp, use_generator):
    n = 40_000
    q = fixed_logit_quantizer(temp)
    torch.manual_seed(7)
    gen = torch.Generator().manual_seed(11) if use_generator else None
    freq = draw_frequencies(q, n, gen)
    expected = np.array([ref_softmax(row) for row in LOGITS])
    # max |freq - p| over 12 cells: one standard error is <= sqrt(0.25 / n) = 0.0025
    assert np.abs(freq - expected).max() < 0.012, (freq, expected)
    # Pearson chi-square per group, 5 degrees of freedom: P(chi2_5 > 30) ~ 1.5e-5
    for g in range(len(LOGITS)):
        chi2 = float((n * (freq[g] - expected[g]) ** 2 / expected[g]).sum())
        assert chi2 < 30.0, (g, chi2, freq[g], expected[g])


def test_eval_mode_is_argmax_without_noise():
    q = fixed_logit_quantizer(2.0).eval()
    with torch.no_grad():
        out = q(torch.ones(1, 50, 1))
    assert (out.codes[0, :, 0] == 0).all() and (out.codes[0, :, 1] == 2).all()
