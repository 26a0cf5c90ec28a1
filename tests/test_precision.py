"""speech_ssl.precision: a warning where reduced precision would run emulated, none where it is native; the
weights stored in bf16 once give what autocast gives."""

import pytest
import torch

from speech_ssl import precision


def test_notes(monkeypatch):
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    assert precision.slow_precision_note(cpu, "fp32") is None
    assert precision.slow_precision_note(cuda, "bf16") is None
    monkeypatch.setattr(precision, "cpu_has_bf16", lambda: False)
    note = precision.slow_precision_note(cpu, "bf16")
    assert note is not None and "emulated" in note and "fp32" in note
    monkeypatch.setattr(precision, "cpu_has_bf16", lambda: True)
    assert precision.slow_precision_note(cpu, "bf16") is None
    assert "fp16" in precision.slow_precision_note(cpu, "fp16")


def test_capability_is_a_bool():
    assert isinstance(precision.cpu_has_bf16(), bool)


@pytest.mark.parametrize("extractor", ["default", "layer_norm"])
def test_weights_stored_in_bf16_give_autocast_bitwise(extractor):
    import copy

    from speech_ssl.models import Wav2Vec2ForCTC, get_preset
    from speech_ssl.precision import store_weights_in

    torch.manual_seed(0)
    model = Wav2Vec2ForCTC(get_preset("tiny", extractor_mode=extractor), 12).eval()
    with torch.no_grad():
        model.head.weight.normal_()  # a head that is not near zero, so the logits differ between frames
    stored = copy.deepcopy(model)
    n = store_weights_in(stored, torch.bfloat16)
    n_linear = sum(isinstance(m, torch.nn.Linear) for m in model.modules())
    assert n == n_linear + len(model.wav2vec2.feature_encoder.blocks)  # the positional conv stays fp32
    assert stored.head.weight.dtype == torch.bfloat16
    assert stored.wav2vec2.encoder.pos_conv.conv.parametrizations.weight.original1.dtype == torch.float32
    x = torch.randn(2, 8000, generator=torch.Generator().manual_seed(1)) * 0.3
    lens = torch.tensor([8000, 5000])
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        a, b = model(x, lens), stored(x, lens)
    assert torch.equal(a.logits, b.logits) and torch.equal(a.out_lengths, b.out_lengths)
