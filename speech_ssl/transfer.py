"""Host -> device copies that never make the host wait for the device's queue."""

from __future__ import annotations

import torch


def to_device(t: torch.Tensor, device: torch.device) -> torch.Tensor:
    """``t`` on ``device``, copied without blocking the host.

    A CUDA copy from pageable host memory larger than a few tens of KB is staged by the driver, which may first
    wait for the stream to drain: a hidden synchronisation in every training step that lets the GPU run dry while
    the host dispatches the next kernels. From pinned memory the copy is queued like a kernel. The pinned
    staging buffer comes from PyTorch's caching host allocator and is reused only once the copy has completed.
    Other target devices (CPU, ``meta``) and tensors already off the host: a plain non-blocking ``.to`` (host to
    device only: a device-to-host copy made so would have to be waited for before it is read).
    """
    if device.type == "cuda" and t.device.type == "cpu" and not t.is_pinned():
        t = t.pin_memory()
    return t.to(device, non_blocking=True)
