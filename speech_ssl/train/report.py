"""What the trainer reports: summed logs, the train log line of an interval, the start-of-run summary.

Tasks return per-batch logs as *sums* (see :mod:`speech_ssl.train.tasks`). :class:`LogSums` adds them up
over the micro-batches of an update (or the batches of a validation) on one rank and then over ranks in
one all-reduce; ``task.reduce_metrics`` turns the result into metrics. :class:`Interval` adds the
reduced sums of the updates between two train log lines; :func:`interval_metrics` makes the line
(task metrics + ``lr``, ``gnorm``, throughput, memory, ...), which :class:`~speech_ssl.train.monitor.Monitor`
writes.
"""

from __future__ import annotations

import math
import resource
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from speech_ssl.data.audio import SAMPLE_RATE
from speech_ssl.train.config import TrainConfig, matching_update_freq
from speech_ssl.train.distributed import DistInfo, all_gather_object, all_reduce_sum

if TYPE_CHECKING:  # annotations only: the trainer sees tasks through this interface
    from speech_ssl.train.task import StepOutput, Task


def peak_memory_gb(device: torch.device) -> float:
    """Peak GPU memory allocated by torch on ``device``, or this process's peak RSS on CPU (GiB)."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**30
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


class LogSums:
    """Logs summed over batches on this rank, then over ranks (the one place where logs are reduced).

    Tensor values stay on the device (float64 sums, no host sync) until :meth:`all_reduce`, which moves
    everything to the host once.
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

    def all_reduce(
        self, info: DistInfo, device: torch.device, extra: tuple[float, ...] = (), gather_keys: bool = False
    ) -> tuple[dict[str, float], list[float]]:
        """Sum over ranks in one float64 all-reduce and one copy to the host; returns ``(sums, extra)``.

        ``extra`` rides along in the same all-reduce (the trainer's stop flag). ``gather_keys`` first
        agrees on the union of the keys of all ranks (a rank that saw no batch has none; missing sums
        are 0); without it every rank must hold the same keys.
        """
        keys = sorted(self.sums)
        if gather_keys and info.distributed:
            keys = sorted(set().union(*all_gather_object(keys, info)))
        sums = self.sums
        vec = torch.tensor(
            [0.0 if torch.is_tensor(sums.get(k)) else float(sums.get(k, 0.0)) for k in keys] + list(extra),
            dtype=torch.float64,
            device=device,
        )
        tens = [j for j, k in enumerate(keys) if torch.is_tensor(sums.get(k))]
        if tens:
            vec[tens] = torch.stack([sums[keys[j]].to(device) for j in tens])
        all_reduce_sum(vec, info)
        host = vec.tolist()
        return dict(zip(keys, host[: len(keys)])), host[len(keys) :]


@dataclass
class Interval:
    """Sums over the updates since the last train log line."""

    sums: dict[str, float] = field(default_factory=dict)
    updates: int = 0
    skipped: int = 0
    gnorm: float = 0.0
    gnorm_groups: dict[str, Any] = field(default_factory=dict)  # device tensors: no sync until logged
    seconds: float = 0.0

    def add(self, step: dict[str, Any]) -> None:
        """One result of ``Trainer.train_update``."""
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


def interval_metrics(
    iv: Interval, step: dict[str, Any], task: Task, epoch: int, device: torch.device
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
        extra[f"gnorm_{k}"] = float(v) / max(iv.updates, 1)
    if step.get("loss_scale") is not None:
        extra["loss_scale"] = step["loss_scale"]
    metrics.update(extra)
    return metrics


def quick_loss(sums: dict[str, float]) -> float:
    """Loss in bits per sample of one update's reduced sums (the progress bar's number)."""
    return sums.get("loss", 0.0) / (sums.get("sample_size", 0.0) or 1.0) / math.log(2)


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
