"""What the trainer reports: summed logs, the train log line of an interval, the start-of-run summary.

Tasks return per-batch logs as *sums* (see :mod:`speech_ssl.train.tasks`). :class:`LogSums` adds them up
over the micro-batches of an update (or the batches of a validation) on one rank and then over ranks in
one all-reduce; ``task.reduce_metrics`` turns the result into metrics. :class:`Interval` adds the
reduced sums of the updates between two train log lines; :func:`interval_metrics` makes the line
(task metrics + ``lr``, ``gnorm``, throughput, memory, ...), which :class:`~speech_ssl.train.monitor.Monitor`
writes.

Nothing here reads a device value during an update: sums, gradient norms and skip counts stay float64 tensors
on the device, and :meth:`Interval.to_host` brings them over in one copy when the trainer logs (the only
host synchronisation between log lines; tests/train/test_syncs.py counts them).
"""

from __future__ import annotations

import resource
import sys
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from speech_ssl.data.audio import SAMPLE_RATE
from speech_ssl.train.config import TrainConfig, matching_update_freq
from speech_ssl.train.distributed import DistInfo, all_gather_object, all_reduce_sum

if TYPE_CHECKING:  # annotations only: the trainer sees tasks through this interface
    from speech_ssl.train.task import StepOutput, Task


def peak_rss_bytes() -> int:
    """This process's peak resident memory. Linux's VmHWM belongs to the address space, so a program
    started by a big parent reports its own peak; ``ru_maxrss`` (the fallback elsewhere) carries the
    parent's over fork + exec."""
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    scale = 1 if sys.platform == "darwin" else 1024  # bytes on macOS, KiB on Linux
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale


def peak_memory_gb(device: torch.device) -> float:
    """Peak GPU memory allocated by torch on ``device``, or this process's peak RSS on CPU (GiB)."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**30
    return peak_rss_bytes() / 2**30


def to_host(*tensors: torch.Tensor) -> list[list[float]]:
    """Each tensor's values as floats, read in one device-to-host copy (one synchronisation)."""
    if not tensors:
        return []
    flat = [t.detach().reshape(-1).double() for t in tensors]
    dev = flat[0].device
    vals = torch.cat([t.to(dev) for t in flat]).tolist()
    out, at = [], 0
    for t in flat:
        out.append(vals[at : at + t.numel()])
        at += t.numel()
    return out


@dataclass
class DeviceSums:
    """Summed logs as one float64 vector on the device (``keys`` in sorted order); read with :meth:`to_host`."""

    keys: list[str]
    vec: torch.Tensor

    def get(self, key: str, default: float = 0.0) -> torch.Tensor:
        """The () sum of ``key`` (a view, or ``default`` as a device tensor): never read on the host."""
        if key in self.keys:
            return self.vec[self.keys.index(key)]
        return torch.full((), default, dtype=torch.float64, device=self.vec.device)

    def to_host(self) -> dict[str, float]:
        return dict(zip(self.keys, to_host(self.vec)[0]))


