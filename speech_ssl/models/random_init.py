"""A randomly initialised pretraining checkpoint with another checkpoint's architecture.

    random_like("recipes/synth/pretrained", "exp/random/s1", seed=1)

The from-scratch and random-frozen fine-tuning conditions of recipes/synth and the demo start from it, so
that they go through exactly the same code path (``finetune.pretrained=...``) and architecture as the
pretrained condition. Command line: ``speech-ssl init LIKE OUT [--seed N]``.
"""

from __future__ import annotations

from pathlib import Path

import torch

from speech_ssl.errors import DataError
from speech_ssl.files import output_dir
from speech_ssl.models.checkpoint import build_model, read_checkpoint_config, save_model


def random_like(like: str | Path, out: str | Path, seed: int = 1) -> Path:
    """Write ``out`` (model.safetensors + config.json): a ``Wav2Vec2ForPretraining`` with ``like``'s model
    config and weights drawn after ``torch.manual_seed(seed)``. An existing ``out`` made with the same seed and
    architecture is kept as it is; one made otherwise is a DataError (not silently kept)."""
    meta = read_checkpoint_config(like)
    out = output_dir(out)
    if (out / "model.safetensors").exists() and (out / "config.json").exists():
        have = read_checkpoint_config(out)
        made = (have.get("extra") or {}).get("random_init")  # absent in folders from before it was recorded
        if made is not None and (made.get("seed") != seed or have.get("model") != meta.get("model")):
            what = f"seed {made.get('seed')}" if made.get("seed") != seed else "another architecture"
            raise DataError(f"holds a random model made with {what}; remove it or choose another OUT (asked: seed "
                            f"{seed}, the architecture of {like})", out)
        return out
    torch.manual_seed(seed)
    model = build_model({**meta, "architecture": "Wav2Vec2ForPretraining"}, str(like))
    save_model(model, out, extra={"random_init": {"seed": seed}})
    return out
