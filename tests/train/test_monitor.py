"""Alarms with advice and the metric writers."""

from __future__ import annotations

import json
import math

from speech_ssl.train.checkpoint import CheckpointError, resolve_resume
from speech_ssl.train.config import LoggingConfig
from speech_ssl.train.distributed import batch_seed
from speech_ssl.train.monitor import AlarmChecker, Monitor


def names(alarms):
    return [a.name for a in alarms]


def test_loss_stuck_at_chance_only_after_warmup_and_patience():
    chance = math.log2(101)
    a = AlarmChecker(chance_bits=chance, num_codes=640, warmup_end=1000, stuck_patience=500)
    m = {"loss_contrastive": chance - 0.01, "code_perplexity": 300.0}
    assert a.check(1000, m) == []  # still warming up / within patience
    assert a.check(1999, m) == []
    fired = a.check(2000, m)
    assert names(fired) == ["loss_at_chance"] and "6.658" in fired[0].message and "Advice" in fired[0].message
    assert a.check(2100, m) == []  # fires once while the condition holds
    assert a.check(2200, {"loss_contrastive": chance - 1.0}) == []  # learning: re-armed
    assert names(a.check(2300, m)) == ["loss_at_chance"]


def test_code_perplexity_collapse_and_trivial_task_and_non_finite():
    a = AlarmChecker(chance_bits=math.log2(11), num_codes=64, warmup_end=10)
    assert a.check(20, {"code_perplexity": 40.0, "loss_contrastive": 2.0, "accuracy": 0.4}) == []
    assert names(a.check(30, {"code_perplexity": 8.0, "loss_contrastive": 2.0})) == ["code_collapse"]
    b = AlarmChecker(num_codes=640)
    assert names(b.check(5, {"code_perplexity": 1.2})) == ["code_collapse"]  # absolute floor, even in warmup
    c = AlarmChecker()
    fired = c.check(50, {"accuracy": 0.999, "loss_contrastive": 0.01})
    assert names(fired) == ["trivial_task"] and "masking" in fired[0].message
    d = AlarmChecker()
    fired = d.check(7, {"loss": float("nan"), "gnorm": float("inf"), "accuracy": 0.2})
    assert names(fired) == ["non_finite"] and "gnorm, loss" in fired[0].message


def test_monitor_writes_jsonl_on_rank0_only(tmp_path):
    cfg = LoggingConfig(progress_bar=False, tensorboard=False)
    m = Monitor(tmp_path / "r0", cfg, is_main=True, max_update=10, alarms=AlarmChecker(num_codes=64))
    m.log("train", 3, {"loss": 4.0, "code_perplexity": 1.0})
    m.log("valid", 3, {"loss": 3.9})
    m.close()
    lines = [json.loads(x) for x in (tmp_path / "r0" / "log.jsonl").read_text().splitlines()]
    assert [(e.get("split"), e.get("alarm")) for e in lines] == [("train", None), (None, "code_collapse"), ("valid", None)]
    m1 = Monitor(tmp_path / "r1", cfg, is_main=False, max_update=10)
    m1.log("train", 3, {"loss": 4.0})
    m1.close()
    assert not (tmp_path / "r1").exists()


def test_batch_seed_depends_on_update_and_global_index():
    seeds = {batch_seed(1, n, g) for n in range(50) for g in range(8)}
    assert len(seeds) == 400
    assert batch_seed(1, 3, 1) == batch_seed(1, 3, 1) != batch_seed(2, 3, 1)


def test_resume_from_empty_dir_is_a_clear_error(tmp_path):
    import pytest

    with pytest.raises(CheckpointError, match="no checkpoint to resume from"):
        resolve_resume(tmp_path)


def test_tensorboard_asked_for_but_missing_is_said_in_one_line(tmp_path, capsys, monkeypatch):
    import builtins

    from speech_ssl.train.config import LoggingConfig
    from speech_ssl.train.monitor import Monitor

    real_import = builtins.__import__

    def no_tensorboard(name, *a, **kw):
        if name.startswith("torch.utils.tensorboard"):
            raise ImportError("No module named 'tensorboard'")
        return real_import(name, *a, **kw)

    monkeypatch.setattr(builtins, "__import__", no_tensorboard)
    m = Monitor(tmp_path, LoggingConfig(tensorboard=True, progress_bar=False), True, 10, 0)
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "logging.tensorboard is on but TensorBoard cannot be used" in err
    m.close()
