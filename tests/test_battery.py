"""The hardening battery: bad input and faults driven through the public ``speech-ssl`` commands, as a user
meets them. Every case must end within its time limit (no hang), with the expected exit code and one short
message naming the file (and line) -- never a traceback -- or, where the user asked for skipping, a counted
skip. ``python -m pytest tests/test_battery.py -q -rA`` lists them; the README prints the summary.

Classes: ``hang`` (a run that never ended), ``traceback`` (a raw Python traceback), ``silent`` (bad input
used or dropped without a word), ``vague`` (an error that did not say where or what), ``works`` (cases that
already behaved; kept so they stay that way).
"""

from __future__ import annotations

import json
import os
import resource
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import pytest
import soundfile as sf

from tests import REPO
from tests.train.test_ctc_task import _pretrained, make_corpus, write_config


@dataclass
class Case:
    cls: str  # hang | traceback | silent | vague | works
    name: str
    make: Callable[[Path], list[str]]  # builds the bad input under tmp, returns the command's arguments
    rc: int | tuple[int, ...]  # expected exit code(s)
    expect: str  # a substring of stderr (or stdout for rc 0)
    timeout: float = 120.0
    limit_file_size: int | None = None  # RLIMIT_FSIZE for the command (a full disk)


def _corpus(tmp: Path, pretrained: bool = True) -> Path:
    make_corpus(tmp)
    ck = _pretrained(tmp) if pretrained else ""
    cfg = write_config(tmp, pretrained=ck)
    cfg.write_text(cfg.read_text().replace("max_update: 160", "max_update: 4").replace(
        "valid_interval_updates: 80", "valid_interval_updates: 0"))
    return cfg


def _nan_wav(tmp: Path) -> None:
    x, sr = sf.read(tmp / "audio" / "train-002.wav", dtype="float32")
    x[100] = np.nan
    sf.write(tmp / "audio" / "train-002.wav", x, sr, subtype="FLOAT")


def _finetune(tmp: Path, *overrides: str) -> list[str]:
    return ["finetune", str(tmp / "ft.yaml"), *overrides, "--run-dir", str(tmp / "run")]


def nan_audio_with_workers(tmp):
    _corpus(tmp)
    _nan_wav(tmp)
    return _finetune(tmp, "data.num_workers=2")


def nan_audio_decode_workers(tmp):
    _corpus(tmp)
    _nan_wav(tmp)
    ctc = tmp / "ctc"
    from speech_ssl.models import Wav2Vec2ForCTC, get_preset
    from speech_ssl.models.checkpoint import save_model

    save_model(Wav2Vec2ForCTC(get_preset("tiny"), 10, ["<s>", "<pad>", "</s>", "<unk>", "|", *"ABCDE"]), ctc)
    return ["decode", "--checkpoint", str(ctc), "--manifest", str(tmp / "train.tsv"), "--out", str(tmp / "dec"),
            "--num-workers", "2"]


def latin1_manifest(tmp):
    _corpus(tmp)
    (tmp / "train.tsv").write_bytes((tmp / "train.tsv").read_bytes() + "caf\xe9.wav\t16000\n".encode("latin-1"))
    return _finetune(tmp)


def latin1_labels(tmp):
    _corpus(tmp)
    lines = (tmp / "train.ltr").read_bytes().split(b"\n")
    lines[1] = "\xc9 A D |".encode("latin-1")
    (tmp / "train.ltr").write_bytes(b"\n".join(lines))
    return _finetune(tmp)


def latin1_config(tmp):
    cfg = _corpus(tmp)
    cfg.write_bytes(cfg.read_bytes() + "# r\xe9glages\n".encode("latin-1"))
    return _finetune(tmp)


def latin1_trans_txt(tmp):
    d = tmp / "LibriSpeech" / "dev-clean" / "1" / "2"
    d.mkdir(parents=True)
    sf.write(d / "1-2-0000.flac", np.zeros(16000, np.float32), 16000)
    (d / "1-2.trans.txt").write_bytes("1-2-0000 CAF\xc9\n".encode("latin-1"))
    return ["prepare", "librispeech", "--root", str(tmp / "LibriSpeech"), "--out", str(tmp / "out")]


