"""speech_ssl.data.audio: formats, mono, resampling, segments, normalization, bad files."""

import numpy as np
import pytest
import soundfile as sf
import torch

from speech_ssl.data.audio import normalize_waveform, read_audio, resampled_length, write_audio
from speech_ssl.errors import DataError


def _sine(sr, seconds=0.5, f=440.0):
    t = np.arange(int(sr * seconds)) / sr
    return (0.5 * np.sin(2 * np.pi * f * t)).astype(np.float32)


def test_int16_wav_scaled_to_float(tmp_path):
    x = np.array([0, 16384, -32768, 32767, 1], dtype=np.int16)
    sf.write(tmp_path / "a.wav", x, 16000, subtype="PCM_16")
    y = read_audio(tmp_path / "a.wav")
    assert y.dtype == np.float32
    np.testing.assert_array_equal(y, x.astype(np.float32) / 32768)


def test_stereo_is_averaged(tmp_path):
    left, right = _sine(16000), _sine(16000, f=1000)
    sf.write(tmp_path / "s.wav", np.stack([left, right], 1), 16000, subtype="FLOAT")
    np.testing.assert_allclose(read_audio(tmp_path / "s.wav"), (left + right) / 2, atol=1e-7)


@pytest.mark.parametrize("sr", [8000, 22050, 44100, 48000])
def test_resampling_to_16k_keeps_the_tone(tmp_path, sr):
    sf.write(tmp_path / "r.wav", _sine(sr), sr, subtype="FLOAT")
    y = read_audio(tmp_path / "r.wav")
    assert len(y) == resampled_length(int(sr * 0.5), sr) == 8000
    ref = _sine(16000)
    # away from the edges the resampled sine matches the analytic one
    assert np.abs(y[400:-400] - ref[400:-400]).max() < 2e-3


@pytest.mark.parametrize("n", [1, 3, 101, 4999, 12345])
@pytest.mark.parametrize("sr", [8000, 11025, 32000, 44100, 48000])
def test_resampled_length_matches_soxr(n, sr):
    import soxr

    assert resampled_length(n, sr) == len(soxr.resample(np.zeros(n, np.float32), sr, 16000))


@pytest.mark.parametrize(
    "ext,fmt,subtype",
    [("flac", "FLAC", "PCM_16"), ("ogg", "OGG", "VORBIS"), ("opus", "OGG", "OPUS"), ("mp3", "MP3", "MPEG_LAYER_III"),
     ("sph", "NIST", "PCM_16")],
)
def test_formats(tmp_path, ext, fmt, subtype):
    sr = 48000 if ext == "opus" else 16000
    p = tmp_path / f"x.{ext}"
    sf.write(p, _sine(sr), sr, format=fmt, subtype=subtype)
    y = read_audio(p)
    assert y.dtype == np.float32 and abs(len(y) - 8000) < 1200  # lossy codecs pad a little
    assert 0.3 < np.abs(y).max() < 0.7


@pytest.mark.parametrize("ext,fmt,subtype,sr", [("flac", "FLAC", "PCM_16", 16000), ("sph", "NIST", "PCM_16", 8000),
                                                 ("wav", "WAV", "FLOAT", 16000)])
def test_segment_equals_slice_of_whole(tmp_path, ext, fmt, subtype, sr):
    x = np.random.default_rng(0).uniform(-0.5, 0.5, sr * 2).astype(np.float32)
    p = tmp_path / f"long.{ext}"
    sf.write(p, x, sr, format=fmt, subtype=subtype)
    whole = read_audio(p, target_sr=None)
    seg = read_audio(p, start=1234, end=5678, target_sr=None)
    np.testing.assert_array_equal(seg, whole[1234:5678])
    if sr != 16000:
        assert len(read_audio(p, 1234, 5678)) == resampled_length(5678 - 1234, sr)


def test_normalize_matches_fairseq_layer_norm(tmp_path):
    x = np.random.default_rng(1).normal(0.1, 0.3, 5000).astype(np.float32)
    write_audio(tmp_path / "n.wav", x, subtype="FLOAT")
    y = read_audio(tmp_path / "n.wav", normalize=True)
    ref = torch.nn.functional.layer_norm(torch.from_numpy(x), (len(x),)).numpy()
    np.testing.assert_allclose(y, ref, atol=1e-5)
    np.testing.assert_allclose(normalize_waveform(x), ref, atol=1e-5)


def test_bad_files_name_the_file(tmp_path):
    with pytest.raises(DataError, match="missing.flac.*not found"):
        read_audio(tmp_path / "missing.flac")
    (tmp_path / "corrupt.flac").write_bytes(b"fLaC" + bytes(range(256)) * 4)
    with pytest.raises(DataError, match="corrupt.flac"):
        read_audio(tmp_path / "corrupt.flac")
    (tmp_path / "text.wav").write_text("hello, not audio")
    with pytest.raises(DataError, match="text.wav"):
        read_audio(tmp_path / "text.wav")
    sf.write(tmp_path / "empty.wav", np.zeros(0, np.float32), 16000)
    with pytest.raises(DataError, match="empty.wav.*zero-length"):
        read_audio(tmp_path / "empty.wav")
    x = np.zeros(100, np.float32)
    x[37] = np.nan
    sf.write(tmp_path / "nan.wav", x, 16000, subtype="FLOAT")
    with pytest.raises(DataError, match="nan.wav.*NaN/Inf sample at frame 37"):
        read_audio(tmp_path / "nan.wav")
    x[37] = np.inf
    sf.write(tmp_path / "inf.wav", x, 16000, subtype="FLOAT")
    with pytest.raises(DataError, match="inf.wav.*NaN/Inf"):
        read_audio(tmp_path / "inf.wav")
    with pytest.raises(DataError, match="outside the file"):
        read_audio(tmp_path / "inf.wav", start=50, end=200)


def test_write_audio_is_atomic_and_roundtrips(tmp_path):
    x = _sine(16000)
    write_audio(tmp_path / "o" / "w.flac", x)
    assert [p.name for p in (tmp_path / "o").iterdir()] == ["w.flac"]
    np.testing.assert_allclose(read_audio(tmp_path / "o" / "w.flac"), x, atol=1 / 32768)


def test_truncated_file(tmp_path):
    x = np.random.default_rng(0).uniform(-0.5, 0.5, 16000).astype(np.float32)
    sf.write(tmp_path / "t.wav", x, 16000, subtype="PCM_16")
    data = (tmp_path / "t.wav").read_bytes()
    (tmp_path / "cut.wav").write_bytes(data[: len(data) // 2])  # header still says 16000 frames
    y = read_audio(tmp_path / "cut.wav")  # the whole file: whatever decodes
    assert 0 < len(y) < 16000
    with pytest.raises(DataError, match="cut.wav.*(truncated|outside)"):
        read_audio(tmp_path / "cut.wav", start=10000, end=15000)
