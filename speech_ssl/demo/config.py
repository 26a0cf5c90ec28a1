"""The demo's settings: one typed dataclass, a full and a ``--quick`` preset, YAML/dotted overrides.

    cfg = demo_config(quick=True, overrides=["finetune_seconds=30"])
"""

from __future__ import annotations

from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

from speech_ssl.config import load_config

# Package data (installed with the wheel; recipes/synth links to it): the recipe's two configs, the shipped
# multilingual checkpoint recipes/synth stage 3 makes, the English-only one (its PROVENANCE.md has the
# budget) and the recipe's committed seed sweep of the left-out language.
ASSETS = Path(str(resources.files("speech_ssl.demo") / "assets"))
CONF = ASSETS / "conf"
SHIPPED = ASSETS / "pretrained"
SHIPPED_MONO = ASSETS / "pretrained_mono"


@dataclass
class DemoConfig:
    """What ``speech-ssl demo`` runs. Times are wall-clock seconds on the machine it runs on."""

    out: str = "demo_out"
    quick: bool = False
    seeds: list[int] = field(default_factory=lambda: [1, 2])
    # torch threads per process (the demo runs one at a time). 1 by default: on a 2-core box shared with
    # anything else, 2 threads ran 8x slower than 1 (measured; see recipes/synth/README.md).
    threads: int = 1
    device: str = "cpu"
    # -- corpus (speech-ssl prepare synth)
    languages: list[str] = field(default_factory=lambda: ["en", "de", "fr", "es", "it", "nl", "pt", "ru", "sv",
                                                          "tr", "et", "fi"])
    left_out: str = "fi"  # never seen in pretraining (Estonian, its neighbour, is); fine-tuned on phones (PER)
    left_out_eval_minutes: float = 2.0  # its dev and test audio, each (~35 utterances: enough for a seed spread)
    english_minutes: float = 14.0  # LibriSpeech layout; the 10-minute split is cut from its train part
    minutes_per_language: float = 3.0
    labelled_seconds: float = 600.0  # "10 minutes" of English labels
    synth_workers: int = 0  # 0: all cores
    # -- pretraining
    pretrained: str = "auto"  # auto: the shipped checkpoint (package data) when present; none: pretrain here; or a path
    pretrain_seconds: float = 150.0  # own pretraining (curves; the fine-tuning init when nothing is shipped)
    pretrain_max_update: int = 1500
    pretrain_overrides: list[str] = field(default_factory=list)
    # -- fine-tuning: every condition of a language gets the same wall time
    finetune_seconds: float = 150.0
    finetune_left_out_seconds: float = 55.0  # 60 took the full demo to 1,805-1,833 s of its 30 minutes
    finetune_overrides: list[str] = field(default_factory=list)
    # -- decoding
    lm_order: int = 3
    lm: bool = True
    lm_beam: int = 100
    tune_lm_weights: list[float] = field(default_factory=lambda: [0.0, 0.5, 1.0, 2.0, 3.0])
    tune_word_scores: list[float] = field(default_factory=lambda: [-1.0, 0.0, 1.0, 2.0])
    code_usage_utterances: int = 15  # per language, for the PCA figure (30 took 44 s of a 30-min budget)


QUICK = dict(
    quick=True,
    seeds=[1],
    languages=["en", "de", "fr", "es", "fi"],
    english_minutes=5.0,
    minutes_per_language=1.0,
    left_out_eval_minutes=0.5,
    labelled_seconds=120.0,
    pretrain_seconds=45.0,
    pretrain_max_update=120,
    pretrain_overrides=["data.max_tokens=128000", "data.max_sample_size=16000", "schedule.warmup_updates=10"],
    finetune_seconds=30.0,
    finetune_left_out_seconds=20.0,
    tune_lm_weights=[0.5, 1.0, 2.0],
    tune_word_scores=[-1.0, 0.0, 1.0],
    code_usage_utterances=12,
)


def demo_config(quick: bool = False, path: str | None = None, overrides: list[str] | None = None) -> DemoConfig:
    """The full (or quick) preset, then a YAML file, then ``key=value`` overrides (ConfigError on bad keys)."""
    base = [f"{k}={_yaml(v)}" for k, v in QUICK.items()] if quick else []
    return load_config(DemoConfig, path, base + list(overrides or []))


def _yaml(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, list):
        return "[" + ",".join(repr(x) if isinstance(x, str) else str(x) for x in v) + "]"
    return str(v)
