"""Span masks and negative sampling: fairseq's counts and properties."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from speech_ssl.models.masking import compute_channel_mask, compute_mask_indices, sample_negatives


def starts_of(row: torch.Tensor) -> int:
    """Number of maximal True runs."""
    r = row.to(torch.int8)
    return int(((r[1:] - r[:-1]) == 1).sum()) + int(r[0])


def test_non_overlapping_counts_follow_the_formula():
    # mask_length 1: every span is one frame and starts are distinct, so masked = num_mask exactly,
    # with num_mask = max(min_masks, int(p * sz / L + U)) in {floor(p*sz), floor(p*sz)+1}.
    B, T = 64, 200
    lens = torch.randint(50, T + 1, (B,))
    pm = torch.arange(T)[None] >= lens[:, None]
    g = torch.Generator().manual_seed(0)
    m = compute_mask_indices((B, T), pm, 0.3, 1, min_masks=2, require_same_masks=False, generator=g)
    cnt = m.sum(1)
    lo = (0.3 * lens.double()).floor().long().clamp(min=2)
    assert torch.all((cnt == lo) | (cnt == lo + 1))
    # the fractional part decides the rounding: expected count = p * sz on average
    assert abs(cnt.double().mean().item() - (0.3 * lens.double()).mean().item()) < 1.0
    assert not (m & pm).any()  # never padding


def test_span_counts_and_static_lengths():
    B, T = 200, 120
    g = torch.Generator().manual_seed(1)
    m = compute_mask_indices((B, T), None, 0.65, 10, min_masks=2, require_same_masks=False, generator=g)
    # every run is at least one whole span of 10 (runs = merged overlapping spans) unless clipped at T
    for row in m[:20]:
        r = row.tolist()
        runs, n = [], 0
        for i, v in enumerate(r + [False]):
            if v:
                n += 1
            elif n:
                runs.append((i - n, n))
                n = 0
        for s, n in runs:
            assert n >= 10 or s + n == T
    # fairseq's expected masked fraction with overlaps is ~49% for p=0.65, L=10
    frac = m.float().mean().item()
    assert 0.42 < frac < 0.56
    # number of spans: int(0.65 * 120 / 10 + U) in {7, 8}: at most 8 runs per row
    assert max(starts_of(r) for r in m) <= 8


def test_min_masks_and_require_same_masks():
    B, T = 5, 100
    lens = torch.tensor([100, 80, 60, 40, 25])
    pm = torch.arange(T)[None] >= lens[:, None]
    g = torch.Generator().manual_seed(2)
    m = compute_mask_indices((B, T), pm, 0.01, 3, min_masks=2, require_same_masks=False, generator=g)
    assert torch.all(m.sum(1) >= 3)  # two spans of 3 at least partly distinct -> >= 3 frames
    m2 = compute_mask_indices((B, T), pm, 0.65, 5, min_masks=2, require_same_masks=True, generator=g)
    assert len(set(m2.sum(1).tolist())) == 1
    assert not (m2 & pm).any()


def test_generator_determinism_and_mask_dropout():
    a = compute_mask_indices((4, 300), None, 0.65, 10, min_masks=2, generator=torch.Generator().manual_seed(5))
    b = compute_mask_indices((4, 300), None, 0.65, 10, min_masks=2, generator=torch.Generator().manual_seed(5))
    assert torch.equal(a, b)
    c = compute_mask_indices((4, 300), None, 0.65, 10, min_masks=2, mask_dropout=0.5,
                             generator=torch.Generator().manual_seed(5))
    n = a.sum(1)[0].item()
    assert c.sum(1)[0].item() == n - round(n * 0.5)


@pytest.mark.parametrize("sel", ["uniform", "normal", "poisson"])
def test_other_selections_run(sel):
    m = compute_mask_indices((3, 150), None, 0.5, 8, mask_selection=sel, mask_other=2.0, min_masks=1,
                             generator=torch.Generator().manual_seed(0))
    assert m.any() and not m.all()


def test_fully_masked_is_an_error():
    with pytest.raises(ValueError, match="all 3 frames"):
        compute_mask_indices((1, 3), None, 0.9, 10, min_masks=2)


def test_channel_mask_shape_and_fraction():
    m = compute_channel_mask(8, 768, 0.5, 64, generator=torch.Generator().manual_seed(0))
    assert m.shape == (8, 768)
    assert 0.2 < m.float().mean().item() < 0.5


def test_negatives_same_utterance_never_self_never_padding():
    B, T, K = 6, 50, 30
    lens = torch.tensor([50, 45, 30, 50, 12, 40])
    pm = torch.arange(T)[None] >= lens[:, None]
    g = torch.Generator().manual_seed(3)
    mask = compute_mask_indices((B, T), pm, 0.65, 4, min_masks=2, require_same_masks=False, generator=g)
    neg = sample_negatives(mask, K, generator=g)
    assert neg.shape == (B, T, K) and neg.dtype == torch.int64
    flat_mask = mask.reshape(-1)
    for b in range(B):
        for t in mask[b].nonzero().flatten().tolist():
            idx = neg[b, t]
            assert torch.all(idx // T == b), "negative from another utterance"
            assert torch.all(idx != b * T + t), "negative equals its own target"
            assert torch.all(flat_mask[idx]), "negative is not a masked frame (padding or unmasked)"


def test_negatives_are_uniform_over_other_masked_frames():
    T, K = 40, 20000
    mask = torch.zeros(1, T, dtype=torch.bool)
    mask[0, [3, 7, 8, 20, 33]] = True
    neg = sample_negatives(mask, K, generator=torch.Generator().manual_seed(0))
    counts = torch.bincount(neg[0, 7], minlength=T).double()
    others = [3, 8, 20, 33]
    assert counts[7] == 0 and counts[others].sum() == K
    expected = K / 4
    chi2 = (((counts[others] - expected) ** 2) / expected).sum().item()
    assert chi2 < 16.3  # chi-square, 3 dof, p = 0.001


def test_cross_sample_negatives_and_single_frame_rows():
    B, T = 3, 20
    mask = torch.zeros(B, T, dtype=torch.bool)
    mask[0, [1, 5, 9]] = True
    mask[1, [2]] = True  # a single masked frame: no other frame to draw from
    mask[2, [0, 19]] = True
    neg = sample_negatives(mask, 4, cross_sample_negatives=3, generator=torch.Generator().manual_seed(0))
    assert neg.shape == (B, T, 7)
    flat = mask.reshape(-1)
    for b, t in mask.nonzero().tolist():
        own, cross = neg[b, t, :4], neg[b, t, 4:]
        assert torch.all(flat[cross]) and torch.all(cross != b * T + t)
        if b == 1:
            assert torch.all(own == b * T + t)  # masked by the loss as identical to the positive
        else:
            assert torch.all(own // T == b) and torch.all(own != b * T + t)


def test_vectorized_speed():
    # 64 utterances x 1000 frames: well under a second on one core (no per-frame Python loops)
    import time

    t0 = time.perf_counter()
    m = compute_mask_indices((64, 1000), None, 0.65, 10, min_masks=2, require_same_masks=False,
                             generator=torch.Generator().manual_seed(0))
    sample_negatives(m, 100, generator=torch.Generator().manual_seed(0))
    assert time.perf_counter() - t0 < 3.0
    # P(frame unmasked) ~ (1 - 65/990)^10 ~ 0.507 -> ~49% masked
    assert math.isclose(m.float().mean().item(), 0.493, abs_tol=0.02)


def _loop_reference(sizes, mask_prob, mask_length, min_masks, rng):
    """Per-utterance loop written from fairseq's compute_mask_indices (static spans, overlaps allowed,
    num_mask_ver=2, idc_select_ver=1, require_same_masks) - a slow reference for the vectorized version."""
    rows = []
    for sz in sizes:
        num = max(min_masks, int(mask_prob * sz / mask_length + rng.random()))
        min_len = mask_length
        if sz - min_len <= num:
            min_len = sz - num - 1
        starts = rng.choice(sz - min_len, num, replace=False)
        idc = np.unique([s + o for s in starts for o in range(mask_length)])
        rows.append(idc[idc < sz])
    target = min(len(r) for r in rows)
    return [len(rng.choice(r, target, replace=False)) for r in rows], [len(r) for r in rows]


@pytest.mark.parametrize("sizes,p,L", [([49, 80, 120], 0.65, 10), ([25, 30, 40], 0.65, 10), ([200], 0.3, 5)])
def test_counts_match_a_loop_reference_statistically(sizes, p, L):
    rng = np.random.default_rng(0)
    n = 400
    ref_raw = np.array([_loop_reference(sizes, p, L, 2, rng)[1] for _ in range(n)], dtype=float)
    T = max(sizes)
    pm = torch.arange(T)[None] >= torch.tensor(sizes)[:, None]
    g = torch.Generator().manual_seed(0)
    ours = torch.stack([
        compute_mask_indices((len(sizes), T), pm, p, L, min_masks=2, require_same_masks=False, generator=g).sum(1)
        for _ in range(n)
    ]).double().numpy()
    # per-row mean masked count agrees within 4 standard errors
    se = np.sqrt(ref_raw.var(0) / n + ours.var(0) / n) + 1e-9
    assert np.all(np.abs(ref_raw.mean(0) - ours.mean(0)) < 4 * se + 0.05), (ref_raw.mean(0), ours.mean(0))
