"""The trainer on the real tiny model: DDP == accumulation, exact resume, SIGTERM, learning, errors."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from speech_ssl.config import ConfigError
from speech_ssl.errors import DataError
from speech_ssl.train.checkpoint import CheckpointError, find_latest, list_checkpoints, load_train_state
from speech_ssl.train.config import load_train_config
from speech_ssl.train.distributed import batch_seed, seed_everything
from speech_ssl.train.pretrain_task import PretrainTask
from speech_ssl.train.report import LogSums
from speech_ssl.train.signals import EXIT_STOPPED
from speech_ssl.train.stream import valid_loader
from speech_ssl.train.trainer import Trainer, TrainingAborted
from tests.train.test_common import (  # noqa: F401 (the fixtures: one_thread, corpus, cfg_file)
    REPO,
    cfg_file_fixture,
    corpus_fixture,
    one_thread_fixture,
    run_cli,
    tiny_overrides,
)

# every test here trains: one intra-op thread
pytestmark = pytest.mark.usefixtures("one_thread")


def train(cfg_file, run_dir, overrides, resume=None, stop_after=None, task_cls=PretrainTask) -> Trainer:
    cfg = load_train_config(cfg_file, overrides)
    tr = Trainer(cfg, task_cls(cfg, str(cfg_file)), run_dir, stop_after_updates=stop_after)
    tr.setup(resume=resume)
    tr.train()
    return tr


def train_losses(run_dir: Path) -> dict[int, float]:
    out = {}
    for line in (run_dir / "log.jsonl").read_text().splitlines():
        e = json.loads(line)
        if e.get("split") == "train":
            out[e["update"]] = e["loss"]
    return out


def params(trainer: Trainer) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in trainer.raw_model.state_dict().items()}


def test_exact_resume(corpus, cfg_file, tmp_path):
    ov = tiny_overrides(corpus, **{"optim.max_update": 6, "checkpoint.save_interval_updates": 3})
    straight = train(cfg_file, tmp_path / "a", ov)
    # first half, then the process is gone: a new Trainer resumes from the run directory
    half = train(cfg_file, tmp_path / "b", ov, stop_after=3)
    assert half.num_updates == 3 and half.stopped_by == "stop_after_updates"
    assert [n for n, _ in list_checkpoints(tmp_path / "b" / "checkpoints")] == [3]
    resumed = train(cfg_file, tmp_path / "b", ov, resume=True)
    assert resumed.num_updates == 6
    la, lb = train_losses(tmp_path / "a"), train_losses(tmp_path / "b")
    assert sorted(la) == sorted(lb) == [1, 2, 3, 4, 5, 6]
    assert all(la[n] == lb[n] for n in la), (la, lb)
    pa, pb = params(straight), params(resumed)
    assert all(torch.equal(pa[k], pb[k]) for k in pa)
    # the optimizer state too
    sa = load_train_state(find_latest(tmp_path / "a" / "checkpoints"))
    sb = load_train_state(find_latest(tmp_path / "b" / "checkpoints"))
    assert sa["data"] == sb["data"] and sa["num_updates"] == sb["num_updates"] == 6
    for k, v in sa["optimizer"]["state"].items():
        assert torch.equal(v["exp_avg_sq"], sb["optimizer"]["state"][k]["exp_avg_sq"])


def test_exact_resume_with_loader_workers_across_an_epoch(corpus, cfg_file, tmp_path):
    import multiprocessing

    ov = tiny_overrides(corpus, **{"optim.max_update": 12, "checkpoint.save_interval_updates": 5,
                                   "data.num_workers": 2})
    straight = train(cfg_file, tmp_path / "a", ov)
    assert straight.stream.epoch == 2
    assert not multiprocessing.active_children()  # workers stopped (they ignore SIGTERM)
    train(cfg_file, tmp_path / "b", ov, stop_after=5)
    resumed = train(cfg_file, tmp_path / "b", ov, resume=True)
    assert train_losses(tmp_path / "a") == train_losses(tmp_path / "b")
    pa, pb = params(straight), params(resumed)
    assert all(torch.equal(pa[k], pb[k]) for k in pa)


def test_train_state_is_weights_only_and_complete(corpus, cfg_file, tmp_path):
    train(cfg_file, tmp_path, tiny_overrides(corpus, **{"optim.max_update": 2, "precision.mode": "fp16"}))
    ck = find_latest(tmp_path / "checkpoints")
    state = torch.load(ck / "train_state.pt", weights_only=True)
    assert {"optimizer", "scaler", "data", "rng", "num_updates", "world_size", "update_freq"} <= set(state)
    assert state["scaler"]["scale"] > 0 and len(state["rng"]) == 1
    assert {"model.safetensors", "config.json", "meta.json"} <= {p.name for p in ck.iterdir()}


@pytest.mark.parametrize("mode", ["bf16", "fp16"])
def test_mixed_precision_runs(corpus, cfg_file, tmp_path, mode):
    tr = train(cfg_file, tmp_path, tiny_overrides(corpus, **{"optim.max_update": 2, "precision.mode": mode,
                                                              "checkpoint.save_interval_updates": 0}))
    assert tr.num_updates == 2
    assert all(torch.isfinite(v).all() for v in params(tr).values())


def test_bf16_validation_casts_each_weight_once(corpus, cfg_file, tmp_path):
    """Under autocast, validation turns each weight into bf16 once per pass (the cast cache of one autocast
    context), not once per batch; the metrics are those of a fresh context per batch."""
    from torch.utils._python_dispatch import TorchDispatchMode

    ov = tiny_overrides(corpus, **{"optim.max_update": 1, "precision.mode": "bf16",
                                   "checkpoint.save_interval_updates": 0, "data.valid_max_tokens": 16000})
    tr = train(cfg_file, tmp_path, ov)
    # the Linear / Conv1d weights autocast turns into bf16 (mask_emb, a vector, is cast explicitly per forward)
    weights = {p.data_ptr() for p in tr.raw_model.parameters() if p.requires_grad and p.dim() >= 2}

    class CountWeightCasts(TorchDispatchMode):
        def __init__(self):
            super().__init__()
            self.casts: dict[int, int] = {}

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            kwargs = kwargs or {}
            if func is torch.ops.aten._to_copy.default and kwargs.get("dtype") == torch.bfloat16:
                ptr = args[0].data_ptr()
                if ptr in weights:
                    self.casts[ptr] = self.casts.get(ptr, 0) + 1
            return func(*args, **kwargs)

    with CountWeightCasts() as counter:
        metrics = tr.validate()
    batches = len(list(iter(valid_loader(tr.task, tr.info, 0))))
    assert batches >= 3 and counter.casts and max(counter.casts.values()) == 1, (batches, counter.casts)
    # the same numbers as one autocast context per batch
    logs = LogSums()
    tr.raw_model.eval()
    with torch.no_grad():
        for j, batch in enumerate(valid_loader(tr.task, tr.info, 0)):
            seed_everything(batch_seed(tr.cfg.seed, -1, j))
            with torch.autocast("cpu", dtype=torch.bfloat16):
                out = tr.task.valid_step(tr.raw_model, batch)
            logs.add_output(out, out.loss.float())
    again = tr.task.reduce_metrics(logs.all_reduce(tr.info, tr.device, gather_keys=True))
    assert all(again[k] == metrics[k] for k in again), (again, metrics)


def test_corrupt_checkpoint_is_a_clear_error_and_previous_survives(corpus, cfg_file, tmp_path):
    ov = tiny_overrides(corpus, **{"optim.max_update": 4, "checkpoint.save_interval_updates": 2})
    train(cfg_file, tmp_path, ov)
    found = list_checkpoints(tmp_path / "checkpoints")
    assert [n for n, _ in found] == [2, 4]
    latest = found[-1][1] / "model.safetensors"
    data = latest.read_bytes()
    latest.write_bytes(data[: len(data) // 2])  # truncated
    with pytest.raises(CheckpointError, match=r"model.safetensors.*truncated.*checkpoint_00000002 is intact"):
        train(cfg_file, tmp_path, ov, resume=True)
    # the previous checkpoint still resumes
    tr = train(cfg_file, tmp_path, ov, resume=found[0][1])
    assert tr.num_updates == 4
    # a corrupt (same size) training state is caught by the checksum
    st = found[0][1] / "train_state.pt"
    raw = bytearray(st.read_bytes())
    raw[100] ^= 0xFF
    st.write_bytes(bytes(raw))
    with pytest.raises(CheckpointError, match="train_state.pt: checksum mismatch"):
        load_train_state(found[0][1])


def test_failed_save_leaves_previous_checkpoint(corpus, cfg_file, tmp_path):
    class Failing(PretrainTask):
        def save_weights(self, model, folder, state_dict=None):
            if self.fail:
                (folder / "model.safetensors").write_bytes(b"partial")
                raise OSError("disk full")
            super().save_weights(model, folder, state_dict)

    Failing.fail = False
    ov = tiny_overrides(corpus, **{"optim.max_update": 4, "checkpoint.save_interval_updates": 2})
    cfg = load_train_config(cfg_file, ov)
    tr = Trainer(cfg, Failing(cfg), tmp_path)
    tr.setup()
    Failing.fail = False
    orig = tr.save

    def save(best=False):
        Failing.fail = tr.num_updates == 4
        return orig(best)

    tr.save = save
    from speech_ssl.train.checkpoint import CheckpointError

    with pytest.raises(CheckpointError, match=r"could not write the checkpoint \(disk full\); the earlier checkpoints"):
        tr.train()
    assert [n for n, _ in list_checkpoints(tmp_path / "checkpoints")] == [2]
    assert not [p for p in (tmp_path / "checkpoints").iterdir() if p.name.startswith(".tmp")]
    assert load_train_state(find_latest(tmp_path / "checkpoints"))["num_updates"] == 2


def test_non_finite_updates_are_skipped_then_abort(corpus, cfg_file, tmp_path):
    class NaNAt(PretrainTask):
        bad_calls: set = set()
        calls = 0

        def train_step(self, model, batch, num_updates):
            out = super().train_step(model, batch, num_updates)
            NaNAt.calls += 1
            if NaNAt.calls in NaNAt.bad_calls:
                out.loss = out.loss * float("nan")
            return out

    NaNAt.bad_calls = {2}
    ov = tiny_overrides(corpus, **{"optim.max_update": 3, "checkpoint.save_interval_updates": 0})
    tr = train(cfg_file, tmp_path / "a", ov, task_cls=NaNAt)
    assert tr.num_updates == 3 and tr.skipped_total == 1
    assert all(torch.isfinite(v).all() for v in params(tr).values())
    NaNAt.calls, NaNAt.bad_calls = 0, set(range(2, 100))
    ov = tiny_overrides(corpus, **{"optim.max_update": 20, "precision.max_consecutive_nonfinite": 3})
    with pytest.raises(TrainingAborted, match="3 updates in a row had a non-finite loss"):
        train(cfg_file, tmp_path / "b", ov, task_cls=NaNAt)


@pytest.mark.parametrize("impl", ["fused", "for_loop"])
def test_fp16_overflow_lowers_the_scale_without_aborting(corpus, cfg_file, tmp_path, capfd, impl):
    """Overflow updates are skipped on the device (fused) or by the host (for_loop), count as updates (GradScaler's
    semantics) and are logged when the host reads them."""
    ov = tiny_overrides(corpus, **{"optim.max_update": 4, "precision.mode": "fp16", "precision.fp16_init_scale": 2.0**22,
                                   "precision.max_consecutive_nonfinite": 2, "checkpoint.save_interval_updates": 0,
                                   "logging.log_interval": 4, "optim.impl": impl})
    fresh = Trainer(load_train_config(cfg_file, ov), PretrainTask(load_train_config(cfg_file, ov)), None)
    fresh.setup()
    before = params(fresh)
    tr = train(cfg_file, tmp_path, ov)
    assert tr.num_updates == 4 and tr.skipped_total >= 3  # several overflows in a row, no abort
    assert tr.scaler.get_scale() <= 2.0**22 / 2**3
    assert all(torch.isfinite(v).all() for v in params(tr).values())
    err = capfd.readouterr().err
    assert err.count("fp16 gradient overflow at loss scale") == tr.skipped_total
    assert "update 0: fp16 gradient overflow at loss scale 4.1943e+06; skipped" in err
    train_line = [json.loads(x) for x in (tmp_path / "log.jsonl").read_text().splitlines()][0]
    assert train_line["skipped"] == tr.skipped_total and train_line["loss_scale"] == tr.scaler.get_scale()
    if tr.skipped_total == 4:  # nothing was applied
        assert all(torch.equal(v, before[k]) for k, v in params(tr).items())


def test_init_from_takes_weights_only(corpus, cfg_file, tmp_path):
    ov = tiny_overrides(corpus, **{"optim.max_update": 2})
    first = train(cfg_file, tmp_path / "a", ov)
    cfg = load_train_config(cfg_file, ov)
    tr = Trainer(cfg, PretrainTask(cfg), tmp_path / "b")
    tr.setup(init_from=find_latest(tmp_path / "a" / "checkpoints"))
    assert tr.num_updates == 0 and not tr.optimizer.state
    assert all(torch.equal(first.raw_model.state_dict()[k], v) for k, v in tr.raw_model.state_dict().items())


def test_loss_falls_and_metrics_move(corpus, cfg_file, tmp_path):
    """100 updates of a 0.4M-parameter group-norm model: the contrastive task gets learned."""
    ov = tiny_overrides(
        corpus,
        **{
            "optim.max_update": 100,
            "schedule.warmup_updates": 20,
            "logging.log_interval": 25,
            "checkpoint.save_interval_updates": 0,
            "model.overrides.num_negatives": 10,
            "model.overrides.mask_length": 4,
            "model.overrides.mask_prob": 0.5,
            "model.overrides.latent_temp": "[2.0,0.5,0.99]",
            "model.overrides.extractor_mode": "default",
            "model.overrides.conv_feature_layers": "[[64,10,5],[64,3,2],[64,3,2],[64,3,2],[64,3,2],[64,2,2],[64,2,2]]",
            "model.overrides.encoder_embed_dim": 128,
            "model.overrides.encoder_ffn_embed_dim": 256,
            "model.overrides.conv_pos_groups": 8,
        },
    )
    tr = train(cfg_file, tmp_path, ov)
    log = [json.loads(x) for x in (tmp_path / "log.jsonl").read_text().splitlines()]
    trn = [e for e in log if e.get("split") == "train"]
    first, last = trn[0], trn[-1]
    chance = 1 / 11
    assert last["loss"] < first["loss"] - 0.5
    assert last["accuracy"] > first["accuracy"] + 0.15 and last["accuracy"] > 3 * chance
    assert tr.last_valid["accuracy"] > 3 * chance
    assert last["temp"] < first["temp"]
    # the codebook stays in use: no collapse (>= 8 of 64 codes' worth of perplexity), no alarm
    assert last["code_perplexity"] >= 8 and last["prob_perplexity"] >= 8
    assert not [e for e in log if e.get("alarm") in ("code_collapse", "non_finite", "trivial_task")]


def test_cli_bad_config_exit_code(cfg_file, tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("task: pretrain\ndata:\n  train: [x.tsv]\noptim:\n  lr: fast\n")
    r = run_cli(["pretrain", str(bad), "--run-dir", str(tmp_path / "r")])
    assert r.returncode == 2
    assert "bad.yaml:5: key 'optim.lr': expected a number" in r.stderr


def _pretrain_cmd(cfg_file, run_dir, ov, torchrun=False):
    args = [str(cfg_file), *ov, "--run-dir", str(run_dir)]
    if torchrun:
        return [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
                "-m", "speech_ssl.cli.pretrain", *args]
    return [sys.executable, "-m", "speech_ssl.cli.pretrain", *args]


def _env():
    return dict(os.environ, OMP_NUM_THREADS="1", SPEECH_SSL_NO_BAR="1", PYTHONPATH=str(REPO))


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGUSR1])
def test_signal_saves_and_resumes(corpus, cfg_file, tmp_path, capfd, sig):
    run_dir = tmp_path / "run"
    ov = tiny_overrides(corpus, **{"optim.max_update": 100000, "checkpoint.save_interval_updates": 0,
                                   "schedule.warmup_updates": 10})
    proc = subprocess.Popen(_pretrain_cmd(cfg_file, run_dir, ov), env=_env(), cwd=REPO,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    log = run_dir / "log.jsonl"
    deadline = time.time() + 60
    while time.time() < deadline and (not log.exists() or len(log.read_text().splitlines()) < 3):
        time.sleep(0.1)
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == EXIT_STOPPED == 75, err  # not 0: a wrapper must not take it for a finished run
    assert f"received {sig.name}" in err and "continue with --resume" in err
    assert "not finished" in err
    ck = find_latest(run_dir / "checkpoints")
    n = load_train_state(ck)["num_updates"]
    assert n >= 3
    ov2 = [o for o in ov if not o.startswith("optim.max_update")] + [f"optim.max_update={n + 2}"]
    tr = train(cfg_file, run_dir, ov2, resume=True)
    assert tr.resumed_from == ck and tr.num_updates == n + 2
    err = capfd.readouterr().err
    assert f"config changed since the last run: optim.max_update: 100000 -> {n + 2}" in err


def test_a_bad_validation_manifest_stops_the_run_before_it_trains(corpus, cfg_file, tmp_path, capfd):
    ov = tiny_overrides(corpus, **{"optim.max_update": 4, "data.valid": f"[{tmp_path / 'nope.tsv'}]"})
    with pytest.raises(DataError, match="nope.tsv"):
        train(cfg_file, tmp_path / "run", ov)
    assert "[train] update" not in capfd.readouterr().err
    assert not (tmp_path / "run" / "log.jsonl").exists() or "train" not in (tmp_path / "run" / "log.jsonl").read_text()
    train(cfg_file, tmp_path / "ok", tiny_overrides(corpus, **{"optim.max_update": 1}))
    assert "valid: 6 utterances" in capfd.readouterr().err


def test_finished_run_invoked_again(corpus, cfg_file, tmp_path, capfd):
    """A finished run resumed again: nothing trained or logged with its settings (or only how it runs changed);
    with settings that change what it learns, refused with the differences named; more updates continue it."""
    run_dir = tmp_path / "run"
    ov = tiny_overrides(corpus, **{"optim.max_update": 2, "checkpoint.save_interval_updates": 0})
    train(cfg_file, run_dir, ov)
    log, config = (run_dir / "log.jsonl").read_text(), (run_dir / "config.yaml").read_text()
    again = train(cfg_file, run_dir, ov + ["data.num_workers=1", "logging.log_interval=7"], resume=True)
    assert again.num_updates == 2 and "finished already: update 2 of 2" in capfd.readouterr().err
    assert (run_dir / "log.jsonl").read_text() == log  # no second validation
    assert (run_dir / "config.yaml").read_text() == config  # still the settings it was trained with
    for changed, named in (("optim.lr=1e-3", "optim.lr: 0.002 -> 0.001"),
                           ("model.overrides.dropout=0.1", "model.overrides.dropout: None -> 0.1"),
                           ("optim.max_update=1", "optim.max_update: 2 -> 1")):
        with pytest.raises(ConfigError) as e:
            train(cfg_file, run_dir, ov + [changed], resume=True)
        assert f"{run_dir} finished at update 2 with other settings" in str(e.value) and named in str(e.value)
    assert (run_dir / "config.yaml").read_text() == config
    more = train(cfg_file, run_dir, ov + ["optim.max_update=3"], resume=True)
    assert more.num_updates == 3
    assert "config changed since the last run: optim.max_update: 2 -> 3" in capfd.readouterr().err


def test_two_processes_equal_update_freq_2(corpus, cfg_file, tmp_path):
    """torchrun, 2 CPU processes (Gloo) == 1 process with update_freq 2: same parameters after 3 updates."""
    ov = tiny_overrides(corpus, **{"optim.max_update": 3, "data.max_tokens": 32000,
                                   "checkpoint.save_interval_updates": 0})
    r = subprocess.run(_pretrain_cmd(cfg_file, tmp_path / "ddp", ov, torchrun=True), env=_env(), cwd=REPO,
                       capture_output=True, text=True, timeout=180)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "x 2 rank(s) (gloo)" in r.stderr
    single = train(cfg_file, tmp_path / "one", ov + ["optim.update_freq=2"])
    ddp = load_file(str(find_latest(tmp_path / "ddp" / "checkpoints") / "model.safetensors"))
    one = params(single)
    assert ddp.keys() == one.keys()
    worst = max(float((ddp[k] - one[k]).abs().max()) for k in one)
    assert worst < 1e-5, worst
    moved = max(float((one[k] - PretrainTask(load_train_config(cfg_file, ov)).build_model().state_dict()[k])
                      .abs().max()) for k in one if k.endswith("weight"))
    assert moved > 1e-3  # the runs really trained
    la, lb = train_losses(tmp_path / "ddp"), train_losses(tmp_path / "one")
    assert all(abs(la[n] - lb[n]) < 1e-5 for n in la)


def test_multi_corpus_alpha_sampling_is_reported(corpus, cfg_file, tmp_path, capfd):
    ov = tiny_overrides(corpus, **{"optim.max_update": 2, "checkpoint.save_interval_updates": 0,
                                   "data.train": f"[{corpus / 'train.tsv'},{corpus / 'valid.tsv'}]",
                                   "data.alpha": 0.0})
    tr = train(cfg_file, tmp_path, ov)
    assert tr.num_updates == 2
    err = capfd.readouterr().err
    # alpha 0: both corpora get half the audio whatever their size
    assert err.count("-> sampled 0.500 (alpha 0.0)") == 2 and "natural share 0.500" not in err


def test_validate_only_reports_the_logged_validation_of_a_checkpoint(corpus, cfg_file, tmp_path):
    """`pretrain --init-from CK --validate-only` prints the validation metrics as JSON (same masks as the
    trainer's own validation: the same numbers as the log at that checkpoint) and trains nothing."""
    ov = tiny_overrides(corpus, **{"optim.max_update": 4, "logging.valid_interval_updates": 4})
    train(cfg_file, tmp_path / "a", ov)
    logged = [json.loads(x) for x in (tmp_path / "a" / "log.jsonl").read_text().splitlines()]
    logged = [e for e in logged if e.get("split") == "valid" and e["update"] == 4][-1]
    ck = find_latest(tmp_path / "a" / "checkpoints")
    r = run_cli(["pretrain", str(cfg_file), *ov, "--init-from", str(ck), "--validate-only",
                 "--run-dir", str(tmp_path / "v")])
    assert r.returncode == 0, r.stderr[-2000:]
    got = json.loads(r.stdout.strip().splitlines()[-1])
    assert got["split"] == "valid" and got["update"] == 0
    assert got["accuracy"] == pytest.approx(logged["accuracy"], abs=1e-9)
    assert got["loss_contrastive"] == pytest.approx(logged["loss_contrastive"], rel=1e-5)
    assert not list_checkpoints(tmp_path / "v" / "checkpoints")


def test_cli_mistakes_are_exit_2_with_the_key_or_flag_named(corpus, cfg_file, tmp_path, capsys):
    """Plausible mistakes give one line naming what to change (exit 2), never a traceback or a silent run."""
    from speech_ssl.cli import main

    ov = tiny_overrides(corpus, **{"optim.max_update": 1})
    run = ["--run-dir", str(tmp_path / "r")]
    for extra, flags, named in (
        ([], ["--validate-only"], "--validate-only measures a given model"),
        ([], ["--validate-only", "--resume"], "has no checkpoint to measure"),
        ([], ["--init-from", str(tmp_path), "--resume"], "--resume and --init-from are exclusive"),
        ([], ["--resume", "optim.lr=1e-3"], "overrides go before the options"),
        (["data.max_tokens=1000"], [], "key 'data.max_tokens': 1000 samples is below the longest training row"),
        (["data.max_sample_size=100"], [], "key 'data.max_sample_size': 100 samples is below data.min_sample_size"),
        (["device=gpu"], [], "key 'device': device 'gpu' is not a device name"),
    ):
        assert main(["--threads", "1", "pretrain", str(cfg_file), *ov, *extra, *run, *flags]) == 2, (extra, flags)
        assert named in capsys.readouterr().err, (extra, flags)
    # overrides may follow the options too (they reach the config: here the bad device is named)
    assert main(["--threads", "1", "pretrain", str(cfg_file), *ov, *run, "device=gpu"]) == 2
    assert "key 'device'" in capsys.readouterr().err
    with pytest.raises(SystemExit):  # a mistyped option is still an argparse error
        main(["--threads", "1", "pretrain", str(cfg_file), *ov, *run, "--run-dri", "x"])
    assert "unrecognized arguments: --run-dri x" in capsys.readouterr().err
    assert not list_checkpoints(tmp_path / "r" / "checkpoints")


def test_save_interval_minutes_saves_on_wall_time(corpus, cfg_file, tmp_path, monkeypatch):
    """checkpoint.save_interval_minutes: a checkpoint whenever that much time passed since the last one (the
    clock is faked: every update 'takes' a minute), so a crash or a lost node costs at most that much work."""
    import speech_ssl.train.trainer as T

    clock = iter(range(0, 10_000, 60))
    monkeypatch.setattr(T.time, "monotonic", lambda: float(next(clock)))
    ov = tiny_overrides(corpus, **{"optim.max_update": 4, "checkpoint.save_interval_updates": 0,
                                   "checkpoint.save_interval_minutes": 1.5, "checkpoint.keep_last": 10,
                                   "logging.valid_interval_updates": 0})
    train(cfg_file, tmp_path, ov)
    saved = sorted(p.name for p in (tmp_path / "checkpoints").glob("checkpoint_*"))
    assert len(saved) >= 2 and "checkpoint_00000004" in saved
