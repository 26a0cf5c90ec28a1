"""speech_ssl.train.checkpoint.export_weights and `speech-ssl convert --from speech_ssl A --to speech_ssl B`:
the recipes' RUN/final (a verified weights-only copy), and what it refuses to overwrite; add_files (reports
added to a checkpoint, covered by its meta.json)."""

from __future__ import annotations

import json

import pytest
import torch

from speech_ssl.cli import main
from speech_ssl.models import Wav2Vec2ForPretraining, get_preset
from speech_ssl.models.checkpoint import load_model, save_model
from speech_ssl.train.checkpoint import (
    CheckpointError,
    add_files,
    export_weights,
    save_checkpoint,
    verify_checkpoint,
)


def _training_checkpoint(run, updates=7):
    def weights(folder):
        save_model(Wav2Vec2ForPretraining(get_preset("tiny")), folder)
        (folder / "pretrain_info.json").write_text('{"updates": 7}\n')

    return save_checkpoint(run / "checkpoints" / f"checkpoint_{updates:08d}", weights,
                           {"num_updates": updates, "x": torch.zeros(3)}, {"num_updates": updates, "best": 1.5})


def test_convert_is_a_verified_weights_only_copy(tmp_path, capsys):
    """Every file but the training state, byte for byte, with a meta.json that verifies; a corrupt source is
    refused naming the file (checked before anything loads) and the earlier copy stays."""
    src = _training_checkpoint(tmp_path / "run")
    final = tmp_path / "run" / "final"
    assert main(["convert", "--from", "speech_ssl", str(src), "--to", "speech_ssl", str(final)]) == 0
    assert sorted(p.name for p in final.iterdir()) == ["config.json", "meta.json", "model.safetensors",
                                                      "pretrain_info.json"]
    for name in ("config.json", "model.safetensors", "pretrain_info.json"):
        assert (final / name).read_bytes() == (src / name).read_bytes(), name
    meta = verify_checkpoint(final)
    assert meta["num_updates"] == 7 and meta["best"] == 1.5 and "train_state.pt" not in meta["files"]
    assert json.loads((src / "meta.json").read_text())["files"].keys() - meta["files"].keys() == {"train_state.pt"}
    # a corrupt source (truncated weights: loading it would fail with another message) is refused
    blob = (src / "model.safetensors").read_bytes()
    (src / "model.safetensors").write_bytes(blob[:-10])
    capsys.readouterr()
    assert main(["convert", "--from", "speech_ssl", str(src), "--to", "speech_ssl", str(final)]) == 1
    err = capsys.readouterr().err
    assert str(src / "model.safetensors") in err and "truncated" in err
    verify_checkpoint(final)


def test_a_folder_without_meta_and_safetensors_paths(tmp_path):
    """A converted model folder (no meta.json) is copied and gets one; a `.safetensors` path on either side is a
    load + save as before (no folder named x.safetensors)."""
    plain = tmp_path / "plain"
    save_model(Wav2Vec2ForPretraining(get_preset("tiny")), plain)
    (plain / "dict.txt").write_text("a 1\n")
    export_weights(plain, tmp_path / "copy")
    assert (tmp_path / "copy" / "dict.txt").read_text() == "a 1\n"
    assert verify_checkpoint(tmp_path / "copy")["files"].keys() == {"config.json", "dict.txt", "model.safetensors"}
    assert main(["convert", "--from", "speech_ssl", str(plain), "--to", "speech_ssl", str(tmp_path / "m.safetensors")]) == 0
    assert (tmp_path / "m.safetensors").is_file() and (tmp_path / "m.json").is_file()
    assert main(["convert", "--from", "speech_ssl", str(tmp_path / "m.safetensors"), "--to", "speech_ssl",
                 str(tmp_path / "back")]) == 0
    a, b = load_model(plain).state_dict(), load_model(tmp_path / "back").state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_refuses_to_replace_its_source_or_a_folder_that_is_not_a_checkpoint(tmp_path):
    src = _training_checkpoint(tmp_path / "run")
    for dest in (src, tmp_path / "run", tmp_path / "run" / "checkpoints"):
        with pytest.raises(CheckpointError, match="would replace its own source"):
            export_weights(src, dest)
    other = tmp_path / "notes"
    other.mkdir()
    (other / "todo.txt").write_text("keep me")
    with pytest.raises(CheckpointError, match="not a checkpoint folder"):
        export_weights(src, other)
    assert (other / "todo.txt").read_text() == "keep me" and (src / "train_state.pt").is_file()
    # a stale temp folder of another program beside the destination is left alone
    foreign = tmp_path / ".tmp-something-999999999"
    foreign.mkdir()
    export_weights(src, tmp_path / "final")
    assert foreign.exists()
    export_weights(src, tmp_path / "final")  # an earlier copy is replaced
    verify_checkpoint(tmp_path / "final")


def test_add_files_reseals_meta_and_refuses_a_corrupt_folder_or_a_weights_name(tmp_path):
    """A report added to a checkpoint is listed in its meta.json (verify passes), every other file is kept byte
    for byte (training state included) and the metadata carries over; a corrupt folder is refused naming the
    file and left as it was; the weights, config, state and meta.json cannot be replaced this way."""
    src = _training_checkpoint(tmp_path / "run")
    before = {p.name: p.read_bytes() for p in src.iterdir() if p.name != "meta.json"}
    add_files(src, {"pretrain_info.json": b'{"updates": 8}\n', "notes.txt": b"x"})
    meta = verify_checkpoint(src)
    assert meta["num_updates"] == 7 and meta["best"] == 1.5
    assert meta["files"].keys() == before.keys() | {"notes.txt"}
    assert (src / "pretrain_info.json").read_bytes() == b'{"updates": 8}\n'
    for name, blob in before.items():
        if name != "pretrain_info.json":
            assert (src / name).read_bytes() == blob, name
    assert [p.name for p in src.parent.iterdir() if p.name.startswith(".")] == []  # no temp folder left
    for bad in ("model.safetensors", "config.json", "meta.json", "train_state.pt", "../x.json"):
        with pytest.raises(ValueError, match="not a report file name"):
            add_files(src, {bad: b"{}"})
    (src / "config.json").write_text("{}")
    with pytest.raises(CheckpointError, match="config.json"):
        add_files(src, {"notes.txt": b"y"})
    assert (src / "notes.txt").read_bytes() == b"x" and (src / "config.json").read_text() == "{}"