class LogSums:
    """Logs summed over batches on this rank, then over ranks (the one place where logs are reduced).

    Tensor values stay where they are (float64 sums, no host read); plain numbers stay on the host. :meth:`reduce`
    puts both into one float64 device vector and all-reduces it without reading it (the trainer's per-update
    path); :meth:`all_reduce` also brings it to the host (validation).
    """

    def __init__(self) -> None:
        self.sums: dict[str, Any] = {}

    def add(self, key: str, value: Any) -> None:
        if torch.is_tensor(value):
            value = value.detach().double().sum()
        self.sums[key] = self.sums[key] + value if key in self.sums else value

    def add_output(self, out: StepOutput, loss: torch.Tensor) -> None:
        """One batch: its ``loss`` (the float32 loss that was back-propagated), sample size, logs, a count."""
        self.add("loss", loss)
        self.add("sample_size", out.sample_size)
        for k, v in out.logs.items():
            if k not in ("loss", "sample_size"):
                self.add(k, v)
        self.add("n_batches", 1.0)

    def _vector(self, keys: list[str], device: torch.device) -> torch.Tensor:
        sums = self.sums
        host = torch.tensor(
            [0.0 if torch.is_tensor(sums.get(k)) else float(sums.get(k, 0.0)) for k in keys], dtype=torch.float64
        )
        # pageable host memory: the copy is staged at once and never waits for the device's queue
        host = host.to(device, non_blocking=True)
        if not any(torch.is_tensor(sums.get(k)) for k in keys):
            return host
        return torch.stack([
            sums[k].to(device, non_blocking=True) if torch.is_tensor(sums.get(k)) else host[j] for j, k in enumerate(keys)
        ])

    def reduce(self, info: DistInfo, device: torch.device) -> DeviceSums:
        """Sum over ranks in one float64 all-reduce that stays on the device (every rank holds the same keys)."""
        keys = sorted(self.sums)
        return DeviceSums(keys, all_reduce_sum(self._vector(keys, device), info))

    def all_reduce(self, info: DistInfo, device: torch.device, gather_keys: bool = False) -> dict[str, float]:
        """:meth:`reduce` and one copy to the host. ``gather_keys`` first agrees on the union of the keys of all
        ranks (a rank that saw no batch has none; missing sums are 0); without it every rank must hold the same
        keys."""
        keys = sorted(self.sums)
        if gather_keys and info.distributed:
            keys = sorted(set().union(*all_gather_object(keys, info)))
        return DeviceSums(keys, all_reduce_sum(self._vector(keys, device), info)).to_host()


def _merge(a: DeviceSums, b: DeviceSums) -> DeviceSums:
    """``a + b`` over the union of their keys (a missing key counts 0)."""
    if a.keys == b.keys:
        return DeviceSums(a.keys, a.vec + b.vec)
    keys = sorted(set(a.keys) | set(b.keys))
    out = torch.zeros(len(keys), dtype=torch.float64, device=a.vec.device)
    for s in (a, b):
        idx = torch.tensor([keys.index(k) for k in s.keys]).to(out.device, non_blocking=True)
        out = out.index_add(0, idx, s.vec)
    return DeviceSums(keys, out)


@dataclass
class IntervalTotals:
    """An :class:`Interval` read on the host: what the train log line is made of."""

    sums: dict[str, float]
    updates: int  # updates applied
    skipped: int  # updates skipped (non-finite loss or gradient, fp16 overflow)
    gnorm: float  # summed over the applied updates
    gnorm_groups: dict[str, float]
    seconds: float


@dataclass
class Interval:
    """Sums over the updates since the last train log line, on the device until :meth:`to_host`."""

    sums: DeviceSums | None = None
    attempted: int = 0
    skipped: torch.Tensor | None = None  # () float64 count
    gnorm: torch.Tensor | None = None  # () float64, applied updates only
    gnorm_groups: dict[str, torch.Tensor] = field(default_factory=dict)
    seconds: float = 0.0

    def add(self, step: dict[str, Any]) -> None:
        """One result of ``Trainer.train_update`` (device tensors: nothing is read here)."""
        sums = step["sums"]
        self.sums = DeviceSums(sums.keys, sums.vec.clone()) if self.sums is None else _merge(self.sums, sums)
        self.seconds += step["seconds"]
        self.attempted += 1
        skip = step["skip"]
        applied = ~skip
        gnorm = torch.where(applied, step["gnorm"].double(), 0.0)
        self.gnorm = gnorm if self.gnorm is None else self.gnorm + gnorm
        self.skipped = skip.double() if self.skipped is None else self.skipped + skip.double()
        for k, v in step.get("gnorm_groups", {}).items():
            v = torch.where(applied, v, 0.0)
            self.gnorm_groups[k] = self.gnorm_groups[k] + v if k in self.gnorm_groups else v

    def to_host(self, extra_seconds: float = 0.0) -> IntervalTotals:
        """Everything in one device-to-host copy; ``extra_seconds`` (the wait for the device) counts as training
        time."""
        if self.sums is None:
            return IntervalTotals({}, 0, 0, 0.0, {}, self.seconds + extra_seconds)
        groups = list(self.gnorm_groups)
        vals = to_host(self.sums.vec, self.skipped, self.gnorm, *(self.gnorm_groups[k] for k in groups))
        skipped = int(vals[1][0])
        return IntervalTotals(
            sums=dict(zip(self.sums.keys, vals[0])),
            updates=self.attempted - skipped,
            skipped=skipped,
            gnorm=vals[2][0],
            gnorm_groups={k: v[0] for k, v in zip(groups, vals[3:])},
            seconds=self.seconds + extra_seconds,
        )


