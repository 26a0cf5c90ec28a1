"""``speech-ssl embed --checkpoint CK --layer N --out OUT.npy AUDIO``: one file's hidden states."""

from __future__ import annotations

import argparse


def add_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "embed", help="write one audio file's layer-N hidden states as a float32 (frames x dim) .npy",
        description="Layer N means exactly HF transformers' hidden_states[N] for the same weights: 0 is the "
                    "input of the first Transformer layer, N the output of layer N (before the final "
                    "LayerNorm of pre-LN models); 'last' is the model output (after that LayerNorm).",
    )
    p.add_argument("--checkpoint", required=True,
                   help="our checkpoint folder / .safetensors, an HF Wav2Vec2 folder, or a fairseq .pt")
    p.add_argument("--layer", default=None, help="0..num_layers or 'last' (default: num_layers)")
    p.add_argument("--out", required=True, help="output .npy path")
    p.add_argument("--normalize", action="store_true",
                   help="per-utterance zero mean / unit variance (use for models trained with normalize=True, "
                        "e.g. LARGE LV-60 and XLSR)")
    p.add_argument("--device", default="cpu")
    p.add_argument("audio", help="audio file (any format soundfile reads; resampled to 16 kHz mono)")
    p.set_defaults(func=run)


def embed_file(model, audio: str, layer: int | str | None, normalize: bool = False, device: str = "cpu"):
    """(frames, dim) float32 numpy array of ``model``'s layer ``layer`` for one file."""
    import torch

    from speech_ssl.data.audio import read_audio

    backbone = model.wav2vec2 if hasattr(model, "wav2vec2") else model
    backbone = backbone.to(device).eval()
    L = backbone.cfg.encoder_layers
    if layer is None:
        layer = L
    if layer != "last":
        try:
            layer = int(layer)
        except ValueError:
            raise ValueError(f"--layer must be an integer 0..{L} or 'last', got {layer!r}") from None
        if not 0 <= layer <= L:
            raise ValueError(f"--layer {layer} out of range: this model has layers 0..{L}")
    wav = read_audio(audio, normalize=normalize)
    x = torch.from_numpy(wav).to(device)[None]
    with torch.inference_mode():
        out = backbone(x, apply_mask=False)
    h = out.last_hidden_state if layer == "last" else out.hidden_states[layer]
    return h[0].float().cpu().numpy()


def run(args: argparse.Namespace) -> int:
    import os
    import sys
    from pathlib import Path

    import numpy as np

    from speech_ssl.errors import DataError
    from speech_ssl.interop.auto import load_any

    try:
        model = load_any(args.checkpoint)
        arr = embed_file(model, args.audio, args.layer, args.normalize, args.device)
    except (DataError, ValueError) as e:
        print(f"speech-ssl embed: {e}", file=sys.stderr)
        return 1
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp{os.getpid()}")
    with open(tmp, "wb") as f:
        np.save(f, arr.astype(np.float32))
    os.replace(tmp, out)
    print(f"{out}: {arr.shape[0]} frames x {arr.shape[1]} dims (layer {args.layer if args.layer else 'default'})")
    return 0
