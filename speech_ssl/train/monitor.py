"""Training health: metric lines (stderr + JSONL + TensorBoard), a progress bar, and alarms with advice.

Metric names follow fairseq's wav2vec criterion: losses in bits per masked frame (``loss`` = total,
``loss_contrastive``, ``loss_diversity``, ``loss_features_pen``), ``accuracy``, ``prob_perplexity``,
``code_perplexity``, ``temp``; the trainer adds ``lr``, ``gnorm``, ``audio_s_per_s``,
``audio_h_per_update``, ``mem_gb``, ``loss_scale``, ``skipped``.
"""

from __future__ import annotations

import json
import math
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from speech_ssl.train.config import LoggingConfig


@dataclass
class Alarm:
    name: str
    message: str


@dataclass
class AlarmChecker:
    """Watches reduced metrics for the classic wav2vec 2.0 failure modes.

    ``chance_bits``: log2(K+1) for K negatives (a loss stuck there learns nothing);
    ``num_codes``: G·V codebook entries (for code-perplexity collapse); ``warmup_end``: update count
    after which a loss at chance is alarming. Each alarm fires when its condition starts to hold and
    re-arms once it stops holding.
    """

    chance_bits: float | None = None
    num_codes: int | None = None
    warmup_end: int = 0
    stuck_tolerance_bits: float = 0.1
    stuck_patience: int = 500  # updates after warmup before a loss at chance is alarming
    collapse_fraction: float = 0.25  # code perplexity below this fraction of its best so far
    _active: set[str] = field(default_factory=set)
    _best_code_ppl: float = 0.0

    def check(self, num_updates: int, metrics: dict[str, float]) -> list[Alarm]:
        found: dict[str, str] = {}
        bad = sorted(k for k, v in metrics.items() if isinstance(v, float) and not math.isfinite(v))
        if bad:
            found["non_finite"] = (
                f"non-finite values in {', '.join(bad)} at update {num_updates}. Advice: lower the lr or "
                "lengthen the warmup, prefer bf16 over fp16, set optim.clip_norm, and check the audio for "
                "NaNs or empty files."
            )
        closs = metrics.get("loss_contrastive", metrics.get("loss"))
        if (
            self.chance_bits is not None
            and closs is not None
            and math.isfinite(closs)
            and num_updates >= max(2 * self.warmup_end, self.warmup_end + self.stuck_patience)
            and closs > self.chance_bits - self.stuck_tolerance_bits
        ):
            found["loss_at_chance"] = (
                f"contrastive loss {closs:.3f} bits is stuck at chance log2(K+1) = {self.chance_bits:.3f} "
                f"after warmup (update {num_updates}): nothing is being learned. Advice: lower the peak lr "
                "or lengthen the warmup; on small data/models use fewer negatives, shorter mask spans and a "
                "smaller codebook (see recipes/synth); check that the audio is not silence and that "
                "`normalize` matches the data."
            )
        cppl = metrics.get("code_perplexity")
        if cppl is not None and math.isfinite(cppl):
            self._best_code_ppl = max(self._best_code_ppl, cppl)
            floor = max(2.0, 0.02 * self.num_codes) if self.num_codes else 2.0
            if cppl < floor or (num_updates > self.warmup_end and cppl < self.collapse_fraction * self._best_code_ppl):
                found["code_collapse"] = (
                    f"code perplexity collapsed to {cppl:.1f} (best {self._best_code_ppl:.1f}"
                    + (f" of {self.num_codes} codes" if self.num_codes else "")
                    + "). Advice: raise the diversity loss weight (model loss_weights[0]), check the Gumbel "
                    "temperature schedule (min temperature not too low), lower the lr."
                )
        acc = metrics.get("accuracy")
        if acc is not None and closs is not None and acc > 0.99 and closs < 0.05:
            found["trivial_task"] = (
                f"accuracy {acc:.3f} with loss {closs:.3f} bits: the task became trivial. The target leaks "
                "into the context or the negatives are useless: check that masking is applied "
                "(mask_prob > 0), that negatives come from other frames, and that the codebook did not "
                "collapse (code_perplexity)."
            )
        new = [Alarm(k, v) for k, v in found.items() if k not in self._active]
        self._active = set(found)
        return new

    def check_valid(self, num_updates: int, metrics: dict[str, float]) -> list[Alarm]:  # noqa: ARG002
        """Alarms from a validation's metrics (tasks add their own); none by default."""
        return []


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        if v != 0 and (abs(v) < 1e-3 or abs(v) >= 1e5):
            return f"{v:.3e}"
        return f"{v:.4g}"
    return str(v)


