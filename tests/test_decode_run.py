"""Decoding runner: chunked long-audio emissions equal the whole-utterance pass; end-to-end decode CLI."""

import torch
from torch import nn

from speech_ssl.decode.run import chunked_log_probs, conv_out_length, length_batches, utterance_ids
from speech_ssl.models.feature_encoder import ConvFeatureEncoder

LAYERS = [(16, 10, 5)] + [(16, 3, 2)] * 4 + [(16, 2, 2)] * 2


class ConvCTC(nn.Module):
    """A purely local CTC model (conv encoder with per-frame LayerNorm + linear head)."""

    def __init__(self, V=8):
        super().__init__()
        self.enc = ConvFeatureEncoder(LAYERS, mode="layer_norm", conv_bias=True)
        self.head = nn.Linear(16, V)

    def forward(self, x, lengths):
        feats = self.enc(x).transpose(1, 2)
        return self.head(feats), self.enc.output_lengths(lengths)


def test_conv_out_length_matches_encoder():
    enc = ConvFeatureEncoder(LAYERS, mode="layer_norm")
    for n in [400, 401, 719, 720, 16000, 33333]:
        assert conv_out_length(n, LAYERS) == int(enc.output_lengths(torch.tensor([n]))[0])
        assert conv_out_length(n, LAYERS) == enc(torch.zeros(1, n)).shape[-1]


def test_chunked_emissions_equal_whole_pass():
    model = ConvCTC().eval()
    for L in [16000 * 3 + 1234, 16000 * 2, 16000 + 7]:
        wav = torch.randn(L)
        with torch.no_grad():
            logits, n = model(wav[None], torch.tensor([L]))
        whole = logits[0, : int(n[0])].log_softmax(-1)
        # 0.5 s chunks with 640 samples (> receptive field 400) of context on both sides
        chunked = chunked_log_probs(model, wav, LAYERS, chunk=8000, context=640, max_tokens=30000)
        assert chunked.shape == whole.shape
        torch.testing.assert_close(chunked, whole, atol=1e-4, rtol=1e-4)


def test_length_batches_cover_all_and_respect_budget():
    sizes = [5, 100, 40, 40, 7, 99, 1]
    batches = length_batches(sizes, 120)
    assert sorted(i for b in batches for i in b) == list(range(len(sizes)))
    for b in batches:
        assert len(b) == 1 or len(b) * max(sizes[i] for i in b) <= 120


def test_utterance_ids_unique():
    from speech_ssl.data.manifest import Manifest, ManifestEntry

    m = Manifest("/r", [ManifestEntry("a/1089-1-0.flac", 10), ManifestEntry("b/1089-1-0.flac", 10),
                        ManifestEntry("c/long.sph", 10, 0, 100)])
    assert utterance_ids(m) == ["1089-1-0", "1089-1-0#1", "long_0_100"]
