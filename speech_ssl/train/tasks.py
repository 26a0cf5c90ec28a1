"""The tasks the trainer runs, by name: one table from the ``task`` key of a run config to its config
class and its task class. ``speech-ssl pretrain`` runs ``pretrain``, ``speech-ssl finetune`` runs ``ctc``.

    cfg = load_task_config("ctc", "recipes/synth/conf/finetune.yaml", ["optim.max_update=200"])
    task = build_task(cfg, "recipes/synth/conf/finetune.yaml")
    Trainer(cfg, task, run_dir).train()

A new objective adds one row: a :class:`~speech_ssl.train.task.Task` subclass and its config class (a
:class:`~speech_ssl.train.config.TrainConfig`, subclassed when the task has its own YAML section).
"""

from __future__ import annotations

import re
from pathlib import Path

from speech_ssl.config import ConfigError
from speech_ssl.train.config import FINETUNE_MODEL_DEFAULTS, FinetuneConfig, TrainConfig, load_train_config
from speech_ssl.train.ctc_task import CTCTask
from speech_ssl.train.pretrain_task import PretrainTask
from speech_ssl.train.task import Task

TASKS: dict[str, tuple[type[TrainConfig], type[Task]]] = {
    "pretrain": (TrainConfig, PretrainTask),
    "ctc": (FinetuneConfig, CTCTask),
}


def _where(source: str | Path | None) -> str:
    return f"{source}: " if source is not None else ""


def load_task_config(task: str, path: str | Path | None, overrides: list[str] | tuple[str, ...] = ()) -> TrainConfig:
    """Read the config of a ``task`` run (its config class from :data:`TASKS`) with dotted overrides."""
    if task not in TASKS:
        raise ConfigError(f"unknown task {task!r} (known: {', '.join(TASKS)})")
    config_cls = TASKS[task][0]
    try:
        cfg = load_train_config(path, overrides, config_cls)
    except ConfigError as e:
        # Fine-tuning's backbone settings used to be keys of the finetune section.
        m = re.search(r"key 'finetune\.(\w+)': unknown key", str(e))
        if m and m.group(1) in FINETUNE_MODEL_DEFAULTS:
            raise ConfigError(f"{e}; backbone settings are model overrides now: model.overrides.{m.group(1)}") from None
        raise
    if cfg.task != task:
        raise ConfigError(f"{_where(path)}key 'task': this command runs task {task!r}, the config says {cfg.task!r}")
    return cfg


def build_task(cfg: TrainConfig, source: str | None = None) -> Task:
    """The task named by ``cfg.task`` (:data:`TASKS`), checked against its config class."""
    if cfg.task not in TASKS:
        raise ConfigError(f"{_where(source)}key 'task': unknown task {cfg.task!r} (known: {', '.join(TASKS)})")
    config_cls, task_cls = TASKS[cfg.task]
    if not isinstance(cfg, config_cls):
        raise ConfigError(
            f"{_where(source)}task {cfg.task!r} needs a {config_cls.__name__}, got a {type(cfg).__name__}"
        )
    return task_cls(cfg, source)
