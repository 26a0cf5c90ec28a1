"""The one trainer, shared by pretraining and CTC fine-tuning (see :mod:`speech_ssl.train.tasks`).

One update (fairseq's recipe):

1. ``task.begin_update(model, n)`` (Gumbel temperature, freezing) and the scheduled lr for update ``n``;
2. ``update_freq`` micro-batches, forward + backward of the *summed* loss; DDP synchronises gradients
   only on the last one (``no_sync``); bf16/fp16 autocast, fp16 with a dynamic ``GradScaler``;
3. one all-reduce of ``[sample_size, loss, logs...]`` over ranks, on the device (the stop / save flags go over a
   Gloo group on the host);
4. gradients multiplied by ``world_size / sample_size`` (DDP averages over ranks, so the result is the
   gradient of sum(loss) / sum(sample_size) over the whole update, exactly as fairseq does);
5. gradient norm (clipped when ``optim.clip_norm > 0``); a non-finite loss or norm skips the update
   (on the device: see below), ``precision.max_consecutive_nonfinite`` in a row abort the run;
6. AdamW step (torch's AdamW == fairseq's Adam with decoupled weight decay; ``optim.impl``,
   :mod:`~speech_ssl.train.optim`).

No host synchronisation between log lines: losses, logs, sample sizes, gradient norms and the skip decision
stay device tensors (the gradient scale is ``world_size / sample_size`` as a tensor; fused AdamW takes the
skip flag as its ``found_inf``, as under torch's GradScaler). The host reads them when it logs, validates or
saves (:meth:`Trainer._settle`): then skipped updates are written to the log (``update n: non-finite loss ...;
update skipped``), counted, and a streak of ``max_consecutive_nonfinite`` (or an fp16 loss scale below
``min_loss_scale``) aborts the run, at most ``log_interval`` updates after it happened (a skipped update changes
no weight). A skipped update counts as an update (as under torch's GradScaler): its number, lr and seeds are
spent and ``skipped`` in the log line says how many there were. Exceptions, all documented where they are:
the non-fused AdamW implementations read the skip flag (one sync per update). The model's input checks,
padding, mask and negative sampling and the masked-frame gather read the batch's ``lengths`` (and the CTC loss
its ``target_lengths``, with padded targets), which :func:`~speech_ssl.train.stream.to_device` leaves on the host:
host reads, no sync (tests/models/test_wav2vec2.py
runs the whole pretraining step on the ``meta`` device, where a device read raises).
The stop / save flags are host values, agreed on over a Gloo group (:func:`~speech_ssl.train.distributed.host_group`).

Every micro-batch reseeds torch / numpy / random from (seed, update, global micro-batch index) with the
global index ``micro * world_size + rank``: masks, negatives, Gumbel noise and dropout then depend only
on the data, so 2 ranks × update_freq 1 equal 1 rank × update_freq 2 on the same batches, and a resumed
run continues exactly. Crop offsets are seeded by (seed, epoch, ids) in the dataset itself.

Only rank 0 writes (logs, checkpoints). Signals (SIGTERM / SIGUSR1) set a flag that is summed over ranks after
every update, so all ranks agree to save and stop at the same update.

This module is the loop and the update; the rest lives next to it: :mod:`~speech_ssl.train.stream` (training
batches, validation loader), :mod:`~speech_ssl.train.state` (what a checkpoint holds, resuming, optimizer
state by parameter name), :mod:`~speech_ssl.train.report` (summed logs, log lines, the run summary),
:mod:`~speech_ssl.train.signals` (stop signals).
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from speech_ssl.config import ConfigError, save_config
from speech_ssl.data.workers import raise_if_failed, stop_workers
from speech_ssl.precision import autocast_dtype, slow_precision_note
from speech_ssl.train.checkpoint import checkpoint_name, load_train_state, prune, save_checkpoint
from speech_ssl.train.config import TrainConfig
from speech_ssl.train.distributed import (
    DistInfo,
    all_gather_object,
    all_reduce_host,
    barrier,
    batch_seed,
    host_group,
    pick_device,
    rng_state,
    seed_everything,
    wrap_model,
)
from speech_ssl.train.monitor import Monitor
from speech_ssl.train.optim import apply_impl, build_adamw, resolve_impl, step_unless
from speech_ssl.train.report import DeviceSums, Interval, LogSums, describe_run, interval_metrics, to_host
from speech_ssl.train.schedules import lr_at, warmup_end
from speech_ssl.train.signals import StopSignals
from speech_ssl.train.state import (
    config_changes,
    find_resume_checkpoint,
    finished_run_conflicts,
    full_model_state,
    group_parameters,
    optimizer_state_by_name,
    restore_train_state,
    train_state,
)
from speech_ssl.train.stream import BatchStream, to_device, valid_loader

if TYPE_CHECKING:  # annotations only
    from speech_ssl.train.task import Task


class TrainingAborted(RuntimeError):
    """The run cannot continue (e.g. too many non-finite updates in a row); the message says why."""


class Trainer:
    """Trains ``task`` under ``cfg``; writes into ``run_dir`` (rank 0 only).

        trainer = Trainer(cfg, PretrainTask(cfg), Path("runs/x"))
        trainer.setup(resume=True)          # or resume="runs/x/checkpoints/checkpoint_00001000"
        metrics = trainer.train()
    """

    def __init__(
        self,
        cfg: TrainConfig,
        task: Task,
        run_dir: Path | None,
        info: DistInfo | None = None,
        stop_after_updates: int | None = None,
    ):
        self.cfg = cfg
        self.task = task
        self.run_dir = Path(run_dir) if run_dir is not None else None
        self.info = info or DistInfo(device=pick_device(cfg.device, 0))
        self.device = self.info.device
        self.stop_after_updates = stop_after_updates
        self.num_updates = 0
        self.skipped_total = 0
        self.best: float | None = None
        self.last_valid: dict[str, float] | None = None
        self.last_train: dict[str, float] | None = None
        self.stopped_by: str | None = None
        self._last_save = time.monotonic()
        self._nonfinite_streak = 0
        self._pending: list[tuple[int, torch.Tensor]] = []  # (update, outcome record) not read on the host yet
        self._last_scale: float | None = None
        self.signals = StopSignals(self.info.is_main)
        self.monitor: Monitor | None = None
        self.resumed_from: Path | None = None

    @property
    def ckpt_dir(self) -> Path:
        if self.run_dir is None:
            raise RuntimeError("no run directory")
        return self.run_dir / "checkpoints"

    def _log(self, msg: str) -> None:
        if self.monitor is not None:
            self.monitor.info(msg)
        elif self.info.is_main:
            print(msg, file=sys.stderr, flush=True)

    # ------------------------------------------------------------------------------------------------
    # setup, save
    def setup(self, resume: bool | str | Path | None = None, init_from: str | Path | None = None) -> None:
        """Build model, optimizer, scaler and data; restore a checkpoint (``resume``) or weights (``init_from``).

        ``resume=True`` continues from the newest checkpoint in the run directory (a fresh start when
        there is none); a path names a checkpoint folder or another run directory.
        """
        cfg = self.cfg
        if resume and init_from:
            raise ValueError("--resume and --init-from are exclusive (resume restores the weights too)")
        ckpt = find_resume_checkpoint(resume, self.run_dir, self._log)
        if note := slow_precision_note(self.device, cfg.precision.mode):
            self._log(note)
        if self.device.type == "cuda" and cfg.precision.allow_tf32 is not None:
            torch.backends.cuda.matmul.allow_tf32 = cfg.precision.allow_tf32
            torch.backends.cudnn.allow_tf32 = cfg.precision.allow_tf32
        seed_everything(cfg.seed)
        model = self.task.build_model()
        if ckpt is not None:
            self.task.load_weights(model, ckpt, strict=True)
        elif init_from:
            self.task.init_from(model, Path(init_from))
            self._log(f"initialised weights from {init_from} (optimizer, schedule and data position start fresh)")
        model.to(self.device)
        self.raw_model = model
        dcfg = cfg.distributed
        if self.task.ddp_find_unused_parameters() and not dcfg.find_unused_parameters:
            dcfg = dataclasses.replace(dcfg, find_unused_parameters=True)
        self.model = wrap_model(model, dcfg, self.info)
        self.is_ddp = isinstance(self.model, nn.parallel.DistributedDataParallel)
        self.is_fsdp = cfg.distributed.strategy == "fsdp" and self.info.distributed
        self.params = [p for p in self.model.parameters() if p.requires_grad]
        self.opt_groups = group_parameters(model, self.task.lr_scale)
        if len(self.opt_groups.lr_scales) > 1:
            self._log("learning-rate groups: " + self.opt_groups.describe())
        o = cfg.optim
        self.optim_impl = resolve_impl(o.impl, self.device, self.is_fsdp)
        self.optimizer = build_adamw(
            self.opt_groups.groups, self.optim_impl, lr=o.lr, betas=tuple(o.betas), eps=o.eps,
            weight_decay=o.weight_decay,
        )
        self._host_group = host_group(self.info)
        p = cfg.precision
        self.scaler = torch.amp.GradScaler(
            self.device.type, init_scale=p.fp16_init_scale, growth_interval=p.fp16_scale_window, enabled=p.mode == "fp16"
        )
        self.stream = BatchStream(self.task, self.info, cfg.data.num_workers)
        if ckpt is not None:
            at = restore_train_state(
                load_train_state(ckpt), ckpt, model=self.model, optimizer=self.optimizer, names=self.opt_groups.names,
                fsdp=self.is_fsdp, scaler=self.scaler, info=self.info, update_freq=o.update_freq, log=self._log,
            )
            apply_impl(self.optimizer, self.optim_impl)  # the configured implementation, not the saved one
            self.num_updates, self.skipped_total, self.best = at.num_updates, at.skipped, at.best
            self.stream = BatchStream(self.task, self.info, cfg.data.num_workers, at.epoch, at.offset)
            self._log(f"resumed from {ckpt} at update {self.num_updates} (epoch {at.epoch}, batch {at.offset})")
            self.resumed_from = ckpt

    def save(self, best: bool = False) -> Path | None:
        """Write a periodic checkpoint (or ``best/``) from rank 0; every rank must call this."""
        self._settle()
        if not best:
            self._last_save = time.monotonic()  # checkpoint.save_interval_minutes counts from here
        if self.run_dir is None:
            return None
        rngs = all_gather_object(rng_state(), self.info)
        model_state = full_model_state(self.model, self.is_fsdp)
        optim = None if best else optimizer_state_by_name(self.model, self.optimizer, self.opt_groups.names, self.is_fsdp)
        dest = None
        if self.info.is_main:
            dest = self.ckpt_dir / ("best" if best else checkpoint_name(self.num_updates))
            meta = {
                "num_updates": self.num_updates,
                "epoch": self.stream.epoch,
                "best": self.best,
                "task": self.task.name,
                "valid": self.last_valid,
            }
            state = None
            if not best:
                state = train_state(
                    num_updates=self.num_updates, optimizer=optim, scaler=self.scaler, data=self.stream.state(),
                    rngs=rngs, world_size=self.info.world_size, update_freq=self.cfg.optim.update_freq,
                    best=self.best, skipped=self.skipped_total, seed=self.cfg.seed,
                )
            save_checkpoint(dest, lambda f: self.task.save_weights(self.raw_model, f, model_state), state, meta)
            if not best:
                prune(self.ckpt_dir, self.cfg.checkpoint.keep_last)
            self._log(f"saved {'best ' if best else ''}checkpoint {dest}")
        barrier(self.info)
        return dest

    # ------------------------------------------------------------------------------------------------
    # one update
    def _autocast(self):
        dtype = autocast_dtype(self.cfg.precision.mode)
        if dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=dtype)

    def _sync(self, last: bool):
        if self.is_ddp and not last:
            return self.model.no_sync()
        if self.is_fsdp:
            self.model.set_requires_gradient_sync(last)
        return contextlib.nullcontext()

    def _set_lr(self, n: int) -> float:
        lr = lr_at(self.cfg.schedule, n, self.cfg.optim.lr, self.cfg.optim.max_update)
        for g, scale in zip(self.optimizer.param_groups, self.opt_groups.lr_scales):
            g["lr"] = lr * scale
        return lr

    def _grad_norm(self) -> torch.Tensor:
        """The () total gradient norm before clipping (clipping scales on the device: no sync)."""
        clip = self.cfg.optim.clip_norm
        grads = [p.grad for p in self.params if p.grad is not None]
        if not grads:
            return torch.zeros((), device=self.device)
        if clip > 0:
            norm = torch.nn.utils.clip_grad_norm_(self.params, clip)
        else:
            norm = torch.nn.utils.get_total_norm(grads)
        if hasattr(norm, "full_tensor"):
            norm = norm.full_tensor()
        return norm

    def _group_grad_norms(self) -> dict[str, torch.Tensor]:
        """Gradient norm (before clipping) of each ``task.grad_norm_group``, as device tensors (not under FSDP,
        whose gradients are shards)."""
        if self.is_fsdp:
            return {}
        if not hasattr(self, "_norm_groups"):
            self._norm_groups: dict[str, list[nn.Parameter]] = {}
            for name, p in self.raw_model.named_parameters():
                g = self.task.grad_norm_group(name) if p.requires_grad else None
                if g is not None:
                    self._norm_groups.setdefault(g, []).append(p)
        out = {}
        for g, ps in self._norm_groups.items():
            grads = [p.grad for p in ps if p.grad is not None]
            if grads:
                out[g] = torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(x) for x in grads]))
        return out

    def train_update(self) -> dict[str, Any]:
        """Run one update (``update_freq`` micro-batches); returns its reduced sums and outcome as device tensors."""
        cfg = self.cfg
        W, rank, F = self.info.world_size, self.info.rank, cfg.optim.update_freq
        n = self.num_updates
        t0 = time.perf_counter()
        self.task.begin_update(self.raw_model, n)
        lr = self._set_lr(n)
        self.model.train()
        logs = LogSums()
        for i in range(F):
            cpu_batch = self.stream.next()
            audio_samples = self.task.batch_audio_samples(cpu_batch)  # a tensor of the host batch
            batch = to_device(cpu_batch, self.device)
            # after fetching: opening a DataLoader iterator draws from the global RNG
            seed_everything(batch_seed(cfg.seed, n, i * W + rank))
            with self._sync(i == F - 1):
                with self._autocast():
                    out = self.task.train_step(self.model, batch, n)
                loss = out.loss.float()
                if self.scaler.is_enabled():
                    self.scaler.scale(loss).backward()
                else:
                    loss.backward()
            logs.add_output(out, loss)
            logs.add("audio_samples", audio_samples)
        sums = logs.reduce(self.info, self.device)  # all-reduced on the device, not read
        step = self._optimizer_step(sums, n)
        self.num_updates += 1
        stop, due = self._flags()
        return {"stop": stop, "save_due": due, "lr": lr, **step, "sums": sums, "seconds": time.perf_counter() - t0}

    def _flags(self) -> tuple[bool, bool]:
        """(stop, save due) agreed by all ranks: host values, summed over a Gloo group (no device sync)."""
        stop = 1.0 if self.signals.received is not None else 0.0
        minutes = self.cfg.checkpoint.save_interval_minutes
        due = 1.0 if minutes > 0 and time.monotonic() - self._last_save >= 60 * minutes else 0.0
        stop_all, due_all = all_reduce_host([stop, due], self.info, self._host_group)
        return stop_all > 0, due_all > 0

    def _optimizer_step(self, sums: DeviceSums, n: int) -> dict[str, Any]:
        """Steps 4-6 of update ``n`` given its reduced sums: scale, norm, step or skip, all on the device.

        Returns ``skip`` (() bool), ``gnorm`` and ``gnorm_groups`` (device tensors) and queues the update's
        outcome for :meth:`_settle`."""
        scaler = self.scaler
        if scaler.is_enabled():
            scale_used = scaler._get_scale_async().double().clone()  # the public get_scale() reads it on the host
            scaler.unscale_(self.optimizer)
        ss = sums.get("sample_size")
        factor = self.info.world_size / torch.where(ss > 0, ss, 1.0)
        grads = [p.grad for p in self.params if p.grad is not None]
        if grads:
            torch._foreach_mul_(grads, factor)
        group_norms = self._group_grad_norms()
        gnorm = self._grad_norm()
        loss_ok = torch.isfinite(sums.get("loss"))
        skip = ~(loss_ok & torch.isfinite(gnorm))
        step_unless(self.optimizer, skip)
        record = [sums.get("loss"), gnorm.double(), skip.double()]
        if scaler.is_enabled():
            scaler.update()
            # an fp16 overflow (finite loss, inf gradients) is routine: it halves the scale and, like fairseq,
            # does not count towards the abort, which precision.min_loss_scale guards instead
            record += [(skip & loss_ok).double(), scale_used, scaler._get_scale_async().double()]
        self._pending.append((n, torch.stack(record)))
        self.optimizer.zero_grad(set_to_none=True)
        return {"skip": skip, "gnorm": gnorm, "gnorm_groups": group_norms}

    def _settle(self) -> None:
        """Read the outcomes of the updates since the last call (one copy to the host): log and count the skipped
        ones and abort on ``max_consecutive_nonfinite`` in a row or an fp16 scale below ``min_loss_scale``."""
        if not self._pending:
            return
        pending, self._pending = self._pending, []
        rows = to_host(*(r for _, r in pending))
        p = self.cfg.precision
        for (n, _), row in zip(pending, rows):
            loss, gnorm, skip = row[:3]
            overflow, scale_used, scale = row[3:] if len(row) > 3 else (0.0, None, None)
            if not skip:
                self._nonfinite_streak = 0
            elif overflow:
                self.skipped_total += 1
                self._log(f"update {n}: fp16 gradient overflow at loss scale {scale_used:g}; skipped")
            else:
                self._nonfinite_streak += 1
                self.skipped_total += 1
                self._log(
                    f"update {n}: non-finite loss ({loss}) or gradient norm ({gnorm}); update skipped "
                    f"({self._nonfinite_streak} in a row)"
                )
            self._last_scale = scale
            if self._nonfinite_streak >= p.max_consecutive_nonfinite:
                raise TrainingAborted(
                    f"{self._nonfinite_streak} updates in a row had a non-finite loss or gradient (update "
                    f"{n}); stopping. Advice: lower optim.lr or lengthen the warmup, set optim.clip_norm, use "
                    "precision.mode=bf16 (or fp32) instead of fp16, and check the data for NaNs / empty audio. "
                    "Resume from the last checkpoint with --resume after changing the config."
                )
            if scale is not None and scale < p.min_loss_scale:
                raise TrainingAborted(
                    f"fp16 loss scale fell to {scale:g} (< precision.min_loss_scale={p.min_loss_scale:g}): "
                    "gradients overflow at any scale. Use precision.mode=bf16, lower the lr, or set optim.clip_norm."
                )

    # ------------------------------------------------------------------------------------------------
    # validation
    def validate(self) -> dict[str, float]:
        """Metrics over the validation split (sharded over ranks, summed); deterministic masks."""
        self._settle()
        W, rank = self.info.world_size, self.info.rank
        loader = valid_loader(self.task, self.info, self.cfg.data.num_workers)
        model = self.model if self.is_fsdp else self.raw_model
        model.eval()
        logs = LogSums()
        t0 = time.perf_counter()
        batches = iter(loader)
        try:
            # one autocast context for the whole pass: its cast cache turns each weight into the autocast dtype
            # once per validation, not once per batch (the weights do not change until it ends)
            with torch.no_grad(), self._autocast():
                for j, batch in enumerate(batches):
                    batch = to_device(raise_if_failed(batch), self.device)
                    seed_everything(batch_seed(self.cfg.seed, -1, j * W + rank))
                    out = self.task.valid_step(model, batch)
                    logs.add_output(out, out.loss.float())
        finally:
            stop_workers(batches)
        model.train()
        sums = logs.all_reduce(self.info, self.device, gather_keys=True)
        metrics = self.task.reduce_metrics(sums)
        metrics["valid_seconds"] = time.perf_counter() - t0
        self.last_valid = metrics
        return metrics

    def _validate_and_keep_best(self) -> None:
        metrics = self.validate()
        name = self.cfg.checkpoint.best_metric or self.task.best_metric
        maximize = self.cfg.checkpoint.maximize_best
        if maximize is None:
            maximize = self.task.maximize_best
        value = metrics.get(name)
        improved = False
        if value is not None and math.isfinite(value):
            improved = self.best is None or (value > self.best if maximize else value < self.best)
            if improved:
                self.best = value
        metrics[f"best_{name}"] = self.best if self.best is not None else float("nan")
        if self.monitor is not None:
            self.monitor.log("valid", self.num_updates, metrics)
        if improved and self.cfg.checkpoint.keep_best:
            self.save(best=True)

    # ------------------------------------------------------------------------------------------------
    # the loop
    def train(self) -> dict[str, float]:
        """Train until ``optim.max_update`` (or a signal / ``stop_after_updates``); returns the last metrics."""
        cfg = self.cfg
        if not hasattr(self, "model"):
            self.setup()
        if self.resumed_from is not None and self.num_updates >= cfg.optim.max_update:
            return self._finished_already()
        wend = warmup_end(cfg.schedule, cfg.optim.max_update)
        self.monitor = Monitor(
            self.run_dir, cfg.logging, self.info.is_main, cfg.optim.max_update, self.num_updates,
            self.task.alarm_checker(wend),
        )
        if self.info.is_main and self.run_dir is not None:
            self.ckpt_dir.mkdir(parents=True, exist_ok=True)
            if self.resumed_from is not None:
                for line in config_changes(self.run_dir / "config.yaml", cfg):
                    self._log(f"config changed since the last run: {line}")
            save_config(cfg, self.run_dir / "config.yaml")
        self._log(describe_run(cfg, self.task, self.info, self.raw_model))
        start = self.num_updates
        self._last_save = time.monotonic()
        interval = Interval()
        saved_at = self.num_updates if self.resumed_from is not None else -1
        validated_at = -1
        log_every = max(1, cfg.logging.log_interval)
        try:
            with self.signals.installed():
                while self.num_updates < cfg.optim.max_update:
                    step = self.train_update()
                    interval.add(step)
                    n = self.num_updates
                    self.monitor.step(n)
                    if n % log_every == 0:
                        self._log_interval(interval, step)
                        interval = Interval()
                    vi = cfg.logging.valid_interval_updates
                    if vi > 0 and n % vi == 0 and self.task.has_valid():
                        self._validate_and_keep_best()
                        validated_at = n
                    si = cfg.checkpoint.save_interval_updates
                    if (si > 0 and n % si == 0) or step["save_due"]:
                        self.save()
                        saved_at = n
                    if step["stop"]:
                        self.stopped_by = "signal"
                        break
                    if self.stop_after_updates is not None and n - start >= self.stop_after_updates:
                        self.stopped_by = "stop_after_updates"
                        break
                if interval.attempted:
                    self._log_interval(interval, step)
                if self.stopped_by is None and self.task.has_valid() and validated_at != self.num_updates:
                    self._validate_and_keep_best()
                if saved_at != self.num_updates:
                    self.save()
                self._settle()
                if self.stopped_by is not None:
                    self._log(f"stopped at update {self.num_updates} of {cfg.optim.max_update} ({self.stopped_by}), "
                              "not finished; continue with --resume")
                else:
                    self._log(f"done: {self.num_updates} updates")
        finally:
            self.stream.close()
            self.monitor.close()
        return self.last_valid or self.last_train or {}

    def _finished_already(self) -> dict[str, Any]:
        """A resumed run that has nothing left to train: done at once, unless it was trained with other
        settings than these (then its weights are not what was asked for: a :class:`ConfigError`)."""
        n, saved = self.num_updates, (self.run_dir / "config.yaml" if self.run_dir is not None else None)
        self.stream.close()
        if saved is not None and (conflicts := finished_run_conflicts(saved, self.cfg)):
            raise ConfigError(
                f"{self.run_dir} finished at update {n} with other settings than these ({saved} -> now): "
                + "; ".join(conflicts) + ". Train them in a new --run-dir, or delete this one; a finished run "
                "may be invoked again with other device, loader workers, validation data, logging, checkpoint "
                "and distributed settings only."
            )
        self._log(f"finished already: update {n} of {self.cfg.optim.max_update} ({self.resumed_from}); nothing to train")
        return {}

    def _log_interval(self, iv: Interval, step: dict[str, Any]) -> None:
        """The train log line: the host reads the interval here (the one sync between log lines)."""
        t0 = time.perf_counter()
        self._settle()
        totals = iv.to_host(extra_seconds=time.perf_counter() - t0)  # waiting for the device is training time
        metrics = interval_metrics(totals, {**step, "loss_scale": self._last_scale}, self.task, self.stream.epoch,
                                   self.device)
        self.last_train = metrics
        self.monitor.log("train", self.num_updates, metrics)
        self.monitor.step(self.num_updates, {"loss": metrics["loss"], "lr": step["lr"]})