def interval_metrics(
    iv: IntervalTotals, step: dict[str, Any], task: Task, epoch: int, device: torch.device
) -> dict[str, float]:
    """The train log line of an interval: the task's metrics, then ``lr`` (of the last ``step``),
    ``gnorm``, ``audio_s_per_s``, ``audio_h_per_update``, ``mem_gb``, ``epoch``, ``skipped``,
    ``gnorm_<group>`` and, with fp16, ``loss_scale``."""
    metrics = task.reduce_metrics(iv.sums)
    audio_s = iv.sums.get("audio_samples", 0.0) / SAMPLE_RATE
    extra = {
        "lr": step["lr"],
        "gnorm": iv.gnorm / max(iv.updates, 1),
        "audio_s_per_s": audio_s / max(iv.seconds, 1e-9),
        "audio_h_per_update": audio_s / 3600 / max(iv.updates + iv.skipped, 1),
        "mem_gb": peak_memory_gb(device),
        "epoch": float(epoch),
        "skipped": float(iv.skipped),
    }
    for k, v in iv.gnorm_groups.items():
        extra[f"gnorm_{k}"] = v / max(iv.updates, 1)
    if step.get("loss_scale") is not None:
        extra["loss_scale"] = step["loss_scale"]
    metrics.update(extra)
    return metrics


def describe_run(cfg: TrainConfig, task: Task, info: DistInfo, model: nn.Module) -> str:
    """Start-of-run summary: model size, effective batch in hours of audio and how to reach the recipe's."""
    W = info.world_size
    F = cfg.optim.update_freq
    mt = cfg.data.max_tokens
    per_update = mt * W * F / SAMPLE_RATE / 3600
    nparams = sum(p.numel() for p in model.parameters())
    lines = [
        f"task {task.name}: {nparams / 1e6:.2f}M parameters, {task.describe_batch()}".rstrip(", "),
        f"device {info.device} x {W} rank(s) ({info.backend or 'single process'}), precision "
        f"{cfg.precision.mode}, strategy {cfg.distributed.strategy if W > 1 else 'none'}",
        f"effective batch: max_tokens {mt:,} samples x {W} rank(s) x update_freq {F} = "
        f"{per_update:.3f} h of audio per update at most (the real amount is logged as audio_h_per_update)",
    ]
    lines += task.data_summary(info.rank, W)
    ref_g, ref_f = cfg.optim.reference_gpus, cfg.optim.reference_update_freq
    if ref_g > 0:
        ref = mt * ref_g * ref_f / SAMPLE_RATE / 3600
        need = matching_update_freq(cfg.optim, W)
        lines.append(
            f"recipe batch: {ref_g} GPUs x update_freq {ref_f} = {ref:.3f} h per update; with {W} rank(s) set "
            f"optim.update_freq={need} to match ({mt * W * need / SAMPLE_RATE / 3600:.3f} h)"
            + ("" if need == F else f"  <-- now {F}: the lr/warmup were tuned for the recipe batch")
        )
    return "\n".join(lines)
