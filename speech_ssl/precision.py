"""Which reduced precisions a device runs natively, a warning line when it does not, fp32 regions, and the
weights of an inference model stored in the autocast dtype once."""

from __future__ import annotations

import contextlib

import torch
from torch import nn


def autocast_dtype(mode: str) -> torch.dtype | None:
    """The autocast dtype of a precision mode (``bf16`` / ``fp16``); None for ``fp32`` (no autocast)."""
    return {"bf16": torch.bfloat16, "fp16": torch.float16}.get(mode)


def full_precision(device: torch.device):
    """A region computed in fp32 whatever autocast says (``torch.autocast(..., enabled=False)``); a plain
    context on devices autocast does not know (``meta``: the shapes-only device of the sync test)."""
    if device.type == "meta":
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, enabled=False)


def cpu_has_bf16() -> bool:
    """Whether this CPU has bf16 units oneDNN uses (AVX512-BF16 or AMX); without them bf16 is emulated."""
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def slow_precision_note(device: torch.device, mode: str) -> str | None:
    """A one-line warning when ``mode`` (fp32 | bf16 | fp16) will run emulated, hence slower than fp32, on
    ``device``; None when it is fine. On a CPU without bf16 units, bf16 decoding measured 10.8x slower than
    fp32 (AMD EPYC, AVX2; the same WER); fp16 autocast on CPU has no fast kernels at all."""
    if device.type != "cpu" or mode == "fp32":
        return None
    if mode == "bf16" and cpu_has_bf16():
        return None
    return (f"precision {mode} on a CPU without {mode} units ({torch.backends.cpu.get_cpu_capability()}): it runs "
            f"emulated and slower than fp32 (bf16 needs AVX512-BF16 or AMX); use fp32 here")


def store_weights_in(model: nn.Module, dtype: torch.dtype) -> int:
    """For inference under ``torch.autocast(..., dtype)``: the weights and biases of every Linear and plain
    Conv1d (not the weight-normed positional conv, whose weight is computed per call) stored in ``dtype`` once,
    where autocast would cast them on every call. Autocast rounds them the same way, so the outputs are
    bitwise the same (``tests/test_precision.py``); on a CPU with bf16 units a BASE forward is ~5% faster
    and the weights take half the memory. For a model that is not trained afterwards (``speech-ssl decode``).
    Returns the number of modules stored."""
    n = 0
    for m in model.modules():
        if isinstance(m, (nn.Linear, nn.Conv1d)) and not hasattr(m, "parametrizations"):
            m.to(dtype)
            n += 1
    return n
