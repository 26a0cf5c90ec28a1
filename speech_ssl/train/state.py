"""Training state: what a checkpoint holds besides the weights, and how a run resumes from it.

``train_state.pt`` (written by :func:`speech_ssl.train.checkpoint.save_checkpoint`) is a dict of tensors
and plain values::

    version, num_updates, optimizer, scaler, data {epoch, offset}, rng [one per rank], world_size,
    update_freq, best, skipped, seed

The optimizer state is keyed by *parameter name* (``state`` and each group's ``params``), the same with
DDP and FSDP (gathered in full), so a checkpoint survives a change of strategy and the order of the
AdamW groups (one per ``task.lr_scale``) is checked by name on resume. Resuming with another world size
rescales the data position and says that the run is no longer bit-exact.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import torch
import yaml
from torch import nn

from speech_ssl.config import to_dict
from speech_ssl.train.checkpoint import STATE, CheckpointError, list_checkpoints, resolve_resume
from speech_ssl.train.config import TrainConfig
from speech_ssl.train.distributed import DistInfo, set_rng_state

STATE_VERSION = 1


def find_resume_checkpoint(resume: bool | str | Path | None, run_dir: Path | None, log: Callable[[str], None]) -> Path | None:
    """The checkpoint ``--resume`` names: ``True`` -> the newest in ``run_dir/checkpoints`` (None, said in
    the log, when there is none yet); a path -> that checkpoint folder or another run directory's newest."""
    if not resume:
        return None
    if resume is not True:
        return resolve_resume(Path(resume))
    if run_dir is None:
        raise ValueError("resume=True needs a run directory")
    if list_checkpoints(run_dir / "checkpoints"):
        return resolve_resume(run_dir)
    log(f"--resume: no checkpoint in {run_dir / 'checkpoints'}; starting from scratch")
    return None


