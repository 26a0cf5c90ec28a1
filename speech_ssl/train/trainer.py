"""The one trainer, shared by pretraining and CTC fine-tuning (see :mod:`speech_ssl.train.tasks`).

One update (fairseq's recipe):

1. ``task.begin_update(model, n)`` (Gumbel temperature, freezing) and the scheduled lr for update ``n``;
2. ``update_freq`` micro-batches, forward + backward of the *summed* loss; DDP synchronises gradients
   only on the last one (``no_sync``); bf16/fp16 autocast, fp16 with a dynamic ``GradScaler``;
3. one all-reduce of ``[sample_size, loss, logs..., stop flag]`` over ranks;
4. gradients multiplied by ``world_size / sample_size`` (DDP averages over ranks, so the result is the
   gradient of sum(loss) / sum(sample_size) over the whole update, exactly as fairseq does);
5. gradient norm (clipped when ``optim.clip_norm > 0``); a non-finite loss or norm skips the update
   (logged, not counted), ``precision.max_consecutive_nonfinite`` in a row abort the run;
6. AdamW step (torch's AdamW == fairseq's Adam with decoupled weight decay).

Every micro-batch reseeds torch / numpy / random from (seed, update, global micro-batch index) with the
global index ``micro * world_size + rank``: masks, negatives, Gumbel noise and dropout then depend only
on the data, so 2 ranks × update_freq 1 equal 1 rank × update_freq 2 on the same batches, and a resumed
run continues exactly. Crop offsets are seeded by (seed, epoch, ids) in the dataset itself.

Only rank 0 writes (logs, checkpoints). Signals (SIGTERM / SIGUSR1) set a flag that travels in the
per-update all-reduce, so all ranks agree to save and stop at the same update.
"""

from __future__ import annotations

import contextlib
import math
import resource
import signal
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from speech_ssl.config import save_config
from speech_ssl.errors import DataError
from speech_ssl.train.checkpoint import (
    CheckpointError,
    checkpoint_name,
    list_checkpoints,
    load_train_state,
    prune,
    resolve_resume,
    save_checkpoint,
)
from speech_ssl.train.config import TrainConfig
from speech_ssl.train.distributed import (
    DistInfo,
    all_gather_object,
    all_reduce_sum,
    barrier,
    batch_seed,
    pick_device,
    rng_state,
    seed_everything,
    set_rng_state,
    wrap_model,
)
from speech_ssl.train.monitor import Monitor
from speech_ssl.train.schedules import lr_at, warmup_end
from speech_ssl.train.task import Task

SAMPLE_RATE = 16000
STATE_VERSION = 1


def _ignore_stop_signals(worker_id: int) -> None:
    """DataLoader workers ignore SIGTERM/SIGUSR1/SIGINT: a scheduler (or ``timeout``) signals the whole process
    group, and only the main process may react (save a checkpoint, then exit); a worker dying first would
    crash the step instead."""
    for s in (signal.SIGTERM, signal.SIGUSR1, signal.SIGINT):
        signal.signal(s, signal.SIG_IGN)


class TrainingAborted(RuntimeError):
    """The run cannot continue (e.g. too many non-finite updates in a row); the message says why."""


def _to_device(batch: dict[str, Any], device: torch.device) -> dict[str, Any]:
    return {k: v.to(device, non_blocking=True) if torch.is_tensor(v) else v for k, v in batch.items()}


def _add(sums: dict[str, Any], key: str, value: Any) -> None:
    if torch.is_tensor(value):
        value = value.detach().double().sum()
    sums[key] = sums[key] + value if key in sums else value


def peak_memory_gb(device: torch.device) -> float:
    """Peak GPU memory allocated by torch on ``device``, or this process's peak RSS on CPU (GiB)."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**30
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def _flatten(d: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(d, dict):
        out: dict[str, Any] = {}
        for k, v in d.items():
            out.update(_flatten(v, f"{prefix}{k}."))
        return out
    return {prefix[:-1]: d}


def config_changes(saved: Path, cfg: TrainConfig) -> list[str]:
    """``key: old -> new`` for every setting that differs from the run directory's ``config.yaml``."""
    import yaml

    from speech_ssl.config import to_dict

    if not Path(saved).is_file():
        return []
    try:
        old = _flatten(yaml.safe_load(Path(saved).read_text()) or {})
    except yaml.YAMLError:
        return [f"{saved} is not valid YAML"]
    new = _flatten(to_dict(cfg))
    return [f"{k}: {old.get(k)!r} -> {new.get(k)!r}" for k in sorted(set(old) | set(new)) if old.get(k) != new.get(k)]


