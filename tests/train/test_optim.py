"""optim.impl: which AdamW implementation, kept across a resume; the on-device skip."""

from __future__ import annotations

import pytest
import torch

from speech_ssl.train.optim import apply_impl, build_adamw, resolve_impl, step_unless


def test_auto_is_fused_on_cpu_and_cuda_not_under_fsdp():
    assert resolve_impl("auto", torch.device("cpu")) == "fused"
    assert resolve_impl("auto", torch.device("cuda")) == "fused"
    assert resolve_impl("auto", torch.device("cuda"), fsdp=True) == "foreach"
    assert resolve_impl("for_loop", torch.device("cpu")) == "for_loop"
    with pytest.raises(ValueError, match="optim.impl"):
        resolve_impl("apex", torch.device("cpu"))


def test_resume_keeps_the_configured_impl_and_fused_skips_on_the_device():
    p = torch.nn.Parameter(torch.ones(4))
    p.grad = torch.full((4,), 0.5)
    saved = build_adamw([{"params": [p]}], "for_loop", lr=0.1)
    saved.step()
    fused = build_adamw([{"params": [p]}], "fused", lr=0.1)
    fused.load_state_dict(saved.state_dict())  # restores the saved groups' flags ...
    assert not fused.param_groups[0]["fused"]
    apply_impl(fused, "fused")  # ... which the trainer sets back to its own
    assert fused.param_groups[0]["fused"] and not fused.param_groups[0]["foreach"]
    before, step = p.detach().clone(), fused.state[p]["step"].clone()
    step_unless(fused, torch.tensor(True))
    assert torch.equal(p, before) and torch.equal(fused.state[p]["step"], step)
    step_unless(fused, torch.tensor(False))
    assert not torch.equal(p, before) and float(fused.state[p]["step"]) == 2.0
