"""Our model checkpoints: ``model.safetensors`` + ``config.json`` (architecture, model config, CTC vocab).

A checkpoint is a folder holding both files, or a file prefix: ``run/best.safetensors`` with
``run/best.json`` beside it. Both files are written atomically (tmp + rename). Loading reads JSON and
safetensors only: nothing is unpickled.

    save_model(model, "exp/pretrain/final")
    model = load_model("exp/pretrain/final")            # the saved architecture
    backbone = load_backbone("exp/finetune/best")        # Wav2Vec2Model from any of the three
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save
from torch import nn

from speech_ssl.config import ConfigError, from_dict, to_dict
from speech_ssl.errors import DataError
from speech_ssl.files import atomic_write_bytes
from speech_ssl.models.config import Wav2Vec2Config
from speech_ssl.models.wav2vec2 import Wav2Vec2ForCTC, Wav2Vec2ForPretraining, Wav2Vec2Model

FORMAT = "speech_ssl.wav2vec2"
FORMAT_VERSION = 1
ARCHITECTURES = ("Wav2Vec2Model", "Wav2Vec2ForPretraining", "Wav2Vec2ForCTC")


def checkpoint_paths(path: str | Path) -> tuple[Path, Path]:
    """(weights, config) paths for a folder or a ``.safetensors`` file prefix (``x.safetensors`` + ``x.json``;
    a folder's own ``model.safetensors`` named directly goes with the folder's ``config.json``)."""
    p = Path(path)
    if p.suffix == ".safetensors":
        folder_cfg = p.parent / "config.json"
        if p.name == "model.safetensors" and not p.with_suffix(".json").exists() and folder_cfg.is_file():
            return p, folder_cfg
        return p, p.with_suffix(".json")
    return p / "model.safetensors", p / "config.json"


def save_state_dict(state: dict[str, torch.Tensor], path: Path, metadata: dict[str, str] | None = None) -> None:
    """safetensors file written atomically (tensors made contiguous and moved to CPU)."""
    tensors = {k: v.detach().to("cpu").contiguous() for k, v in state.items()}
    atomic_write_bytes(path, save(tensors, metadata=metadata))


def load_state_dict(path: Path) -> dict[str, torch.Tensor]:
    if not path.is_file():
        raise DataError("weights file not found", path)
    try:
        return load_file(str(path))
    except (SafetensorError, OSError, ValueError) as e:
        raise DataError(f"cannot read safetensors: {e}", path) from e


def architecture_of(model: nn.Module) -> str:
    name = type(model).__name__
    if name not in ARCHITECTURES:
        raise TypeError(f"cannot save a {name}; expected one of {ARCHITECTURES}")
    return name


def save_model(model: nn.Module, path: str | Path, extra: dict | None = None) -> Path:
    """Write ``model`` (Wav2Vec2Model / ForPretraining / ForCTC) to a folder or ``.safetensors`` prefix.
    ``extra`` (JSON-able) is stored under ``"extra"`` in the config, with ``normalize`` from the model's
    ``normalize_input`` unless ``extra`` names it. Returns the weights path."""
    weights, cfg_path = checkpoint_paths(path)
    weights.parent.mkdir(parents=True, exist_ok=True)
    arch = architecture_of(model)
    meta = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "architecture": arch,
        "model": to_dict(model.cfg),
    }
    if isinstance(model, Wav2Vec2ForCTC):
        meta["vocab_size"] = model.vocab_size
        meta["vocab"] = model.vocab
        meta["freeze_finetune_updates"] = model.freeze_finetune_updates
    extra = dict(extra or {})
    if getattr(model, "normalize_input", None) is not None:
        extra.setdefault("normalize", bool(model.normalize_input))
    if extra:
        meta["extra"] = extra
    # One metadata key: safetensors writes a metadata map in random order, and the file should be
    # byte-reproducible (the architecture is in config.json).
    save_state_dict(model.state_dict(), weights, metadata={"format": "pt"})
    atomic_write_bytes(cfg_path, (json.dumps(meta, indent=2) + "\n").encode())
    return weights


def read_checkpoint_config(path: str | Path) -> dict:
    """The parsed ``config.json`` of a checkpoint (DataError naming the file when it is not ours)."""
    if Path(path).is_file() and Path(path).suffix == ".pt":
        raise DataError("a fairseq checkpoint, not ours: convert it first (`speech-ssl convert --from fairseq "
                        f"{path} --to speech_ssl DIR`)", path)
    _, cfg_path = checkpoint_paths(path)
    if not cfg_path.is_file():
        raise DataError("checkpoint config not found (expected model.safetensors + config.json)", cfg_path)
    try:
        meta = json.loads(cfg_path.read_text())
    except json.JSONDecodeError as e:
        raise DataError(f"invalid JSON: {e.msg}", cfg_path, e.lineno) from e
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        hint = " (an HF transformers folder? use `speech-ssl convert --from hf`)" if isinstance(meta, dict) and \
            meta.get("model_type") else ""
        raise DataError(f"not a speech_ssl checkpoint config (missing \"format\": \"{FORMAT}\"){hint}", cfg_path)
    if meta.get("architecture") not in ARCHITECTURES:
        raise DataError(f"unknown architecture {meta.get('architecture')!r} (known: {ARCHITECTURES})", cfg_path)
    return meta


def build_model(meta: dict, source: str | None = None) -> nn.Module:
    """An uninitialised-weights model from a checkpoint config mapping."""
    try:
        cfg = from_dict(Wav2Vec2Config, meta.get("model"), source)
    except ConfigError as e:
        raise DataError(str(e), source) from e
    arch = meta["architecture"]
    if arch == "Wav2Vec2Model":
        return Wav2Vec2Model(cfg)
    if arch == "Wav2Vec2ForPretraining":
        return Wav2Vec2ForPretraining(cfg)
    return Wav2Vec2ForCTC(cfg, int(meta["vocab_size"]), meta.get("vocab"),
                          int(meta.get("freeze_finetune_updates", 0)))


def mismatch_report(missing: list[str], unexpected: list[str], shapes: list[str], show: int = 5) -> str:
    """One line per kind of mismatch (the non-empty ones), each with its count and the first ``show``
    keys: ``"\n  3 missing: a, b, c"`` ... for the errors of every strict loader."""

    def line(kind: str, keys: list[str]) -> str:
        more = f", ... ({len(keys) - show} more)" if len(keys) > show else ""
        return f"\n  {len(keys)} {kind}: {', '.join(keys[:show])}{more}"

    parts = [line(kind, keys) for kind, keys in
             (("missing", missing), ("unexpected", unexpected), ("shape mismatches", shapes)) if keys]
    return "".join(parts)


def compare_shapes(expected: dict[str, tuple], found: dict[str, tuple]) -> str:
    """``mismatch_report`` of parameter shapes ``found`` (a file) against ``expected`` (a model); "" if equal."""
    missing = sorted(set(expected) - set(found))
    unexpected = sorted(set(found) - set(expected))
    shapes = [f"{k} (file {tuple(found[k])}, model {tuple(expected[k])})"
              for k in expected if k in found and tuple(found[k]) != tuple(expected[k])]
    return mismatch_report(missing, unexpected, shapes)


def stored_shapes(weights: Path) -> dict[str, tuple]:
    """Parameter shapes from a safetensors header, without reading the tensors."""
    if not weights.is_file():
        raise DataError("weights file not found", weights)
    try:
        with safe_open(str(weights), framework="pt") as f:
            return {k: tuple(f.get_slice(k).get_shape()) for k in f.keys()}
    except SafetensorError as e:
        raise DataError(f"cannot read safetensors: {e}", weights) from None


def check_checkpoint(path: str | Path) -> dict:
    """Check that a checkpoint's weights are what its ``config.json`` describes (from the safetensors header
    and a model built on the meta device: nothing is allocated); returns the config. DataError otherwise."""
    weights, cfg_path = checkpoint_paths(path)
    meta = read_checkpoint_config(path)
    with torch.device("meta"):
        skeleton = build_model(meta, str(cfg_path))
    report = compare_shapes({k: tuple(v.shape) for k, v in skeleton.state_dict().items()}, stored_shapes(weights))
    if report:
        raise DataError(f"weights do not match {cfg_path.name} (architecture {meta['architecture']}):{report}", weights)
    return meta


def load_model(path: str | Path, map_location: str | torch.device = "cpu") -> nn.Module:
    """Rebuild the saved model and load its weights (strict: every key and shape must match).

    :func:`check_checkpoint` runs first, so a config that names a much bigger architecture than its weights
    is an error before any memory is allocated."""
    weights, cfg_path = checkpoint_paths(path)
    meta = check_checkpoint(path)
    model = build_model(meta, str(cfg_path))
    model.load_state_dict(load_state_dict(weights), strict=True)
    normalize = (meta.get("extra") or {}).get("normalize")
    model.normalize_input = None if normalize is None else bool(normalize)
    return model.to(map_location)


def model_normalize(model, normalize: bool | None = None) -> bool:
    """Whether to normalise the input waveform: ``normalize`` when given, else what the model was trained with
    (``model.normalize_input``, recorded in its checkpoint), else False (fairseq's default)."""
    if normalize is not None:
        return bool(normalize)
    return bool(getattr(model, "normalize_input", None))


def load_backbone(path: str | Path, map_location: str | torch.device = "cpu") -> Wav2Vec2Model:
    """The Wav2Vec2Model inside any of our checkpoints."""
    model = load_model(path, map_location)
    return model if isinstance(model, Wav2Vec2Model) else model.wav2vec2
