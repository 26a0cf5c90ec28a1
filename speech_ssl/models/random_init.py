"""A randomly initialised pretraining checkpoint with another checkpoint's architecture.

    random_like("recipes/synth/pretrained", "exp/random/s1", seed=1)

The from-scratch and random-frozen fine-tuning conditions of recipes/synth and the demo start from it, so
that they go through exactly the same code path (``finetune.pretrained=...``) and architecture as the
pretrained condition. Command line: ``speech-ssl init LIKE OUT [--seed N]``.
"""

from __future__ import annotations

from pathlib import Path

import torch

from speech_ssl.models.checkpoint import build_model, read_checkpoint_config, save_model


def random_like(like: str | Path, out: str | Path, seed: int = 1) -> Path:
    """Write ``out`` (model.safetensors + config.json): a ``Wav2Vec2ForPretraining`` with ``like``'s model
    config and weights drawn after ``torch.manual_seed(seed)``. An existing ``out`` is kept as it is."""
    out = Path(out)
    if (out / "model.safetensors").exists() and (out / "config.json").exists():
        return out
    meta = read_checkpoint_config(like)
    torch.manual_seed(seed)
    model = build_model({**meta, "architecture": "Wav2Vec2ForPretraining"}, str(like))
    save_model(model, out)
    return out
