"""Span masking and negative sampling, vectorized in torch (no per-utterance Python loops).

Semantics follow fairseq's ``compute_mask_indices`` (num_mask_ver=2, idc_select_ver=1) and
``Wav2Vec2Model.sample_negatives``. Every random draw takes an optional ``torch.Generator``.
"""

from __future__ import annotations

import torch

_BIG = 2.0  # a key larger than any torch.rand value, for "never pick" slots


def _gen_device(generator: torch.Generator | None, device: torch.device | str) -> torch.device:
    """Draw on the generator's device (a CPU generator may drive CUDA tensors); results are moved after."""
    return generator.device if generator is not None else torch.device(device)


def _rand(shape, generator, device, dtype=torch.float32) -> torch.Tensor:
    return torch.rand(shape, generator=generator, device=_gen_device(generator, device), dtype=dtype).to(device)


def _random_subset(valid: torch.Tensor, k: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    """Pick ``k[b]`` distinct positions uniformly from the True entries of ``valid[b]``.

    valid (B, W) bool, k (B,) int64 (<= valid.sum(1)) -> chosen (B, W) bool.
    """
    keys = _rand(valid.shape, generator, valid.device)
    keys = keys.masked_fill(~valid, _BIG)
    ranks = keys.argsort(dim=1).argsort(dim=1)  # rank of each slot in a random order of the valid ones
    return valid & (ranks < k[:, None])


def _span_lengths(
    num: int, B: int, mask_length: int, selection: str, other: float, device: torch.device,
    generator: torch.Generator | None,
) -> torch.Tensor:
    """(B, num) int64 span lengths for fairseq's mask_selection modes."""
    if selection == "static":
        return torch.full((B, num), mask_length, dtype=torch.int64, device=device)
    if selection == "uniform":
        lo, hi = int(other), mask_length * 2 + 1
        return torch.randint(lo, hi, (B, num), generator=generator, device=_gen_device(generator, device)).to(device)
    if selection == "normal":
        x = torch.normal(float(mask_length), float(other), (B, num), generator=generator,
                         device=_gen_device(generator, device)).to(device)
        return x.round().clamp(min=1).to(torch.int64)
    if selection == "poisson":
        rate = torch.full((B, num), float(mask_length), device=_gen_device(generator, device))
        return torch.poisson(rate, generator=generator).round().to(device=device, dtype=torch.int64)
    raise ValueError(f"unknown mask selection {selection!r}")


def compute_mask_indices(
    shape: tuple[int, int],
    padding_mask: torch.Tensor | None,
    mask_prob: float,
    mask_length: int,
    mask_selection: str = "static",
    mask_other: float = 0.0,
    min_masks: int = 0,
    require_same_masks: bool = True,
    mask_dropout: float = 0.0,
    generator: torch.Generator | None = None,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """Span mask (B, T) bool, True = masked, with fairseq's semantics.

    Per row b with unpadded length ``sz`` (from ``padding_mask``, True = padding):
    ``num_mask = max(min_masks, int(mask_prob * sz / mask_length + U[0, 1)))`` span starts are drawn
    without replacement from ``[0, sz - min_len)`` (``min_len`` = shortest span; when that range holds
    ``<= num_mask`` starts it becomes ``num_mask + 1`` starts), each span covers
    ``start .. start + len - 1`` clipped to ``sz``; spans may overlap. With ``require_same_masks`` every row
    keeps a random subset of the batch's minimum masked count; ``mask_dropout`` then drops that fraction
    (rounded half to even, as np.rint) of each row's masked frames. Raises ValueError if a row would be fully masked.
    """
    B, T = shape
    if device is None:
        device = padding_mask.device if padding_mask is not None else torch.device("cpu")
    if B == 0 or T == 0:
        return torch.zeros((B, T), dtype=torch.bool, device=device)
    if padding_mask is not None:
        sz = (~padding_mask.to(device)).sum(dim=1).to(torch.int64)
    else:
        sz = torch.full((B,), T, dtype=torch.int64, device=device)
    u = _rand((B,), generator, device, torch.float64)
    num_mask = (mask_prob * sz.double() / float(mask_length) + u).floor().to(torch.int64)
    num_mask = num_mask.clamp(min=min_masks)
    max_num = int(num_mask.max().item())
    if max_num == 0:
        return torch.zeros((B, T), dtype=torch.bool, device=device)
    lengths = _span_lengths(max_num, B, mask_length, mask_selection, mask_other, device, generator)
    span_valid = torch.arange(max_num, device=device)[None, :] < num_mask[:, None]  # (B, max_num)
    if mask_selection != "static":
        # fairseq: if all lengths are 0, use one span of min(mask_length, sz - 1)
        total = (lengths * span_valid).sum(dim=1)
        fallback = total == 0
        if fallback.any():
            lengths[fallback, 0] = torch.minimum(torch.full_like(sz[fallback], mask_length), sz[fallback] - 1)
    min_len = lengths.masked_fill(~span_valid, torch.iinfo(torch.int64).max).min(dim=1).values
    high = sz - min_len
    high = torch.where(high <= num_mask, num_mask + 1, high)  # fairseq: min_len = sz - num_mask - 1
    W = max(T, int(high.max().item()))
    cand = torch.arange(W, device=device)[None, :] < high[:, None]  # (B, W) allowed starts
    chosen = _random_subset(cand, num_mask, generator)  # (B, W)
    # starts of the chosen spans, in slot order; pair them with lengths[:, :num_mask]
    order = (~chosen).to(torch.int8).argsort(dim=1, stable=True)[:, :max_num]  # chosen positions first
    starts = order  # (B, max_num); entries beyond num_mask[b] are ignored via span_valid
    max_len = int(lengths.max().item())
    if max_len <= 0:
        return torch.zeros((B, T), dtype=torch.bool, device=device)
    offs = torch.arange(max_len, device=device)
    pos = starts[:, :, None] + offs[None, None, :]  # (B, max_num, max_len)
    ok = span_valid[:, :, None] & (offs[None, None, :] < lengths[:, :, None]) & (pos < sz[:, None, None])
    hits = torch.zeros((B, W + max_len), dtype=torch.int32, device=device)
    hits.scatter_add_(1, torch.where(ok, pos, 0).reshape(B, -1), ok.reshape(B, -1).to(torch.int32))
    mask = hits[:, :T] > 0
    counts = mask.sum(dim=1)
    full = counts >= sz
    if full.any():
        b = int(full.nonzero()[0, 0])
        raise ValueError(
            f"masking would cover all {int(sz[b])} frames of utterance {b} (mask_prob={mask_prob}, "
            f"mask_length={mask_length}, min_masks={min_masks}); use longer inputs or a smaller mask"
        )
    if require_same_masks:
        target = counts.min().expand(B)
        mask = _random_subset(mask, target, generator)
        counts = target
    if mask_dropout > 0:
        keep = counts - torch.round(counts.double() * mask_dropout).to(torch.int64)
        mask = _random_subset(mask, keep, generator)
    return mask


def compute_channel_mask(
    B: int, C: int, mask_prob: float, mask_length: int, mask_selection: str = "static",
    mask_other: float = 0.0, min_masks: int = 0, generator: torch.Generator | None = None,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """Channel spans (B, C) bool, True = zeroed; shared across time (fairseq: no padding, no trimming)."""
    return compute_mask_indices(
        (B, C), None, mask_prob, mask_length, mask_selection, mask_other, min_masks,
        require_same_masks=False, generator=generator, device=device,
    )


def sample_negatives(
    mask: torch.Tensor, num_negatives: int, cross_sample_negatives: int = 0,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Negative indices in HF's format: (B, T, K) int64 indices into the flattened (B*T) frames.

    For each masked frame of utterance b, ``num_negatives`` indices are drawn uniformly with replacement
    from the *other* masked frames of utterance b (fairseq: draw from ``high - 1`` and shift indices >= self
    by one), then ``cross_sample_negatives`` from the other masked frames of the whole batch. Rows at
    unmasked frames are filled with the frame's own index (unused). An utterance with a single masked
    frame has no other frame to draw from: its negatives point at the frame itself, and the loss masks
    them with -inf like any negative equal to its positive.

    mask (B, T) bool -> (B, T, num_negatives + cross_sample_negatives) int64.
    """
    B, T = mask.shape
    device = mask.device
    K, Kc = num_negatives, cross_sample_negatives
    flat_self = torch.arange(B * T, device=device).view(B, T)
    out = flat_self[:, :, None].expand(B, T, K + Kc).clone()
    if B * T == 0 or K + Kc == 0 or not mask.any():
        return out
    counts = mask.sum(dim=1)  # (B,)
    # table[b, r] = position of the r-th masked frame of row b
    table = (~mask).to(torch.int8).argsort(dim=1, stable=True)  # (B, T)
    rank = mask.cumsum(dim=1) - 1  # rank of each masked frame within its row
    bi, ti = mask.nonzero(as_tuple=True)  # masked frames (N,)
    N = bi.numel()
    parts = []
    if K > 0:
        high = counts[bi]  # (N,)
        u = _rand((N, K), generator, device, torch.float64)
        r = (u * (high - 1).clamp(min=0)[:, None].double()).floor().to(torch.int64)
        own = rank[bi, ti][:, None]
        r = r + (r >= own).to(torch.int64)
        r = torch.where((high > 1)[:, None], r, own)  # single masked frame: point at itself
        r = r.clamp(max=T - 1)
        parts.append(bi[:, None] * T + table[bi[:, None], r])
    if Kc > 0:
        flat_masked = (bi * T + ti)  # (N,) global list in row-major order
        u = _rand((N, Kc), generator, device, torch.float64)
        r = (u * max(N - 1, 0)).floor().to(torch.int64)
        own = torch.arange(N, device=device)[:, None]
        r = r + (r >= own).to(torch.int64)
        r = r if N > 1 else own.expand(N, Kc)
        parts.append(flat_masked[r])
    out[bi, ti] = torch.cat(parts, dim=1)
    return out
