"""Open a model from any supported format: our checkpoint, an HF folder, or a fairseq ``.pt``."""

from __future__ import annotations

import json
from pathlib import Path

from torch import nn

from speech_ssl.errors import DataError
from speech_ssl.interop.fairseq import load_fairseq
from speech_ssl.interop.hf import load_hf
from speech_ssl.models.checkpoint import load_model

FORMATS = ("speech_ssl", "hf", "fairseq")


def detect_format(path: str | Path) -> str:
    """'speech_ssl', 'hf' or 'fairseq' from what is at ``path`` (DataError when none fits)."""
    p = Path(path)
    if p.suffix == ".safetensors":
        return "speech_ssl"
    if p.suffix == ".pt" and p.is_file():
        return "fairseq"
    cfg = p / "config.json"
    if p.is_dir() and cfg.is_file():
        try:
            meta = json.loads(cfg.read_text())
        except json.JSONDecodeError as e:
            raise DataError(f"invalid JSON: {e.msg}", cfg, e.lineno) from e
        if isinstance(meta, dict) and str(meta.get("format", "")).startswith("speech_ssl"):
            return "speech_ssl"
        if isinstance(meta, dict) and "model_type" in meta:
            return "hf"
        raise DataError("config.json is neither a speech_ssl checkpoint nor an HF transformers config", cfg)
    if not p.exists():
        raise DataError("no such checkpoint", p)
    raise DataError("not a checkpoint: expected a folder with config.json, a .safetensors file or a "
                    "fairseq .pt", p)


def load_any(path: str | Path, fmt: str | None = None) -> nn.Module:
    """Our model (Wav2Vec2Model / ForPretraining / ForCTC) from ``path`` in format ``fmt`` (auto-detected). A
    fairseq ``x.pt`` takes its vocabulary from ``dict.x.txt`` beside it when there is one (fairseq keeps it apart)."""
    fmt = fmt or detect_format(path)
    if fmt == "speech_ssl":
        return load_model(path)
    if fmt == "hf":
        return load_hf(path)
    if fmt == "fairseq":  # a fine-tuned .pt's vocabulary: the dict.<name>.txt that save_fairseq writes beside it
        beside = Path(path).with_name(f"dict.{Path(path).stem}.txt")
        return load_fairseq(path, beside if beside.is_file() else None)
    raise ValueError(f"unknown format {fmt!r} (known: {FORMATS})")
