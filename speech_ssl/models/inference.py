"""Inference on audio longer than one forward pass should take: length-sorted batches, and chunks with
context whose frames add up to exactly the whole-utterance frames (used by ``decode`` and ``embed``)."""

from __future__ import annotations

from typing import Callable, Sequence

import torch

from speech_ssl.models.feature_encoder import conv_output_length, total_stride


def length_batches(sizes: list[int], max_tokens: int) -> list[list[int]]:
    """Indices sorted by length (longest first) cut greedily so that ``n * longest <= max_tokens``."""
    order = sorted(range(len(sizes)), key=lambda i: -sizes[i])
    batches, i = [], 0
    while i < len(order):
        k = max(1, max_tokens // max(sizes[order[i]], 1))
        batches.append(order[i : i + k])
        i += k
    return batches


@torch.no_grad()
def chunked_frames(
    model: Callable, wav: torch.Tensor, conv_layers: Sequence[tuple[int, int, int]], chunk: int, context: int,
    max_tokens: int,
) -> torch.Tensor:
    """Frame outputs ``(T, D)`` of one long waveform ``wav (L,)`` computed chunk by chunk.

    ``model(x (B, L'), lengths (B,)) -> (frames (B, T', D), frame_lengths (B,))``. ``chunk`` and ``context``
    are in samples (rounded down to multiples of the encoder stride); chunk ``[s, e)`` is run on
    ``[s - context, e + context)`` and keeps its own frames, so ``T`` is the whole-utterance frame count.
    """
    stride = total_stride(conv_layers)
    chunk = max(stride, chunk // stride * stride)
    context = context // stride * stride
    L = wav.shape[0]
    total = conv_output_length(L, conv_layers)
    windows, keeps = [], []
    for s in range(0, L, chunk):
        f0 = s // stride
        if f0 >= total:
            break
        e = min(s + chunk, L)
        f1 = total if e >= L else e // stride
        w0, w1 = max(0, s - context), min(L, e + context)
        windows.append((w0, w1))
        keeps.append(((s - w0) // stride, f1 - f0))
    pieces: list[torch.Tensor | None] = [None] * len(windows)
    for batch in length_batches([w1 - w0 for w0, w1 in windows], max_tokens):
        lens = torch.tensor([windows[j][1] - windows[j][0] for j in batch], dtype=torch.long)
        x = torch.zeros(len(batch), int(lens.max()), dtype=wav.dtype, device=wav.device)
        for r, j in enumerate(batch):
            w0, w1 = windows[j]
            x[r, : w1 - w0] = wav[w0:w1]
        frames, out_lens = model(x, lens.to(wav.device))
        for r, j in enumerate(batch):
            a, n = keeps[j]
            n = min(n, int(out_lens[r]) - a)
            pieces[j] = frames[r, a : a + n]
    return torch.cat([p for p in pieces if p is not None], 0)