class BatchStream:
    """Endless training micro-batches for one rank, resumable at (epoch, offset in the epoch)."""

    def __init__(self, task: Task, info: DistInfo, num_workers: int = 0, epoch: int = 1, offset: int = 0):
        self.task = task
        self.info = info
        self.num_workers = num_workers
        self.epoch = epoch
        self.offset = offset
        self._it = None

    def _open(self) -> None:
        split = self.task.split("train", self.epoch, self.info.rank, self.info.world_size)
        if not split.batches:
            raise DataError("no training batches (all utterances filtered out?)", "data.train")
        loader = torch.utils.data.DataLoader(
            split.dataset,
            batch_sampler=split.batches[self.offset :],
            collate_fn=split.collate,
            num_workers=self.num_workers,
            pin_memory=self.info.device.type == "cuda",
            worker_init_fn=_ignore_stop_signals,
        )
        self._it = iter(loader)

    def next(self) -> dict[str, Any]:
        for _ in range(3):
            if self._it is None:
                self._open()
            try:
                batch = next(self._it)
            except StopIteration:
                self.epoch += 1
                self.offset = 0
                self._it = None
                continue
            self.offset += 1
            return batch
        raise DataError("training data yields no batches", "data.train")

    def state(self) -> dict[str, int]:
        return {"epoch": self.epoch, "offset": self.offset}

    def close(self) -> None:
        """Stop the DataLoader workers now (they ignore SIGTERM, so they must not be left to the
        interpreter's exit handler); a later ``next()`` reopens the loader at the same position."""
        self._it = None


