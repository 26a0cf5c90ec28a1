"""``speech-ssl embed``: layer-N hidden states of one audio file, or of every row of a manifest.

    speech-ssl embed --checkpoint CK --layer 6 --out x.npy AUDIO
    speech-ssl embed --checkpoint CK --layer 6 --manifest train.tsv --out feats/   # feats/<id>.npy + index.tsv
    speech-ssl embed ... --chunk-seconds 30        # long recordings: 30 s chunks with 2 s of context each side
"""

from __future__ import annotations

import argparse
from pathlib import Path


def add_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "embed", help="write layer-N hidden states as float32 (frames x dim) .npy, for a file or a manifest",
        description="Layer N means exactly HF transformers' hidden_states[N] for the same weights: 0 is the "
                    "input of the first Transformer layer, N the output of layer N (before the final "
                    "LayerNorm of pre-LN models); 'last' is the model output (after that LayerNorm). "
                    "Without --chunk-seconds a file is one forward pass (memory grows with the square of "
                    "its length); with it, long audio is cut into chunks, each run with context on both "
                    "sides whose frames are discarded, so the frame count is the same and the values "
                    "differ only through the limited context.",
    )
    p.add_argument("--checkpoint", required=True,
                   help="our checkpoint folder / .safetensors, an HF Wav2Vec2 folder, or a fairseq .pt")
    p.add_argument("--layer", default=None, help="0..num_layers or 'last' (default: num_layers)")
    p.add_argument("--out", required=True,
                   help="output .npy path (one file) or folder (--manifest: <id>.npy per row and index.tsv)")
    p.add_argument("--manifest", default=None,
                   help="a fairseq manifest (.tsv): embed every row; rows already written are skipped")
    p.add_argument("--normalize", action="store_true",
                   help="per-utterance zero mean / unit variance (use for models trained with normalize=True, "
                        "e.g. LARGE LV-60 and XLSR)")
    p.add_argument("--chunk-seconds", type=float, default=0.0,
                   help="run audio longer than this in chunks of this length (0 = whole file in one pass)")
    p.add_argument("--chunk-context-seconds", type=float, default=2.0,
                   help="audio on each side of a chunk that the model sees but whose frames are dropped")
    p.add_argument("--device", default="cpu")
    p.add_argument("audio", nargs="?", help="audio file (any format soundfile reads; resampled to 16 kHz mono)")
    p.set_defaults(func=run)


def _backbone(model, device: str):
    """The Wav2Vec2Model inside a pretraining / CTC model (or the model itself), in eval mode on ``device``."""
    backbone = model.wav2vec2 if hasattr(model, "wav2vec2") else model
    return backbone.to(device).eval()


def _check_layer(backbone, layer: int | str | None) -> int | str:
    L = backbone.cfg.encoder_layers
    if layer is None:
        return L
    if layer == "last":
        return layer
    try:
        layer = int(layer)
    except ValueError:
        raise ValueError(f"--layer must be an integer 0..{L} or 'last', got {layer!r}") from None
    if not 0 <= layer <= L:
        raise ValueError(f"--layer {layer} out of range: this model has layers 0..{L}")
    return layer


def embed_waveform(backbone, wav, layer: int | str, chunk_seconds: float = 0.0, context_seconds: float = 2.0,
                   device: str = "cpu"):
    """(frames, dim) float32 numpy array of ``backbone``'s layer ``layer`` for one waveform ``(L,)`` numpy."""
    import torch

    from speech_ssl.decode.run import chunked_frames

    x = torch.from_numpy(wav).to(device)

    def frames(batch, lengths):
        out = backbone(batch, lengths, apply_mask=False)
        h = out.last_hidden_state if layer == "last" else out.hidden_states[layer]
        return h, out.out_lengths

    with torch.inference_mode():
        chunk = int(chunk_seconds * 16000)
        if chunk <= 0 or x.shape[0] <= chunk:
            h, _ = frames(x[None], torch.tensor([x.shape[0]], device=device))
            h = h[0]
        else:
            context = int(context_seconds * 16000)
            # one window per forward pass: no padding, so group-norm encoders see exactly their window
            h = chunked_frames(frames, x, backbone.cfg.conv_feature_layers, chunk, context, chunk + 2 * context)
    return h.float().cpu().numpy()