def latin1_lm_text(tmp):
    (tmp / "text.txt").write_bytes("A B C\nCAF\xc9 D\n".encode("latin-1"))
    return ["lm", "build", "--text", str(tmp / "text.txt"), "--order", "2", "--out", str(tmp / "lm.arpa")]


def config_bigger_than_weights(tmp):
    from speech_ssl.models import Wav2Vec2ForPretraining, get_preset
    from speech_ssl.models.checkpoint import save_model

    save_model(Wav2Vec2ForPretraining(get_preset("tiny")), tmp / "ck")
    meta = json.loads((tmp / "ck" / "config.json").read_text())
    meta["model"] = {**meta["model"], "encoder_layers": 48, "encoder_embed_dim": 1920, "encoder_ffn_embed_dim": 7680,
                     "encoder_attention_heads": 16}  # xls_r_2b's Transformer: ~2B parameters if it were built
    (tmp / "ck" / "config.json").write_text(json.dumps(meta))
    sf.write(tmp / "a.wav", np.zeros(16000, np.float32), 16000)
    return ["embed", "--checkpoint", str(tmp / "ck"), "--out", str(tmp / "e.npy"), str(tmp / "a.wav")]


def disk_full_checkpoint(tmp):
    _corpus(tmp)
    return _finetune(tmp, "checkpoint.save_interval_updates=2")


def _edit_row(tmp: Path, i: int, edit: Callable[[str, int], str]) -> None:
    """Rewrite manifest row ``i`` (1 = the first row after the root) as ``edit(path, num_samples)``."""
    rows = (tmp / "train.tsv").read_text().splitlines()
    name, n = rows[i].split("\t")
    rows[i] = edit(name, int(n))
    (tmp / "train.tsv").write_text("\n".join(rows) + "\n")


def count_8k_frames(tmp):
    _corpus(tmp)
    x, _ = sf.read(tmp / "audio" / "train-001.wav", dtype="float32")
    sf.write(tmp / "audio" / "train-001.wav", x[::2], 8000)  # the same speech at 8 kHz
    _edit_row(tmp, 2, lambda name, n: f"{name}\t{len(x) // 2}")  # fairseq's script: the file's own frame count
    return _finetune(tmp)


def count_three_times(tmp):
    _corpus(tmp)
    _edit_row(tmp, 3, lambda name, n: f"{name}\t{3 * n}")
    return _finetune(tmp)


def row_outside_root(tmp):
    _corpus(tmp)
    _edit_row(tmp, 1, lambda name, n: f"../{Path(tmp).name}/audio/{name}\t{n}")
    return _finetune(tmp)


def empty_transcript(tmp):
    _corpus(tmp)
    lines = (tmp / "train.ltr").read_text().splitlines()
    lines[5] = ""
    (tmp / "train.ltr").write_text("\n".join(lines) + "\n")
    return _finetune(tmp)


def empty_transcript_skipped(tmp):
    empty_transcript(tmp)
    return _finetune(tmp, "finetune.skip_empty_labels=true")


def rows_longer_than_max(tmp):
    _corpus(tmp)
    return _finetune(tmp, "data.max_sample_size=12000")


def init_from_mismatched_folder(tmp):
    from speech_ssl.models import Wav2Vec2ForCTC, get_preset
    from speech_ssl.models.checkpoint import save_model

    _corpus(tmp)
    save_model(Wav2Vec2ForCTC(get_preset("tiny"), 10, ["<s>", "<pad>", "</s>", "<unk>", "|", *"ABCDE"]), tmp / "ck")
    meta = json.loads((tmp / "ck" / "config.json").read_text())
    meta["model"]["encoder_layers"] = 3  # config.json says 3 layers, the weights have 2
    (tmp / "ck" / "config.json").write_text(json.dumps(meta))
    return _finetune(tmp, "--init-from", str(tmp / "ck"))


def score_empty(tmp):
    (tmp / "ref.txt").write_text("")
    (tmp / "hyp.txt").write_text("")
    return ["score", "--ref", str(tmp / "ref.txt"), "--hyp", str(tmp / "hyp.txt")]