@dataclass
class _Interval:
    """Sums over the updates since the last train log line."""

    sums: dict[str, float] = field(default_factory=dict)
    updates: int = 0
    skipped: int = 0
    gnorm: float = 0.0
    gnorm_groups: dict[str, Any] = field(default_factory=dict)  # device tensors: no sync until logged
    seconds: float = 0.0

    def add(self, step: dict[str, Any]) -> None:
        for k, v in step["sums"].items():
            self.sums[k] = self.sums.get(k, 0.0) + v
        self.seconds += step["seconds"]
        if step["updated"]:
            self.updates += 1
            self.gnorm += step["gnorm"]
            for k, v in step.get("gnorm_groups", {}).items():
                self.gnorm_groups[k] = self.gnorm_groups[k] + v if k in self.gnorm_groups else v
        else:
            self.skipped += 1


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
        self._nonfinite_streak = 0
        self._stop_signal: int | None = None
        self.monitor: Monitor | None = None
        self.resumed_from: Path | None = None

    # ------------------------------------------------------------------------------------------------
    # setup
    @property
    def ckpt_dir(self) -> Path:
        if self.run_dir is None:
            raise RuntimeError("no run directory")
        return self.run_dir / "checkpoints"

    def _log(self, msg: str) -> None:
        if self.monitor is not None:
            self.monitor.info(msg)
        elif self.info.is_main:
            import sys

            print(msg, file=sys.stderr, flush=True)

    def setup(self, resume: bool | str | Path | None = None, init_from: str | Path | None = None) -> None:
        """Build model, optimizer, scaler and data; restore a checkpoint (``resume``) or weights (``init_from``).

        ``resume=True`` continues from the newest checkpoint in the run directory (a fresh start when
        there is none); a path names a checkpoint folder or another run directory.
        """
        cfg = self.cfg
        if resume and init_from:
            raise ValueError("--resume and --init-from are exclusive (resume restores the weights too)")
        ckpt: Path | None = None
        if resume:
            if resume is True:
                if self.run_dir is None:
                    raise ValueError("resume=True needs a run directory")
                if list_checkpoints(self.ckpt_dir):
                    ckpt = resolve_resume(self.run_dir)
                else:
                    self._log(f"--resume: no checkpoint in {self.ckpt_dir}; starting from scratch")
            else:
                ckpt = resolve_resume(Path(resume))
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
            import dataclasses

            dcfg = dataclasses.replace(dcfg, find_unused_parameters=True)
        self.model = wrap_model(model, dcfg, self.info)
        self.is_ddp = isinstance(self.model, nn.parallel.DistributedDataParallel)
        self.is_fsdp = cfg.distributed.strategy == "fsdp" and self.info.distributed
        self.params = [p for p in self.model.parameters() if p.requires_grad]
        o = cfg.optim
        self.optimizer = torch.optim.AdamW(
            self._param_groups(), lr=o.lr, betas=tuple(o.betas), eps=o.eps, weight_decay=o.weight_decay
        )
        p = cfg.precision
        self.scaler = torch.amp.GradScaler(
            self.device.type,
            init_scale=p.fp16_init_scale,
            growth_interval=p.fp16_scale_window,
            enabled=p.mode == "fp16",
        )
        self.stream = BatchStream(self.task, self.info, cfg.data.num_workers)
        if ckpt is not None:
            self._load_state(load_train_state(ckpt), ckpt)
            self.resumed_from = ckpt

    def _load_state(self, state: dict[str, Any], ckpt: Path) -> None:
        W = self.info.world_size
        if self.is_fsdp:
            from torch.distributed.checkpoint.state_dict import StateDictOptions, set_optimizer_state_dict

            set_optimizer_state_dict(
                self.model, self.optimizer, state["optimizer"], options=StateDictOptions(full_state_dict=True)
            )
        else:
            try:
                sd = state["optimizer"]
                index = {n: i for i, n in enumerate(self._param_names())}
                sd = {
                    "state": {index[k]: v for k, v in sd["state"].items()},
                    "param_groups": [dict(g, params=[index[n] for n in g["params"]]) for g in sd["param_groups"]],
                }
                self.optimizer.load_state_dict(sd)
            except (ValueError, KeyError) as e:
                raise CheckpointError(
                    f"optimizer state does not match this model: {e} (use --init-from for weights only)",
                    ckpt / "train_state.pt",
                ) from e
        if self.scaler.is_enabled() and state.get("scaler"):
            self.scaler.load_state_dict(state["scaler"])
        self.num_updates = int(state["num_updates"])
        self.skipped_total = int(state.get("skipped", 0))
        self.best = state.get("best")
        data = state.get("data", {"epoch": 1, "offset": 0})
        old_w = int(state.get("world_size", W))
        offset = int(data["offset"])
        if old_w != W:
            offset = offset * old_w // W
            self._log(
                f"resuming with {W} ranks instead of {old_w}: the data order and the effective batch change; "
                "the run continues but not bit-exactly"
            )
        old_uf = int(state.get("update_freq", self.cfg.optim.update_freq))
        if old_uf * old_w != self.cfg.optim.update_freq * W:
            self._log(
                f"effective batch changed: {old_w} ranks x update_freq {old_uf} before, "
                f"{W} x {self.cfg.optim.update_freq} now"
            )
        self.stream = BatchStream(self.task, self.info, self.cfg.data.num_workers, int(data["epoch"]), offset)
        rngs = state.get("rng") or []
        if len(rngs) == W:
            set_rng_state(rngs[self.info.rank])
        self._log(f"resumed from {ckpt} at update {self.num_updates} (epoch {data['epoch']}, batch {offset})")

    # ------------------------------------------------------------------------------------------------
    # checkpoints
    def _full_model_state(self) -> dict[str, torch.Tensor] | None:
        if not self.is_fsdp:
            return None
        from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

        return get_model_state_dict(self.model, options=StateDictOptions(full_state_dict=True, cpu_offload=True))

    def _param_groups(self) -> list[dict[str, Any]]:
        """One AdamW group per distinct ``task.lr_scale`` (a single group unless the task asks for more).

        DDP wraps ``raw_model`` and FSDP2 shards it in place, so its parameters are the optimizer's."""
        groups: dict[float, list[tuple[str, nn.Parameter]]] = {}
        for name, p in self.raw_model.named_parameters():
            if p.requires_grad:
                groups.setdefault(float(self.task.lr_scale(name)), []).append((name, p))
        self._opt_names = [n for g in groups.values() for n, _ in g]
        self._lr_scales = list(groups)  # by group index: a resumed optimizer state cannot override them
        if len(groups) > 1:
            self._log("learning-rate groups: " + ", ".join(f"lr x {s:g}: {len(g)} tensors" for s, g in groups.items()))
        return [{"params": [p for _, p in g], "lr_scale": s} for s, g in groups.items()]

    def _param_names(self) -> list[str]:
        """Parameter names in the optimizer's order (state dicts are keyed by name)."""
        return self._opt_names

    def _full_optim_state(self) -> dict[str, Any]:
        """The optimizer state keyed by parameter name (the same layout with DDP and FSDP)."""
        if not self.is_fsdp:
            sd = self.optimizer.state_dict()
            names = self._param_names()
            return {
                "state": {names[i]: v for i, v in sd["state"].items()},
                "param_groups": [dict(g, params=[names[i] for i in g["params"]]) for g in sd["param_groups"]],
            }
        from torch.distributed.checkpoint.state_dict import StateDictOptions, get_optimizer_state_dict

        return get_optimizer_state_dict(
            self.model, self.optimizer, options=StateDictOptions(full_state_dict=True, cpu_offload=True)
        )

    def train_state(self, rngs: list[Any] | None = None, optim: dict[str, Any] | None = None) -> dict[str, Any]:
        return {
            "version": STATE_VERSION,
            "num_updates": self.num_updates,
            "optimizer": optim if optim is not None else self._full_optim_state(),
            "scaler": self.scaler.state_dict() if self.scaler.is_enabled() else {},
            "data": self.stream.state(),
            "rng": rngs if rngs is not None else [rng_state()],
            "world_size": self.info.world_size,
            "update_freq": self.cfg.optim.update_freq,
            "best": self.best,
            "skipped": self.skipped_total,
            "seed": self.cfg.seed,
        }

    def save(self, best: bool = False) -> Path | None:
        """Write a periodic checkpoint (or ``best/``) from rank 0; every rank must call this."""
        if self.run_dir is None:
            return None
        rngs = all_gather_object(rng_state(), self.info)
        model_state = self._full_model_state()
        optim = None if best else self._full_optim_state()
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
            state = None if best else self.train_state(rngs, optim)
            save_checkpoint(dest, lambda f: self.task.save_weights(self.raw_model, f, model_state), state, meta)
            if not best:
                prune(self.ckpt_dir, self.cfg.checkpoint.keep_last)
            self._log(f"saved {'best ' if best else ''}checkpoint {dest}")
        barrier(self.info)
        return dest

    # ------------------------------------------------------------------------------------------------
    # one update
    def _autocast(self):
        mode = self.cfg.precision.mode
        if mode == "fp32":
            return contextlib.nullcontext()
        dtype = torch.bfloat16 if mode == "bf16" else torch.float16
        return torch.autocast(device_type=self.device.type, dtype=dtype)

    def _sync(self, last: bool):
        if self.is_ddp and not last:
            return self.model.no_sync()
        if self.is_fsdp:
            self.model.set_requires_gradient_sync(last)
        return contextlib.nullcontext()

    def _set_lr(self, n: int) -> float:
        lr = lr_at(self.cfg.schedule, n, self.cfg.optim.lr, self.cfg.optim.max_update)
        for g, scale in zip(self.optimizer.param_groups, self._lr_scales):
            g["lr"] = lr * scale
        return lr

    def _grad_norm(self) -> float:
        clip = self.cfg.optim.clip_norm
        grads = [p.grad for p in self.params if p.grad is not None]
        if not grads:
            return 0.0
        if clip > 0:
            norm = torch.nn.utils.clip_grad_norm_(self.params, clip)
        else:
            norm = torch.nn.utils.get_total_norm(grads)
        if hasattr(norm, "full_tensor"):
            norm = norm.full_tensor()
        return float(norm)

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
        """Run one update (``update_freq`` micro-batches); returns its reduced sums and status."""
        cfg = self.cfg
        W, rank, F = self.info.world_size, self.info.rank, cfg.optim.update_freq
        n = self.num_updates
        t0 = time.perf_counter()
        self.task.begin_update(self.raw_model, n)
        lr = self._set_lr(n)
        self.model.train()
        sums: dict[str, Any] = {}
        for i in range(F):
            cpu_batch = self.stream.next()
            audio_samples = float(self.task.batch_audio_samples(cpu_batch))  # on the host: no device sync
            batch = _to_device(cpu_batch, self.device)
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
            _add(sums, "loss", loss)
            _add(sums, "sample_size", out.sample_size)
            for k, v in out.logs.items():
                if k not in ("loss", "sample_size"):
                    _add(sums, k, v)
            _add(sums, "n_batches", 1.0)
            _add(sums, "audio_samples", audio_samples)
        keys = sorted(sums)
        stop = 1.0 if self._stop_signal is not None else 0.0
        vec = torch.tensor(
            [float(sums[k]) if not torch.is_tensor(sums[k]) else 0.0 for k in keys] + [stop],
            dtype=torch.float64,
            device=self.device,
        )
        tens = [j for j, k in enumerate(keys) if torch.is_tensor(sums[k])]
        if tens:
            vec[tens] = torch.stack([sums[keys[j]].to(self.device) for j in tens])
        all_reduce_sum(vec, self.info)
        host = vec.tolist()
        vals = dict(zip(keys, host[:-1]))
        stop_all = host[-1] > 0

        if self.scaler.is_enabled():
            self.scaler.unscale_(self.optimizer)
        ss = vals.get("sample_size", 0.0)
        factor = W / (ss if ss > 0 else 1.0)
        grads = [p.grad for p in self.params if p.grad is not None]
        if grads:
            torch._foreach_mul_(grads, factor)
        group_norms = self._group_grad_norms()
        gnorm = self._grad_norm()
        finite = math.isfinite(vals.get("loss", 0.0)) and math.isfinite(gnorm)
        if finite:
            if self.scaler.is_enabled():
                self.scaler.step(self.optimizer)
            else:
                self.optimizer.step()
            self.num_updates += 1
            self._nonfinite_streak = 0
        elif self.scaler.is_enabled() and math.isfinite(vals.get("loss", 0.0)):
            # fp16 gradient overflow: routine for dynamic loss scaling (the scale halves); like fairseq it
            # does not count towards the abort, which precision.min_loss_scale guards instead.
            self.skipped_total += 1
            self._log(f"update {n}: fp16 gradient overflow at loss scale {self.scaler.get_scale():g}; skipped")
        else:
            self._nonfinite_streak += 1
            self.skipped_total += 1
            self._log(
                f"update {n}: non-finite loss ({vals.get('loss')}) or gradient norm ({gnorm}); update skipped "
                f"({self._nonfinite_streak} in a row)"
            )
        scale = None
        if self.scaler.is_enabled():
            self.scaler.update()
            scale = float(self.scaler.get_scale())
        self.optimizer.zero_grad(set_to_none=True)
        if self._nonfinite_streak >= cfg.precision.max_consecutive_nonfinite:
            raise TrainingAborted(
                f"{self._nonfinite_streak} updates in a row had a non-finite loss or gradient (update "
                f"{n}); stopping. Advice: lower optim.lr or lengthen the warmup, set optim.clip_norm, use "
                "precision.mode=bf16 (or fp32) instead of fp16, and check the data for NaNs / empty audio. "
                "Resume from the last checkpoint with --resume after changing the config."
            )
        if scale is not None and scale < cfg.precision.min_loss_scale:
            raise TrainingAborted(
                f"fp16 loss scale fell to {scale:g} (< precision.min_loss_scale={cfg.precision.min_loss_scale:g}): "
                "gradients overflow at any scale. Use precision.mode=bf16, lower the lr, or set optim.clip_norm."
            )
        return {
            "updated": finite,
            "stop": stop_all,
            "lr": lr,
            "gnorm": gnorm,
            "gnorm_groups": group_norms,
            "loss_scale": scale,
            "sums": vals,
            "seconds": time.perf_counter() - t0,
        }

    # ------------------------------------------------------------------------------------------------
    # validation
    def validate(self) -> dict[str, float]:
        """Metrics over the validation split (sharded over ranks, summed); deterministic masks."""
        W, rank = self.info.world_size, self.info.rank
        split = self.task.split("valid", 1, rank, W)
        loader = torch.utils.data.DataLoader(
            split.dataset, batch_sampler=split.batches, collate_fn=split.collate, num_workers=self.cfg.data.num_workers,
            worker_init_fn=_ignore_stop_signals,
        )
        model = self.model if self.is_fsdp else self.raw_model
        model.eval()
        sums: dict[str, Any] = {}
        t0 = time.perf_counter()
        with torch.no_grad():
            for j, batch in enumerate(loader):
                batch = _to_device(batch, self.device)
                seed_everything(batch_seed(self.cfg.seed, -1, j * W + rank))
                with self._autocast():
                    out = self.task.valid_step(model, batch)
                _add(sums, "loss", out.loss.float())
                _add(sums, "sample_size", out.sample_size)
                for k, v in out.logs.items():
                    if k not in ("loss", "sample_size"):
                        _add(sums, k, v)
                _add(sums, "n_batches", 1.0)
        model.train()
        keys = sorted(sums)
        if self.info.distributed:
            keys = sorted(set().union(*all_gather_object(keys, self.info)))
        vec = torch.tensor(
            [float(sums[k].item()) if torch.is_tensor(sums.get(k)) else float(sums.get(k, 0.0)) for k in keys],
            dtype=torch.float64,
            device=self.device,
        )
        all_reduce_sum(vec, self.info)
        metrics = self.task.reduce_metrics(dict(zip(keys, vec.tolist())))
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
    # signals
    def _on_signal(self, signum, frame) -> None:  # noqa: ARG002
        self._stop_signal = signum
        if self.info.is_main:
            import sys

            print(
                f"received {signal.Signals(signum).name}: saving a checkpoint at the end of this update, then exiting",
                file=sys.stderr,
                flush=True,
            )

    @contextlib.contextmanager
    def _signals(self):
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        old = {s: signal.signal(s, self._on_signal) for s in (signal.SIGTERM, signal.SIGUSR1)}
        try:
            yield
        finally:
            for s, h in old.items():
                signal.signal(s, h)

    # ------------------------------------------------------------------------------------------------
    # the loop
    def describe(self) -> str:
        """Start-of-run summary: model size, effective batch in hours of audio and how to reach the recipe's."""
        cfg, W = self.cfg, self.info.world_size
        F = cfg.optim.update_freq
        mt = cfg.data.max_tokens
        per_update = mt * W * F / SAMPLE_RATE / 3600
        nparams = sum(p.numel() for p in self.raw_model.parameters())
        lines = [
            f"task {self.task.name}: {nparams / 1e6:.2f}M parameters, {self.task.describe_batch()}".rstrip(", "),
            f"device {self.device} x {W} rank(s) ({self.info.backend or 'single process'}), precision "
            f"{cfg.precision.mode}, strategy {cfg.distributed.strategy if W > 1 else 'none'}",
            f"effective batch: max_tokens {mt:,} samples x {W} rank(s) x update_freq {F} = "
            f"{per_update:.3f} h of audio per update at most (the real amount is logged as audio_h_per_update)",
        ]
        lines += self.task.data_summary(self.info.rank, W)
        ref_g, ref_f = cfg.optim.reference_gpus, cfg.optim.reference_update_freq
        if ref_g > 0:
            ref = mt * ref_g * ref_f / SAMPLE_RATE / 3600
            need = max(1, math.ceil(ref_g * ref_f / W))
            lines.append(
                f"recipe batch: {ref_g} GPUs x update_freq {ref_f} = {ref:.3f} h per update; with {W} rank(s) set "
                f"optim.update_freq={need} to match ({mt * W * need / SAMPLE_RATE / 3600:.3f} h)"
                + ("" if need == F else f"  <-- now {F}: the lr/warmup were tuned for the recipe batch")
            )
        return "\n".join(lines)

    def train(self) -> dict[str, float]:
        """Train until ``optim.max_update`` (or a signal / ``stop_after_updates``); returns the last metrics."""
        cfg = self.cfg
        if not hasattr(self, "model"):
            self.setup()
        wend = warmup_end(cfg.schedule, cfg.optim.max_update)
        self.monitor = Monitor(
            self.run_dir,
            cfg.logging,
            self.info.is_main,
            cfg.optim.max_update,
            self.num_updates,
            self.task.alarm_checker(wend),
        )
        if self.info.is_main and self.run_dir is not None:
            self.ckpt_dir.mkdir(parents=True, exist_ok=True)
            if self.resumed_from is not None:
                for line in config_changes(self.run_dir / "config.yaml", cfg):
                    self._log(f"config changed since the last run: {line}")
            save_config(cfg, self.run_dir / "config.yaml")
        self._log(self.describe())
        start = self.num_updates
        interval = _Interval()
        saved_at = self.num_updates if self.resumed_from is not None else -1
        validated_at = -1
        log_every = max(1, cfg.logging.log_interval)
        try:
            with self._signals():
                while self.num_updates < cfg.optim.max_update:
                    step = self.train_update()
                    interval.add(step)
                    n = self.num_updates
                    self._last_step = step
                    if step["updated"]:
                        self.monitor.step(n, {"loss": self._quick_loss(step), "lr": step["lr"]})
                        if n % log_every == 0:
                            self._log_interval(interval, step)
                            interval = _Interval()
                        vi = cfg.logging.valid_interval_updates
                        if vi > 0 and n % vi == 0 and self.task.has_valid():
                            self._validate_and_keep_best()
                            validated_at = n
                        si = cfg.checkpoint.save_interval_updates
                        if si > 0 and n % si == 0:
                            self.save()
                            saved_at = n
                    if step["stop"]:
                        self.stopped_by = "signal"
                        break
                    if self.stop_after_updates is not None and n - start >= self.stop_after_updates:
                        self.stopped_by = "stop_after_updates"
                        break
                if interval.updates or interval.skipped:
                    self._log_interval(interval, self._last_step)
                if self.stopped_by is None and self.task.has_valid() and validated_at != self.num_updates:
                    self._validate_and_keep_best()
                if saved_at != self.num_updates:
                    self.save()
                if self.stopped_by is not None:
                    self._log(
                        f"stopped at update {self.num_updates} ({self.stopped_by}); continue with --resume"
                    )
                else:
                    self._log(f"done: {self.num_updates} updates")
        finally:
            self.stream.close()
            self.monitor.close()
        return self.last_valid or self.last_train or {}

    def _quick_loss(self, step: dict[str, Any]) -> float:
        s = step["sums"]
        return s.get("loss", 0.0) / (s.get("sample_size", 0.0) or 1.0) / math.log(2)

    def _log_interval(self, iv: _Interval, step: dict[str, Any]) -> None:
        metrics = self.task.reduce_metrics(iv.sums)
        audio_s = iv.sums.get("audio_samples", 0.0) / SAMPLE_RATE
        extra = {
            "lr": step["lr"],
            "gnorm": iv.gnorm / max(iv.updates, 1),
            "audio_s_per_s": audio_s / max(iv.seconds, 1e-9),
            "audio_h_per_update": audio_s / 3600 / max(iv.updates + iv.skipped, 1),
            "mem_gb": peak_memory_gb(self.device),
            "epoch": float(self.stream.epoch),
            "skipped": float(iv.skipped),
        }
        for k, v in iv.gnorm_groups.items():
            extra[f"gnorm_{k}"] = float(v) / max(iv.updates, 1)
        if step.get("loss_scale") is not None:
            extra["loss_scale"] = step["loss_scale"]
        metrics.update(extra)
        self.last_train = metrics
        self.monitor.log("train", self.num_updates, metrics)
