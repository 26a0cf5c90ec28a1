"""Reading audio: any format libsndfile reads, mono, float32, resampled to 16 kHz with soxr.

    wav = read_audio("a.flac")                      # (L,) float32 at 16 kHz
    seg = read_audio("long.sph", start=8000, end=24000)   # frames of the *source* file (its own rate)

Formats: WAV, FLAC, OGG/Vorbis, OGG/Opus, MP3, NIST SPHERE (uncompressed or u-law/a-law; shorten-compressed
SPHERE is not readable by libsndfile: convert with ``sph2pipe -f wav``) and the rest of libsndfile.
Integer PCM becomes float32 in [-1, 1] (libsndfile scaling), multichannel audio is averaged to mono (as
fairseq's ``feats.mean(-1)``), and ``normalize=True`` applies fairseq's per-utterance normalization
(``F.layer_norm(x, x.shape)``: zero mean, unit variance, eps 1e-5).

Segments are read with a seek where the file is seekable (all the formats above), so reading one
utterance of a long recording does not decode all of it.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import soundfile as sf

from speech_ssl.errors import DataError
from speech_ssl.files import atomic_open

SAMPLE_RATE = 16000
LAYER_NORM_EPS = 1e-5


def resampled_length(num_frames: int, source_sr: int, target_sr: int = SAMPLE_RATE) -> int:
    """Length that soxr gives when resampling ``num_frames`` from ``source_sr`` to ``target_sr``.

    soxr rounds ``num_frames * target_sr / source_sr`` to the nearest integer; integer arithmetic here
    so that manifests agree exactly with what ``read_audio`` returns.
    """
    if source_sr == target_sr:
        return int(num_frames)
    return (2 * int(num_frames) * target_sr + source_sr) // (2 * source_sr)


def _existing_file(path: str | Path) -> Path:
    """``path`` as a Path; DataError when it is missing or empty."""
    path = Path(path)
    if not path.is_file():
        raise DataError("audio file not found", path)
    if path.stat().st_size == 0:
        raise DataError("zero-length audio (empty file)", path)
    return path


def audio_info(path: str | Path) -> tuple[int, int, int]:
    """(num_frames, sample_rate, channels) from the header, without decoding; DataError if unreadable."""
    path = _existing_file(path)
    try:
        info = sf.info(str(path))
    except Exception as e:  # soundfile raises LibsndfileError / RuntimeError / TypeError
        raise DataError(f"cannot read audio header: {_reason(e)}", path) from e
    if info.frames <= 0:
        raise DataError("zero-length audio", path)
    return int(info.frames), int(info.samplerate), int(info.channels)


def _reason(e: Exception) -> str:
    msg = str(e).strip() or type(e).__name__
    msg = re.sub(r"^Error opening '.*?': ", "", msg)  # the path is already in the message prefix
    if "sphere" in msg.lower() or "shorten" in msg.lower():
        msg += " (shorten-compressed SPHERE? convert with `sph2pipe -f wav`)"
    return msg


def normalize_waveform(x: np.ndarray) -> np.ndarray:
    """fairseq's per-utterance normalization: ``(x - mean) / sqrt(var + 1e-5)`` (biased variance).

    x: (L,) float32 -> (L,) float32.
    """
    x64 = x.astype(np.float64, copy=False)
    mean = x64.mean()
    var = ((x64 - mean) ** 2).mean()
    return ((x64 - mean) / np.sqrt(var + LAYER_NORM_EPS)).astype(np.float32)


def read_audio(
    path: str | Path,
    start: int | None = None,
    end: int | None = None,
    target_sr: int | None = SAMPLE_RATE,
    normalize: bool = False,
) -> np.ndarray:
    """Read ``path`` (or frames ``[start, end)`` of it) as mono float32 at ``target_sr``.

    ``start``/``end`` count frames at the file's own sample rate (``end=None``: to the end of the file).
    ``target_sr=None`` keeps the file's rate. Returns an (L,) float32 array.

    Raises DataError naming the file when it is missing, unreadable, corrupt, empty, when the segment
    lies outside the file, or when it holds NaN/Inf samples.
    """
    path = _existing_file(path)
    try:
        with sf.SoundFile(str(path)) as f:
            sr = int(f.samplerate)
            total = int(f.frames)
            s = 0 if start is None else int(start)
            e = total if end is None else int(end)
            if s < 0 or e > total or s >= e:
                if total <= 0:
                    raise DataError("zero-length audio", path)
                raise DataError(f"segment [{s}, {e}) is outside the file's {total} frames", path)
            if start is None and end is None:
                # Whole file: decode to the end (compressed formats' headers may estimate the length).
                data = f.read(dtype="float32", always_2d=True)
            else:
                if s > 0:
                    if f.seekable():
                        f.seek(s)
                    else:  # decode and drop
                        f.read(s, dtype="float32", always_2d=True)
                data = f.read(e - s, dtype="float32", always_2d=True)
                if data.shape[0] < e - s:
                    raise DataError(f"truncated audio: segment needs {e - s} frames, decoded {data.shape[0]}", path)
    except DataError:
        raise
    except Exception as err:
        raise DataError(f"cannot decode audio: {_reason(err)}", path) from err
    if data.shape[0] == 0:
        raise DataError("zero-length audio", path)
    x = data[:, 0] if data.shape[1] == 1 else data.mean(axis=1, dtype=np.float32)
    if not np.isfinite(x).all():
        bad = int(np.flatnonzero(~np.isfinite(x))[0]) + s
        raise DataError(f"NaN/Inf sample at frame {bad}", path)
    x = np.ascontiguousarray(x, dtype=np.float32)
    if target_sr is not None and sr != target_sr:
        import soxr

        x = soxr.resample(x, sr, target_sr, quality="HQ").astype(np.float32, copy=False)
        if x.shape[0] == 0:
            raise DataError(f"segment too short to resample ({e - s} frames at {sr} Hz)", path)
    if normalize:
        x = normalize_waveform(x)
    return x


def write_audio(path: str | Path, x: np.ndarray, sample_rate: int = SAMPLE_RATE, subtype: str = "PCM_16") -> None:
    """Write mono float audio atomically (format from the suffix: .flac, .wav, ...).

    Samples outside [-1, 1] are clipped by libsndfile's integer conversion.
    """
    path = Path(path)
    fmt = path.suffix.lstrip(".").upper() or None
    with atomic_open(path, "wb") as f:
        sf.write(f, np.asarray(x, dtype=np.float32), sample_rate, subtype=subtype, format=fmt)
