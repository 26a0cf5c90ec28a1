"""Embeddings: layer-N hidden states of a model for one waveform, one file or every row of a manifest.

Layer N means exactly HF transformers' ``hidden_states[N]`` for the same weights: 0 is the input of the first
Transformer layer, N the output of layer N (before the final LayerNorm of pre-LN models); ``"last"`` is the
model output (after it). With ``chunk_seconds`` long audio runs in chunks with context on both sides
(:func:`speech_ssl.models.inference.chunked_frames`): the same frame count, values that differ only through
the limited context.

    model = load_any("recipes/synth/pretrained")
    feats = embed_file(model, "a.flac", layer=6)                     # (frames, dim) float32
    written, skipped = embed_manifest(model, "train.tsv", "feats/", layer=6)
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import torch

from speech_ssl.data.audio import SAMPLE_RATE, read_audio
from speech_ssl.data.manifest import read_manifest
from speech_ssl.device import resolve_device
from speech_ssl.errors import DataError
from speech_ssl.files import atomic_open, atomic_write_text, output_dir, settings_changes
from speech_ssl.models.checkpoint import model_normalize
from speech_ssl.models.inference import chunked_frames
from speech_ssl.progress import progress


def _backbone(model, device: str):
    """The Wav2Vec2Model inside a pretraining / CTC model (or the model itself), in eval mode on ``device``."""
    backbone = model.wav2vec2 if hasattr(model, "wav2vec2") else model
    return backbone.to(resolve_device(device)).eval()


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
    x = torch.from_numpy(wav).to(device)

    def frames(batch, lengths):
        out = backbone(batch, lengths, apply_mask=False)
        h = out.last_hidden_state if layer == "last" else out.hidden_states[layer]
        return h, out.out_lengths

    with torch.inference_mode():
        chunk = int(chunk_seconds * SAMPLE_RATE)
        if chunk <= 0 or x.shape[0] <= chunk:
            h, _ = frames(x[None], torch.tensor([x.shape[0]], device=device))
            h = h[0]
        else:
            context = int(context_seconds * SAMPLE_RATE)
            # one window per forward pass: no padding, so group-norm encoders see exactly their window
            h = chunked_frames(frames, x, backbone.cfg.conv_feature_layers, chunk, context, chunk + 2 * context)
    return h.float().cpu().numpy()


def embed_file(model, audio: str, layer: int | str | None, normalize: bool | None = None, device: str = "cpu",
               chunk_seconds: float = 0.0, context_seconds: float = 2.0):
    """(frames, dim) float32 numpy array of ``model``'s layer ``layer`` for one file."""
    backbone = _backbone(model, device)
    layer = _check_layer(backbone, layer)
    wav = read_audio(audio, normalize=model_normalize(model, normalize))
    _check_length(backbone, len(wav), audio)
    return embed_waveform(backbone, wav, layer, chunk_seconds, context_seconds, device)


def _check_length(backbone, n: int, path, line: int | None = None) -> None:
    rf = backbone.cfg.receptive_field
    if n < rf:
        raise DataError(f"audio of {n} samples ({n / SAMPLE_RATE * 1000:.0f} ms) is shorter than the model's "
                        f"receptive field ({rf} samples = {rf / SAMPLE_RATE * 1000:.0f} ms): no frame to embed",
                        path, line)


def save_npy(path: str | Path, arr: np.ndarray) -> None:
    """``arr`` as a float32 ``.npy`` file, atomically."""
    with atomic_open(path, "wb") as f:
        np.save(f, arr.astype(np.float32))


def utterance_id(row_path: str, start: int | None = None) -> str:
    """A file name for a manifest row: its path without extension, '/' -> '__' (+ '_<start>' for segments)."""
    stem = row_path.rsplit(".", 1)[0] if "." in row_path.rsplit("/", 1)[-1] else row_path
    uid = stem.strip("/").replace("/", "__")
    return f"{uid}_{start}" if start is not None else uid


SETTINGS_FILE = "embed_settings.json"


def embed_manifest(model, manifest: str, out_dir: str, layer: int | str | None, normalize: bool | None = None,
                   device: str = "cpu", chunk_seconds: float = 0.0, context_seconds: float = 2.0,
                   checkpoint: str | None = None) -> tuple[int, int]:
    """Every row of ``manifest`` -> ``out_dir/<id>.npy``; ``out_dir/index.tsv`` lists id, frames, source row.

    Rows whose ``.npy`` exists are skipped (a killed run continues). ``out_dir/embed_settings.json`` records
    what made the arrays (``checkpoint`` as given, resolved; the layer, normalisation and chunking), and a
    run with other settings into the same folder is a DataError naming the differences: the folder never
    mixes arrays of two settings. Returns (written, skipped)."""
    man = read_manifest(manifest)
    normalize = model_normalize(model, normalize)
    backbone = _backbone(model, device)
    layer = _check_layer(backbone, layer)
    out = Path(out_dir)
    output_dir(out)
    record = out / SETTINGS_FILE
    if not record.exists() and any(out.glob("*.npy")):
        raise DataError(f"holds .npy files but no {SETTINGS_FILE} (made otherwise): what made them cannot be "
                        "checked; choose another --out or remove them", out)
    want = {"checkpoint": str(Path(checkpoint).resolve()) if checkpoint else None, "layer": layer,
            "normalize": normalize, "chunk_seconds": chunk_seconds,
            "chunk_context_seconds": context_seconds if chunk_seconds > 0 else None}
    if diff := settings_changes(record, want):
        raise DataError(f"holds embeddings made with other settings ({'; '.join(diff)}); choose another --out "
                        "or remove it", out)
    ids = [utterance_id(e.path, e.start) for e in man.entries]
    dup = [i for i, n in Counter(ids).items() if n > 1]
    if dup:
        raise DataError(f"rows map to the same output name, e.g. {dup[0]!r}", manifest)
    written = skipped = 0
    index = []
    rows = progress(enumerate(zip(man.entries, ids), start=2), total=len(ids), desc="embed", unit="utt")
    for lineno, (e, uid) in rows:
        dest = out / f"{uid}.npy"
        if dest.exists():
            frames = np.load(dest, mmap_mode="r").shape[0]
            skipped += 1
        else:
            try:
                wav = read_audio(Path(man.root) / e.path, start=e.start, end=e.end, normalize=normalize)
            except DataError as err:
                raise DataError(f"row {e.path}: {err}", manifest, lineno) from err
            _check_length(backbone, len(wav), manifest, lineno)
            arr = embed_waveform(backbone, wav, layer, chunk_seconds, context_seconds, device)
            save_npy(dest, arr)
            frames = arr.shape[0]
            written += 1
        index.append(f"{uid}\t{frames}\t{manifest}:{lineno}")
    atomic_write_text(out / "index.tsv", "id\tframes\tsource\n" + "\n".join(index) + "\n")
    return written, skipped