def skip_bad_finds_nan(tmp):
    d = tmp / "LibriSpeech" / "dev-clean" / "1" / "2"
    d.mkdir(parents=True)
    sf.write(d / "1-2-0000.flac", 0.1 * np.ones(16000, np.float32), 16000)
    x = np.zeros(16000, np.float32)
    x[5] = np.nan
    sf.write(d / "1-2-0001.wav", x, 16000, subtype="FLOAT")
    (d / "1-2.trans.txt").write_text("1-2-0000 A\n1-2-0001 B\n")
    return ["prepare", "librispeech", "--root", str(tmp / "LibriSpeech"), "--out", str(tmp / "out"), "--skip-bad"]


def refused_pickle_resume(tmp):
    import argparse

    import torch

    _corpus(tmp)
    assert subprocess.run([sys.executable, "-m", "speech_ssl", *_finetune(tmp, "optim.max_update=2",
                                                                        "checkpoint.save_interval_updates=2")],
                          capture_output=True, env=_env()).returncode == 0
    (ck,) = sorted((tmp / "run" / "checkpoints").glob("checkpoint_*"))
    torch.save({"num_updates": 2, "x": argparse.Namespace(a=1)}, ck / "train_state.pt")
    meta = json.loads((ck / "meta.json").read_text())  # keep the checksums consistent: only the pickle is bad
    import hashlib

    data = (ck / "train_state.pt").read_bytes()
    meta["files"]["train_state.pt"] = {"size": len(data), "sha256": hashlib.sha256(data).hexdigest()}
    (ck / "meta.json").write_text(json.dumps(meta))
    return _finetune(tmp, "--resume")


def optim_value_line(tmp):
    cfg = _corpus(tmp)
    cfg.write_text(cfg.read_text().replace("  lr: 0.002\n", "  lr: 0.002\n  update_freq: 0\n"))
    return _finetune(tmp)


def override_names_itself(tmp):
    _corpus(tmp)
    return _finetune(tmp, "optim.update_freq=0")


def short_audio_embed(tmp):
    from speech_ssl.models import Wav2Vec2ForPretraining, get_preset
    from speech_ssl.models.checkpoint import save_model

    save_model(Wav2Vec2ForPretraining(get_preset("tiny")), tmp / "ck")
    sf.write(tmp / "short.wav", np.zeros(320, np.float32), 16000)
    return ["embed", "--checkpoint", str(tmp / "ck"), "--out", str(tmp / "e.npy"), str(tmp / "short.wav")]


def min_size_below_receptive_field(tmp):
    _corpus(tmp)
    return _finetune(tmp, "data.min_sample_size=100")


def missing_audio(tmp):
    _corpus(tmp)
    (tmp / "audio" / "train-003.wav").unlink()
    return _finetune(tmp)


def unknown_label_symbol(tmp):
    _corpus(tmp)
    lines = (tmp / "train.ltr").read_text().splitlines()
    lines[1] = "E A Z |"
    (tmp / "train.ltr").write_text("\n".join(lines) + "\n")
    return _finetune(tmp)


def unknown_config_key(tmp):
    cfg = _corpus(tmp)
    cfg.write_text(cfg.read_text().replace("  lr: 0.002\n", "  lr: 0.002\n  lrr: 1\n"))
    return _finetune(tmp)


def old_finetune_key(tmp):
    _corpus(tmp)
    return _finetune(tmp, "finetune.mask_prob=0.3")


def truncated_safetensors(tmp):
    from speech_ssl.models import Wav2Vec2ForPretraining, get_preset
    from speech_ssl.models.checkpoint import save_model

    save_model(Wav2Vec2ForPretraining(get_preset("tiny")), tmp / "ck")
    w = tmp / "ck" / "model.safetensors"
    w.write_bytes(w.read_bytes()[:200])
    sf.write(tmp / "a.wav", np.zeros(16000, np.float32), 16000)
    return ["embed", "--checkpoint", str(tmp / "ck"), "--out", str(tmp / "e.npy"), str(tmp / "a.wav")]



