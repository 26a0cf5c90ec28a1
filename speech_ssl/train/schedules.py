"""Learning-rate and Gumbel-temperature schedules, as pure functions of the update count.

Each schedule maps ``num_updates`` (the number of optimizer updates already done, i.e. the index of
the update about to run) to a value, so resuming needs nothing but the update count.

fairseq semantics:
- ``polynomial_decay``: linear warmup ``lr * n / warmup`` (the very first update uses
  ``lr / warmup``, as fairseq sets that at construction), then
  ``(lr - end_lr) * (1 - (n - warmup) / (total - warmup)) ** power + end_lr``, and ``end_lr`` from
  ``total`` on.
- ``tri_stage``: phases (warmup, hold, decay) given as ratios of ``max_update`` (or explicit step
  counts); warmup linear from ``init_lr_scale * lr`` to ``lr``, hold at ``lr``, exponential decay to
  ``final_lr_scale * lr``, then constant ``final_lr_scale * lr``.
- Gumbel temperature: ``max(max_temp * decay ** n, min_temp)``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal


@dataclass
class ScheduleConfig:
    """How the learning rate moves with the update count."""

    name: Literal["polynomial_decay", "tri_stage", "constant"] = "polynomial_decay"
    warmup_updates: int = 32000  # polynomial_decay
    end_lr: float = 0.0  # polynomial_decay
    power: float = 1.0  # polynomial_decay
    total_updates: int | None = None  # polynomial_decay; None -> run.max_update
    # tri_stage: fractions of max_update for warmup/hold/decay (fairseq phase_ratio), or explicit steps
    phase_ratio: tuple[float, float, float] | None = (0.1, 0.4, 0.5)
    warmup_steps: int = 0
    hold_steps: int = 0
    decay_steps: int = 0
    init_lr_scale: float = 0.01
    final_lr_scale: float = 0.05

    def __post_init__(self) -> None:
        if self.warmup_updates < 0:
            raise ValueError(f"warmup_updates must be >= 0, got {self.warmup_updates}")
        if self.phase_ratio is not None:
            if any(r < 0 for r in self.phase_ratio) or abs(sum(self.phase_ratio) - 1.0) > 1e-6:
                raise ValueError(f"phase_ratio must be 3 non-negative fractions summing to 1, got {self.phase_ratio}")
        if not (0 < self.final_lr_scale <= 1) and self.name == "tri_stage":
            raise ValueError(f"final_lr_scale must be in (0, 1], got {self.final_lr_scale}")


def polynomial_decay_lr(
    num_updates: int, lr: float, warmup_updates: int, total_updates: int, end_lr: float = 0.0, power: float = 1.0
) -> float:
    """fairseq ``polynomial_decay``: the lr used by the update with index ``num_updates``."""
    if warmup_updates > 0 and num_updates <= warmup_updates:
        return lr * max(num_updates, 1) / warmup_updates
    if num_updates >= total_updates:
        return end_lr
    span = total_updates - warmup_updates
    remaining = 1.0 - (num_updates - warmup_updates) / span
    return (lr - end_lr) * remaining**power + end_lr


def tri_stage_steps(cfg: ScheduleConfig, max_update: int) -> tuple[int, int, int]:
    """(warmup, hold, decay) step counts: from ``phase_ratio`` when set, else the explicit counts."""
    if cfg.phase_ratio is not None:
        return tuple(int(max_update * r) for r in cfg.phase_ratio)  # type: ignore[return-value]
    return cfg.warmup_steps, cfg.hold_steps, cfg.decay_steps


def tri_stage_lr(
    num_updates: int,
    lr: float,
    warmup: int,
    hold: int,
    decay: int,
    init_lr_scale: float = 0.01,
    final_lr_scale: float = 0.05,
) -> float:
    """fairseq ``tri_stage``: linear warmup from ``init_lr_scale*lr``, hold, exponential decay."""
    init_lr = init_lr_scale * lr
    final_lr = final_lr_scale * lr
    n = num_updates
    if n < warmup:
        return init_lr + (lr - init_lr) / warmup * n
    n -= warmup
    if n < hold:
        return lr
    n -= hold
    if n <= decay:
        decay_factor = -math.log(final_lr_scale) / decay if decay > 0 else 0.0
        return lr * math.exp(-decay_factor * n)
    return final_lr


def lr_at(cfg: ScheduleConfig, num_updates: int, lr: float, max_update: int) -> float:
    """The learning rate for the update with index ``num_updates`` under schedule ``cfg``."""
    if cfg.name == "constant":
        return lr
    if cfg.name == "polynomial_decay":
        total = cfg.total_updates if cfg.total_updates is not None else max_update
        return polynomial_decay_lr(num_updates, lr, cfg.warmup_updates, total, cfg.end_lr, cfg.power)
    if cfg.name == "tri_stage":
        w, h, d = tri_stage_steps(cfg, max_update)
        return tri_stage_lr(num_updates, lr, w, h, d, cfg.init_lr_scale, cfg.final_lr_scale)
    raise ValueError(f"unknown schedule {cfg.name!r}")


def warmup_end(cfg: ScheduleConfig, max_update: int) -> int:
    """The update count at which warmup is over (used by the monitor's alarms)."""
    if cfg.name == "polynomial_decay":
        return cfg.warmup_updates
    if cfg.name == "tri_stage":
        return tri_stage_steps(cfg, max_update)[0]
    return 0
