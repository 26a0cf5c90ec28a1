"""A randomly initialised pretraining checkpoint with another checkpoint's architecture.

    random_like("recipes/synth/pretrained", "exp/random/s1", seed=1)

The from-scratch and random-frozen fine-tuning conditions start from it, so that they go through exactly
the same code path (``finetune.pretrained=...``) and architecture as the pretrained condition.
Also runnable: ``python -m speech_ssl.demo.init LIKE OUT [--seed N]``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def random_like(like: str | Path, out: str | Path, seed: int = 1) -> Path:
    import torch

    from speech_ssl.models.checkpoint import build_model, read_checkpoint_config, save_model

    out = Path(out)
    if (out / "model.safetensors").exists() and (out / "config.json").exists():
        return out
    meta = read_checkpoint_config(like)
    torch.manual_seed(seed)
    model = build_model({**meta, "architecture": "Wav2Vec2ForPretraining"}, str(like))
    save_model(model, out)
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m speech_ssl.demo.init", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("like")
    p.add_argument("out")
    p.add_argument("--seed", type=int, default=1)
    a = p.parse_args(argv)
    print(random_like(a.like, a.out, a.seed))
    return 0


if __name__ == "__main__":
    sys.exit(main())