def _ctc_and_corpus(tmp):
    make_corpus(tmp)
    from speech_ssl.models import Wav2Vec2ForCTC, get_preset
    from speech_ssl.models.checkpoint import save_model

    save_model(Wav2Vec2ForCTC(get_preset("tiny"), 10, ["<s>", "<pad>", "</s>", "<unk>", "|", *"ABCDE"]), tmp / "ctc")
    return ["decode", "--checkpoint", str(tmp / "ctc"), "--manifest", str(tmp / "train.tsv")]


def decode_on_a_missing_gpu(tmp):
    return [*_ctc_and_corpus(tmp), "--out", str(tmp / "dec"), "--device", "cuda:7"]


def decode_out_is_a_file(tmp):
    (tmp / "dec").write_text("notes\n")
    return [*_ctc_and_corpus(tmp), "--out", str(tmp / "dec")]


def decode_beam_without_search(tmp):
    return [*_ctc_and_corpus(tmp), "--out", str(tmp / "dec"), "--beam", "100"]


def score_json_is_a_folder(tmp):
    (tmp / "ref.txt").write_text("a b\n")
    (tmp / "hyp.txt").write_text("a c\n")
    return ["score", "--ref", str(tmp / "ref.txt"), "--hyp", str(tmp / "hyp.txt"), "--json", str(tmp)]


def subset_onto_its_source(tmp):
    make_corpus(tmp)
    return ["manifest", "subset", str(tmp / "train.tsv"), str(tmp / "train.tsv"), "5"]


def finished_run_other_settings(tmp):
    cfg = _corpus(tmp, pretrained=False)
    r = subprocess.run([sys.executable, "-m", "speech_ssl", *_finetune(tmp)], capture_output=True, text=True,
                       env=_env(), timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]
    return ["finetune", str(cfg), "optim.lr=1e-3", "--run-dir", str(tmp / "run"), "--resume"]



def mistyped_train_manifest(tmp):
    _corpus(tmp, pretrained=False)
    return _finetune(tmp, f"data.train=[{tmp / 'trian.tsv'}]")