class Monitor:
    """Writes metrics (only on rank 0): stderr lines, ``RUN/log.jsonl``, TensorBoard, a tqdm bar."""

    def __init__(
        self,
        run_dir: Path | None,
        cfg: LoggingConfig,
        is_main: bool,
        max_update: int,
        start_update: int = 0,
        alarms: AlarmChecker | None = None,
    ):
        self.cfg = cfg
        self.is_main = is_main
        self.alarms = alarms if cfg.alarms else None
        self.fired: list[Alarm] = []
        self._jsonl = None
        self._tb = None
        self._bar = None
        if not is_main:
            return
        if run_dir is not None:
            run_dir = Path(run_dir)
            run_dir.mkdir(parents=True, exist_ok=True)
            self._jsonl = open(run_dir / "log.jsonl", "a", buffering=1)
            if cfg.tensorboard:
                try:
                    from torch.utils.tensorboard import SummaryWriter

                    self._tb = SummaryWriter(str(run_dir / "tb"))
                except ImportError as e:  # tensorboard is not a dependency
                    self._tb = None
                    print(f"logging.tensorboard is on but TensorBoard cannot be used ({e}); the run logs to "
                          "log.jsonl only (pip install tensorboard, or logging.tensorboard=false)",
                          file=sys.stderr, flush=True)
        if cfg.progress_bar and sys.stderr.isatty() and not os.environ.get("SPEECH_SSL_NO_BAR"):
            from tqdm import tqdm

            self._bar = tqdm(total=max_update, initial=start_update, unit="upd", dynamic_ncols=True)

    def info(self, msg: str) -> None:
        if not self.is_main:
            return
        if self._bar is not None:
            self._bar.write(msg, file=sys.stderr)
        else:
            print(msg, file=sys.stderr, flush=True)

    def record(self, event: dict[str, Any]) -> None:
        if self._jsonl is not None:
            self._jsonl.write(json.dumps(event, allow_nan=True) + "\n")

    def log(self, split: str, num_updates: int, metrics: dict[str, float]) -> list[Alarm]:
        """Write one metrics line for ``split`` and return any new alarms (also written)."""
        new: list[Alarm] = []
        if self.alarms is not None and split == "train":
            new = self.alarms.check(num_updates, metrics)
        elif self.alarms is not None and split == "valid":
            new = self.alarms.check_valid(num_updates, metrics)
        if not self.is_main:
            return new
        self.record({"split": split, "update": num_updates, **metrics})
        line = " | ".join(f"{k} {_fmt(v)}" for k, v in metrics.items())
        self.info(f"[{split}] update {num_updates} | {line}")
        if self._tb is not None:
            for k, v in metrics.items():
                if isinstance(v, (int, float)):
                    self._tb.add_scalar(f"{split}/{k}", v, num_updates)
        for a in new:
            self.alarm(num_updates, a)
        return new

    def alarm(self, num_updates: int, a: Alarm) -> None:
        self.fired.append(a)
        if not self.is_main:
            return
        self.record({"alarm": a.name, "update": num_updates, "message": a.message})
        self.info(f"ALARM [{a.name}] {a.message}")

    def step(self, num_updates: int, postfix: dict[str, float] | None = None) -> None:
        if self._bar is None:
            return
        self._bar.n = num_updates
        if postfix:
            self._bar.set_postfix({k: _fmt(v) for k, v in postfix.items()}, refresh=False)
        self._bar.refresh()

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None
        if self._tb is not None:
            self._tb.close()
            self._tb = None
        if self._jsonl is not None:
            self._jsonl.close()
            self._jsonl = None
