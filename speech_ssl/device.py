"""The one place a device name from the command line or a config becomes a ``torch.device``.

``resolve_device("auto")`` is the first CUDA GPU when this torch sees one, else the CPU; ``cpu``, ``cuda`` and
``cuda:N`` are checked against this torch and machine, so a wrong name is a ``ValueError`` that says what is
there instead of torch's ``AssertionError: Torch not compiled with CUDA enabled`` deep inside a command.
"""

from __future__ import annotations

import torch


def resolve_device(spec: str | None) -> torch.device:
    """``auto`` (or None) / ``cpu`` / ``cuda`` / ``cuda:N`` -> a device this process can use (ValueError if not)."""
    name = (spec or "auto").strip()
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(name)
    except RuntimeError:
        raise ValueError(f"device {name!r} is not a device name (auto, cpu, cuda, cuda:N)") from None
    if dev.type == "cpu":
        return dev
    if dev.type != "cuda":
        raise ValueError(f"device {name!r}: only auto, cpu, cuda and cuda:N are supported")
    if not torch.cuda.is_available():
        why = "was built without CUDA" if torch.version.cuda is None else "sees no CUDA GPU"
        raise ValueError(f"device {name!r}: this torch ({torch.__version__}) {why}; use cpu (or auto)")
    if dev.index is not None and dev.index >= torch.cuda.device_count():
        raise ValueError(f"device {name!r}: this machine has {torch.cuda.device_count()} CUDA GPU(s), "
                         f"cuda:0 to cuda:{torch.cuda.device_count() - 1}")
    return dev
