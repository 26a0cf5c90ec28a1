"""Quantizer code usage per language (the XLSR paper's Figure: languages as points in a 2-D PCA).

    usage = code_usage("recipes/synth/pretrained", {"en": "data/librispeech/train-clean-100.tsv", ...})
    xy, explained = pca_2d(np.stack(list(usage.values())))

For each language, every frame of up to ``max_utterances`` utterances goes through the pretrained model's
conv encoder, feature LayerNorm and Gumbel quantizer in eval mode (hard argmax, no noise); the histogram of
the chosen entry in each of the G groups, normalised per group and concatenated, is the language's
code-usage distribution (length G*V). XLSR reduces such distributions with PCA and plots one labelled
point per language; languages that share acoustics share codes and land close together.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from speech_ssl.data.audio import read_audio
from speech_ssl.data.manifest import read_manifest
from speech_ssl.models.checkpoint import load_model
from speech_ssl.models.wav2vec2 import Wav2Vec2ForPretraining


@torch.no_grad()
def code_usage(checkpoint: str | Path, manifests: dict[str, str | Path], max_utterances: int = 40,
               normalize: bool = True, max_tokens: int = 480_000) -> dict[str, np.ndarray]:
    """``{lang: (G*V,) float64}``: per-group normalised counts of the quantizer's hard codes."""
    model = load_model(checkpoint)
    if not isinstance(model, Wav2Vec2ForPretraining):
        raise ValueError(f"{checkpoint}: code usage needs a pretraining checkpoint (with its quantizer)")
    model.eval()
    G, V = model.quantizer.groups, model.quantizer.num_vars
    out: dict[str, np.ndarray] = {}
    for lang, tsv in manifests.items():
        m = read_manifest(tsv)
        n = min(len(m), max_utterances)
        counts = torch.zeros(G, V, dtype=torch.float64)
        i = 0
        while i < n:  # batches of similar cost, padded with zeros; padded frames are dropped below
            j = i
            while j < n and (j == i or (j - i + 1) * max(m.sizes[i: j + 1]) <= max_tokens):
                j += 1
            waves = [read_audio(m.full_path(k), m.entries[k].start, m.entries[k].end, normalize=normalize)
                     for k in range(i, j)]
            lengths = torch.tensor([len(w) for w in waves])
            batch = torch.zeros(len(waves), int(lengths.max()))
            for b, w in enumerate(waves):
                batch[b, : len(w)] = torch.from_numpy(w)
            enc = model.wav2vec2
            feats = enc.feature_norm(enc.conv_features(batch).transpose(1, 2))  # (B, T, C)
            codes = model.quantizer(feats).codes  # (B, T, G)
            frames = enc.output_lengths(lengths)
            valid = torch.arange(codes.shape[1])[None, :] < frames[:, None]  # (B, T)
            sel = codes[valid]  # (N, G)
            for g in range(G):
                counts[g] += torch.bincount(sel[:, g], minlength=V).double()
            i = j
        out[lang] = (counts / counts.sum(dim=1, keepdim=True).clamp_min(1.0)).reshape(-1).numpy()
    return out


def pca_2d(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rows of ``x`` (N, D) projected on their first two principal components -> ((N, 2), explained (2,))."""
    x = np.asarray(x, dtype=np.float64)
    xc = x - x.mean(axis=0, keepdims=True)
    _, s, vt = np.linalg.svd(xc, full_matrices=False)
    k = min(2, vt.shape[0])
    xy = np.zeros((x.shape[0], 2))
    xy[:, :k] = xc @ vt[:k].T
    var = s**2
    explained = np.zeros(2)
    explained[:k] = var[:k] / max(var.sum(), 1e-12)
    return xy, explained