CASES = [
    Case("hang", "bad audio in a DataLoader worker (training, data.num_workers=2)", nan_audio_with_workers, 3,
         "train-002.wav: NaN/Inf sample at frame 100 (manifest", timeout=60),
    Case("hang", "bad audio in a decode worker (--num-workers 2)", nan_audio_decode_workers, 2,
         "train-002.wav: NaN/Inf sample at frame 100", timeout=60),
    Case("traceback", "non-UTF-8 manifest", latin1_manifest, 3, "train.tsv:8: manifest is not UTF-8 text"),
    Case("traceback", "non-UTF-8 label file", latin1_labels, 3, "train.ltr:2: label file is not UTF-8 text"),
    Case("traceback", "non-UTF-8 YAML config", latin1_config, 2, "ft.yaml:"),
    Case("traceback", "non-UTF-8 LibriSpeech trans.txt", latin1_trans_txt, (1, 2, 3), "1-2.trans.txt:1: transcript file is not UTF-8"),
    Case("traceback", "non-UTF-8 text for lm build", latin1_lm_text, (1, 2, 3), "text.txt:2: text file is not UTF-8"),
    Case("traceback", "config.json naming a 2B model over tiny weights", config_bigger_than_weights, 1,
         "weights do not match config.json", timeout=30),
    Case("traceback", "file-size limit while writing a checkpoint", disk_full_checkpoint, 3,
         "could not write the checkpoint", limit_file_size=300_000),
    Case("silent", "8 kHz file listed with its own frame count", count_8k_frames, 3,
         "a count of frames at the file's own rate"),
    Case("silent", "manifest count 3x the audio", count_three_times, 3, "train.tsv:4: the manifest lists"),
    Case("silent", "row with ../ out of the manifest's root", row_outside_root, 3, "leaves the manifest's root"),
    Case("silent", "empty transcript line", empty_transcript, 3, "train.ltr:6: empty transcript"),
    Case("silent", "empty transcript, skipping asked for: counted", empty_transcript_skipped, 0,
         "1 with an empty transcript"),
    Case("silent", "rows longer than max_sample_size: counted", rows_longer_than_max, 0,
         "longer than data.max_sample_size=12000 samples"),
    Case("silent", "--init-from a folder whose config.json does not match its weights", init_from_mismatched_folder,
         3, "weights do not match config.json"),
    Case("silent", "score on two empty files", score_empty, 2, "score"),
    Case("silent", "prepare --skip-bad without --verify-audio: NaN file skipped and counted", skip_bad_finds_nan, 0,
         "skipped 1"),
    Case("vague", "torch refusing a pickle on --resume", refused_pickle_resume, 3, "a pickled argparse.Namespace"),
    Case("vague", "bad value under optim: points at the key's line", optim_value_line, 2,
         "ft.yaml:19: key 'optim.update_freq'"),
    Case("vague", "bad command-line override names itself", override_names_itself, 2,
         "command-line override 'optim.update_freq=0'"),
    Case("vague", "audio shorter than the receptive field names the file", short_audio_embed, 1,
         "short.wav: audio of 320 samples"),
    Case("vague", "rows shorter than the receptive field let in by data.min_sample_size", min_size_below_receptive_field,
         2, "key 'data.min_sample_size': 100 samples is below the model's receptive field (400 samples)"),
    Case("traceback", "decode --device on a GPU this torch does not have", decode_on_a_missing_gpu, 2,
         "device 'cuda:7': this torch"),
    Case("traceback", "decode --out an existing file", decode_out_is_a_file, 2, "dec: exists and is a file"),
    Case("traceback", "score --json an existing folder", score_json_is_a_folder, 1, "exists and is a folder"),
    Case("silent", "manifest subset written onto its own source", subset_onto_its_source, 1, "is the source"),
    Case("silent", "decode --beam without a beam search", decode_beam_without_search, 2,
         "--beam sets the beam search"),
    Case("silent", "a finished run resumed with other settings", finished_run_other_settings, 2,
         "finished at update 4 with other settings"),
    Case("vague", "a mistyped data.train names the manifest (not the dictionary beside it)", mistyped_train_manifest,
         3, "trian.tsv: manifest not found"),
    Case("works", "missing audio file", missing_audio, 3, "train-003.wav"),
    Case("works", "label symbol not in the dictionary", unknown_label_symbol, 3, "train.ltr:2: symbol 'Z'"),
    Case("works", "unknown config key", unknown_config_key, 2, "ft.yaml:19: key 'optim.lrr': unknown key"),
    Case("works", "a backbone key under finetune: names its new place", old_finetune_key, 2,
         "model.overrides.mask_prob"),
    Case("works", "truncated safetensors", truncated_safetensors, 1, "cannot read safetensors"),
]


def _env() -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO), "SPEECH_SSL_NO_BAR": "1"}


@pytest.mark.parametrize("case", CASES, ids=[f"{c.cls}: {c.name}" for c in CASES])
def test_battery(case: Case, tmp_path):
    args = case.make(tmp_path)

    def limits():
        if case.limit_file_size is not None:
            signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
            resource.setrlimit(resource.RLIMIT_FSIZE, (case.limit_file_size, case.limit_file_size))

    try:
        res = subprocess.run([sys.executable, "-m", "speech_ssl", *args], capture_output=True, text=True,
                             timeout=case.timeout, env=_env(), preexec_fn=limits)
    except subprocess.TimeoutExpired:
        pytest.fail(f"{case.name}: still running after {case.timeout:.0f} s (a hang)")
    out = res.stderr + res.stdout
    expected = case.rc if isinstance(case.rc, tuple) else (case.rc,)
    assert res.returncode in expected, f"exit {res.returncode}, expected {case.rc}:\n{out[-2000:]}"
    assert "Traceback (most recent call last)" not in out, out[-3000:]
    assert case.expect in out, f"{case.expect!r} not in:\n{out[-2000:]}"
    if res.returncode != 0:  # the error itself is short: one paragraph
        err = [ln for ln in res.stderr.splitlines() if ln.startswith("speech-ssl")]
        assert err and len(err[-1]) < 600, res.stderr[-1500:]
