"""AdamW and its implementation (``optim.impl``), and the step that skips a bad update on the device.

torch has three AdamW implementations with the same update rule: ``for_loop`` (one tensor at a time, torch's
default for CPU parameters), ``foreach`` (batched kernels, torch's default on GPUs) and ``fused`` (one kernel
per parameter group). ``auto`` picks ``fused`` wherever torch has it (CPU and CUDA; on 2 CPU threads it is
~8x faster than ``for_loop`` for the base model, bench/bench_pretrain.py) and torch's own default elsewhere
and under FSDP. The implementations round differently, so switching one changes the weights in the last bits;
a run keeps its configured implementation across a resume (:func:`apply_impl`).

Only ``fused`` can skip an update on the device: it reads a ``found_inf`` flag (the mechanism torch's
GradScaler uses), so a non-finite loss or gradient skips the step without the host reading a single value.
The other two need the host to decide whether to call ``step()``: :func:`step_unless` reads one flag per
update there (one device synchronisation), and says so.
"""

from __future__ import annotations

from typing import Any

import torch

IMPLS = ("auto", "fused", "foreach", "for_loop")


def resolve_impl(impl: str, device: torch.device, fsdp: bool = False) -> str:
    """The AdamW implementation ``impl`` means on ``device`` (``auto`` -> fused where supported)."""
    if impl not in IMPLS:
        raise ValueError(f"optim.impl must be one of {', '.join(IMPLS)}, got {impl!r}")
    if impl != "auto":
        return impl
    if not fsdp and device.type in ("cpu", "cuda"):
        return "fused"
    return "foreach" if device.type == "cuda" else "for_loop"


def impl_flags(impl: str) -> dict[str, bool]:
    """The ``torch.optim.AdamW`` keyword arguments of a resolved implementation."""
    return {"fused": impl == "fused", "foreach": impl == "foreach"}


def build_adamw(groups: list[dict[str, Any]], impl: str, **hyper: Any) -> torch.optim.AdamW:
    """``torch.optim.AdamW`` over ``groups`` with the resolved implementation ``impl``."""
    return torch.optim.AdamW(groups, **hyper, **impl_flags(impl))


def apply_impl(optimizer: torch.optim.Optimizer, impl: str) -> None:
    """Set every group back to ``impl`` after ``load_state_dict`` (which restores the flags the checkpoint was
    saved with); fused keeps its step counters on the parameters' device, the others on the CPU."""
    for g in optimizer.param_groups:
        g.update(impl_flags(impl))
        for p in g["params"]:
            st = optimizer.state.get(p)
            if st and torch.is_tensor(st.get("step")):
                dev = p.device if impl == "fused" else torch.device("cpu")
                st["step"] = st["step"].to(device=dev, dtype=torch.float32)


def uses_fused(optimizer: torch.optim.Optimizer) -> bool:
    return all(g.get("fused") for g in optimizer.param_groups)


def step_unless(optimizer: torch.optim.Optimizer, skip: torch.Tensor) -> None:
    """``optimizer.step()`` unless the () bool tensor ``skip`` is True.

    Fused AdamW gets ``skip`` as its ``found_inf`` flag: the kernels leave parameters, moments and step
    counters as they were, and the host never reads the flag. Other implementations cannot take the flag,
    so the host reads it here: the one device synchronisation of an update with ``for_loop`` / ``foreach``.
    """
    if uses_fused(optimizer):
        optimizer.grad_scale = None  # gradients are already unscaled (GradScaler.unscale_)
        optimizer.found_inf = skip.to(torch.float32)
        try:
            optimizer.step()
        finally:
            del optimizer.grad_scale, optimizer.found_inf
    elif not bool(skip):  # the documented sync of the non-fused implementations
        optimizer.step()