def embed_file(model, audio: str, layer: int | str | None, normalize: bool = False, device: str = "cpu",
               chunk_seconds: float = 0.0, context_seconds: float = 2.0):
    """(frames, dim) float32 numpy array of ``model``'s layer ``layer`` for one file."""
    from speech_ssl.data.audio import read_audio

    backbone = _backbone(model, device)
    layer = _check_layer(backbone, layer)
    return embed_waveform(backbone, read_audio(audio, normalize=normalize), layer, chunk_seconds,
                          context_seconds, device)


def _save_npy(path: Path, arr) -> None:
    import os

    import numpy as np

    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    with open(tmp, "wb") as f:
        np.save(f, arr.astype(np.float32))
    os.replace(tmp, path)


def utterance_id(row_path: str, start: int | None = None) -> str:
    """A file name for a manifest row: its path without extension, '/' -> '__' (+ '_<start>' for segments)."""
    stem = row_path.rsplit(".", 1)[0] if "." in row_path.rsplit("/", 1)[-1] else row_path
    uid = stem.strip("/").replace("/", "__")
    return f"{uid}_{start}" if start is not None else uid


def embed_manifest(model, manifest: str, out_dir: str, layer: int | str | None, normalize: bool = False,
                   device: str = "cpu", chunk_seconds: float = 0.0, context_seconds: float = 2.0) -> tuple[int, int]:
    """Every row of ``manifest`` -> ``out_dir/<id>.npy``; ``out_dir/index.tsv`` lists id, frames, source row.

    Rows whose ``.npy`` exists are skipped (a killed run continues). Returns (written, skipped)."""
    from collections import Counter

    import numpy as np

    from speech_ssl.data.audio import read_audio
    from speech_ssl.data.manifest import read_manifest
    from speech_ssl.errors import DataError

    man = read_manifest(manifest)
    backbone = _backbone(model, device)
    layer = _check_layer(backbone, layer)
    out = Path(out_dir)
    ids = [utterance_id(e.path, e.start) for e in man.entries]
    dup = [i for i, n in Counter(ids).items() if n > 1]
    if dup:
        raise DataError(f"rows map to the same output name, e.g. {dup[0]!r}", manifest)
    written = skipped = 0
    index = []
    for lineno, (e, uid) in enumerate(zip(man.entries, ids), start=2):
        dest = out / f"{uid}.npy"
        if dest.exists():
            frames = np.load(dest, mmap_mode="r").shape[0]
            skipped += 1
        else:
            try:
                wav = read_audio(Path(man.root) / e.path, start=e.start, end=e.end, normalize=normalize)
            except DataError as err:
                raise DataError(f"row {e.path}: {err}", manifest, lineno) from err
            arr = embed_waveform(backbone, wav, layer, chunk_seconds, context_seconds, device)
            _save_npy(dest, arr)
            frames = arr.shape[0]
            written += 1
        index.append(f"{uid}\t{frames}\t{manifest}:{lineno}")
    from speech_ssl.data.manifest import atomic_write_text

    atomic_write_text(out / "index.tsv", "id\tframes\tsource\n" + "\n".join(index) + "\n")
    return written, skipped


def run(args: argparse.Namespace) -> int:
    import sys

    from speech_ssl.errors import DataError
    from speech_ssl.interop.auto import load_any

    if (args.manifest is None) == (args.audio is None):
        print("speech-ssl embed: give one AUDIO file or --manifest M.tsv", file=sys.stderr)
        return 2
    try:
        model = load_any(args.checkpoint)
        if args.manifest:
            written, skipped = embed_manifest(model, args.manifest, args.out, args.layer, args.normalize,
                                              args.device, args.chunk_seconds, args.chunk_context_seconds)
            print(f"{args.out}: {written} utterances embedded, {skipped} already there; index.tsv lists them")
            return 0
        arr = embed_file(model, args.audio, args.layer, args.normalize, args.device, args.chunk_seconds,
                         args.chunk_context_seconds)
    except (DataError, ValueError) as e:
        print(f"speech-ssl embed: {e}", file=sys.stderr)
        return 1
    _save_npy(Path(args.out), arr)
    print(f"{args.out}: {arr.shape[0]} frames x {arr.shape[1]} dims (layer {args.layer if args.layer else 'default'})")
    return 0
