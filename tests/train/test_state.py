"""state.py: AdamW groups by lr scale, optimizer state keyed by parameter name, resume bookkeeping."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

from speech_ssl.train.checkpoint import CheckpointError
from speech_ssl.train.distributed import DistInfo, rng_state
from speech_ssl.train.state import (
    find_resume_checkpoint,
    group_parameters,
    optimizer_state_by_name,
    restore_train_state,
    train_state,
)


def _model() -> nn.Module:
    torch.manual_seed(0)
    m = nn.Sequential()
    m.add_module("body", nn.Linear(3, 4))
    m.add_module("head", nn.Linear(4, 2))
    m.body.bias.requires_grad_(False)
    return m


def _optimizer(m: nn.Module):
    g = group_parameters(m, lambda n: 10.0 if n.startswith("head.") else 1.0)
    return g, torch.optim.AdamW(g.groups, lr=1e-3)


def _step(m: nn.Module, opt) -> None:
    m(torch.randn(5, 3)).square().sum().backward()
    opt.step()
    opt.zero_grad()


def test_groups_by_lr_scale_and_state_keyed_by_name():
    m = _model()
    g, opt = _optimizer(m)
    assert g.names == ["body.weight", "head.weight", "head.bias"] and g.lr_scales == [1.0, 10.0]
    assert g.describe() == "lr x 1: 1 tensors, lr x 10: 2 tensors"
    _step(m, opt)
    sd = optimizer_state_by_name(m, opt, g.names, fsdp=False)
    assert set(sd["state"]) == set(g.names)
    assert [grp["params"] for grp in sd["param_groups"]] == [["body.weight"], ["head.weight", "head.bias"]]
    # a fresh optimizer loads it back by name
    m2 = _model()
    g2, opt2 = _optimizer(m2)
    state = train_state(num_updates=7, optimizer=sd, scaler=torch.amp.GradScaler("cpu", enabled=False),
                        data={"epoch": 2, "offset": 6}, rngs=[rng_state(), rng_state()], world_size=2, update_freq=1,
                        best=None, skipped=1, seed=3)
    logged = []
    at = restore_train_state(state, Path("ck"), model=m2, optimizer=opt2, names=g2.names, fsdp=False,
                             scaler=torch.amp.GradScaler("cpu", enabled=False), info=DistInfo(), update_freq=1,
                             log=logged.append)
    for n, p in m.named_parameters():
        if p.requires_grad:
            p2 = dict(m2.named_parameters())[n]
            assert torch.equal(opt.state[p]["exp_avg_sq"], opt2.state[p2]["exp_avg_sq"]), n
    # 2 ranks before, 1 now: the position is rescaled and the log says the run is not bit-exact any more
    assert (at.num_updates, at.skipped, at.epoch, at.offset) == (7, 1, 2, 12)
    assert "resuming with 1 ranks instead of 2" in logged[0]
    # a model whose parameters differ is a clear error naming the file
    other = nn.Sequential()
    other.add_module("body", nn.Linear(3, 4))
    g3, opt3 = _optimizer(other)
    with pytest.raises(CheckpointError, match=r"ck/train_state.pt: optimizer state does not match this model"):
        restore_train_state(state, Path("ck"), model=other, optimizer=opt3, names=g3.names, fsdp=False,
                            scaler=torch.amp.GradScaler("cpu", enabled=False), info=DistInfo(), update_freq=1,
                            log=logged.append)


def test_resume_true_without_checkpoints_starts_fresh(tmp_path):
    logged = []
    assert find_resume_checkpoint(True, tmp_path, logged.append) is None
    assert "no checkpoint in" in logged[0]
    assert find_resume_checkpoint(None, tmp_path, logged.append) is None
    with pytest.raises(ValueError, match="run directory"):
        find_resume_checkpoint(True, None, logged.append)
