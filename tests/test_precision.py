"""speech_ssl.precision: a warning where reduced precision would run emulated, none where it is native."""

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