def _flatten(d: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(d, dict):
        out: dict[str, Any] = {}
        for k, v in d.items():
            out.update(_flatten(v, f"{prefix}{k}."))
        return out
    return {prefix[:-1]: d}


def config_changes(saved: Path, cfg: TrainConfig, keys: Callable[[str], bool] = lambda key: True) -> list[str]:
    """``key: old -> new`` for every setting (of those ``keys`` accepts) that differs from the run directory's
    ``config.yaml``."""
    if not Path(saved).is_file():
        return []
    try:
        old = _flatten(yaml.safe_load(Path(saved).read_text()) or {})
    except yaml.YAMLError:
        return [f"{saved} is not valid YAML"]
    new = _flatten(to_dict(cfg))
    return [f"{k}: {old.get(k)!r} -> {new.get(k)!r}" for k in sorted(set(old) | set(new))
            if old.get(k) != new.get(k) and keys(k)]


# Settings that say how a run is carried out, not what it learns: a finished run invoked again with other
# values of these is still the run asked for (a new device, more loader workers, other log intervals).
OPERATIONAL_KEYS = (
    "device", "data.num_workers", "data.valid", "data.valid_max_tokens", "data.max_valid_batches",
    "checkpoint.", "distributed.", "logging.", "precision.min_loss_scale", "precision.max_consecutive_nonfinite",
    "finetune.all_blank_", "finetune.stuck_", "finetune.blank_free_updates",
)


def finished_run_conflicts(saved: Path, cfg: TrainConfig) -> list[str]:
    """The :func:`config_changes` that change what a run learns (every key but :data:`OPERATIONAL_KEYS`):
    a finished run invoked with any of them was not trained with the settings asked for."""
    def learned(key: str) -> bool:
        return not any(key == k or (k.endswith((".", "_")) and key.startswith(k)) for k in OPERATIONAL_KEYS)

    return config_changes(saved, cfg, learned)


# ---------------------------------------------------------------------------------------------------------
# optimizer state by parameter name
@dataclass
class ParamGroups:
    """The trainable parameters in AdamW groups, one per distinct lr multiple."""

    groups: list[dict[str, Any]]  # torch.optim groups: {"params": [...], "lr_scale": s}
    names: list[str]  # parameter names in the optimizer's order (state dicts are keyed by them)
    lr_scales: list[float]  # by group index: a resumed optimizer state cannot override them

    def describe(self) -> str:
        return ", ".join(f"lr x {s:g}: {len(g['params'])} tensors" for s, g in zip(self.lr_scales, self.groups))


def group_parameters(model: nn.Module, lr_scale: Callable[[str], float]) -> ParamGroups:
    """Group ``model``'s trainable parameters by ``lr_scale(name)`` (first-seen order of the scales).

    ``model`` is the unwrapped model: DDP wraps it and FSDP2 shards it in place, so its parameters are
    the optimizer's."""
    groups: dict[float, list[tuple[str, nn.Parameter]]] = {}
    for name, p in model.named_parameters():
        if p.requires_grad:
            groups.setdefault(float(lr_scale(name)), []).append((name, p))
    return ParamGroups(
        groups=[{"params": [p for _, p in g], "lr_scale": s} for s, g in groups.items()],
        names=[n for g in groups.values() for n, _ in g],
        lr_scales=list(groups),
    )


def optimizer_state_by_name(model: nn.Module, optimizer: torch.optim.Optimizer, names: list[str], fsdp: bool) -> dict[str, Any]:
    """The optimizer state keyed by parameter name (the same layout with DDP and FSDP); a collective under FSDP."""
    if not fsdp:
        sd = optimizer.state_dict()
        return {
            "state": {names[i]: v for i, v in sd["state"].items()},
            "param_groups": [dict(g, params=[names[i] for i in g["params"]]) for g in sd["param_groups"]],
        }
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_optimizer_state_dict

    return get_optimizer_state_dict(model, optimizer, options=StateDictOptions(full_state_dict=True, cpu_offload=True))


def load_optimizer_state_by_name(
    model: nn.Module, optimizer: torch.optim.Optimizer, sd: dict[str, Any], names: list[str], fsdp: bool, path: Path
) -> None:
    """Load a state saved by :func:`optimizer_state_by_name`; a mismatch is a :class:`CheckpointError` on ``path``."""
    if fsdp:
        from torch.distributed.checkpoint.state_dict import StateDictOptions, set_optimizer_state_dict

        set_optimizer_state_dict(model, optimizer, sd, options=StateDictOptions(full_state_dict=True))
        return
    try:
        index = {n: i for i, n in enumerate(names)}
        optimizer.load_state_dict({
            "state": {index[k]: v for k, v in sd["state"].items()},
            "param_groups": [dict(g, params=[index[n] for n in g["params"]]) for g in sd["param_groups"]],
        })
    except (ValueError, KeyError) as e:
        raise CheckpointError(
            f"optimizer state does not match this model: {e} (use --init-from for weights only)", path
        ) from e


def full_model_state(model: nn.Module, fsdp: bool) -> dict[str, torch.Tensor] | None:
    """Under FSDP the full (gathered, CPU) model state dict, a collective; None otherwise (the weights are
    then saved straight from the model)."""
    if not fsdp:
        return None
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

    return get_model_state_dict(model, options=StateDictOptions(full_state_dict=True, cpu_offload=True))


# ---------------------------------------------------------------------------------------------------------
# train_state.pt
def train_state(
    *,
    num_updates: int,
    optimizer: dict[str, Any],
    scaler: torch.amp.GradScaler,
    data: dict[str, int],
    rngs: list[Any],
    world_size: int,
    update_freq: int,
    best: float | None,
    skipped: int,
    seed: int,
) -> dict[str, Any]:
    """The ``train_state.pt`` dict (``optimizer`` from :func:`optimizer_state_by_name`, ``rngs`` of every rank)."""
    return {
        "version": STATE_VERSION,
        "num_updates": num_updates,
        "optimizer": optimizer,
        "scaler": scaler.state_dict() if scaler.is_enabled() else {},
        "data": data,
        "rng": rngs,
        "world_size": world_size,
        "update_freq": update_freq,
        "best": best,
        "skipped": skipped,
        "seed": seed,
    }


@dataclass
class ResumePoint:
    """Where a resumed run continues."""

    num_updates: int
    skipped: int
    best: float | None
    epoch: int
    offset: int  # batches of ``epoch`` already taken by this rank


def restore_train_state(
    state: dict[str, Any],
    ckpt: Path,
    *,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    names: list[str],
    fsdp: bool,
    scaler: torch.amp.GradScaler,
    info: DistInfo,
    update_freq: int,
    log: Callable[[str], None],
) -> ResumePoint:
    """Load the optimizer and scaler state of ``state`` (from ``ckpt``) and this rank's RNG state (when the
    world size is unchanged); return the counters and the data position to continue from."""
    W = info.world_size
    load_optimizer_state_by_name(model, optimizer, state["optimizer"], names, fsdp, Path(ckpt) / STATE)
    if scaler.is_enabled() and state.get("scaler"):
        scaler.load_state_dict(state["scaler"])
    data = state.get("data", {"epoch": 1, "offset": 0})
    old_w = int(state.get("world_size", W))
    offset = int(data["offset"])
    if old_w != W:
        offset = offset * old_w // W
        log(
            f"resuming with {W} ranks instead of {old_w}: the data order and the effective batch change; "
            "the run continues but not bit-exactly"
        )
    old_uf = int(state.get("update_freq", update_freq))
    if old_uf * old_w != update_freq * W:
        log(f"effective batch changed: {old_w} ranks x update_freq {old_uf} before, {W} x {update_freq} now")
    rngs = state.get("rng") or []
    if len(rngs) == W:
        set_rng_state(rngs[info.rank])
    return ResumePoint(
        num_updates=int(state["num_updates"]),
        skipped=int(state.get("skipped", 0)),
        best=state.get("best"),
        epoch=int(data["epoch"]),
        offset=offset,
    )
