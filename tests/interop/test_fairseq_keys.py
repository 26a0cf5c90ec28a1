"""Our fairseq key table against fairseq's real parameter names and shapes (issue 11).

``fixtures/fairseq_keys.json`` was written once by ``fixtures/make_fairseq_keys.py`` from fairseq's own
model classes (``Wav2Vec2Model`` for pretraining, ``Wav2VecCtc``/``Wav2VecEncoder`` for CTC fine-tuning)
for tiny configs that mirror our ``tiny`` preset. These tests do not import fairseq. They check that
(1) our model's state dict mapped through ``key_table`` (what an export to fairseq writes) has exactly the
fixture's keys and shapes, and (2) a fairseq checkpoint made of the fixture's keys/shapes and config dicts,
filled with random tensors, loads with ``load_fairseq`` with no missing or unexpected keys, every tensor
landing on the parameter the table names.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from speech_ssl.cli import main
from speech_ssl.config import to_dict
from speech_ssl.interop.fairseq import config_from_fairseq, key_table, load_fairseq
from speech_ssl.models import Wav2Vec2ForCTC, Wav2Vec2ForPretraining, get_preset
from speech_ssl.models.checkpoint import load_model

FIXTURE = Path(__file__).parent / "fixtures" / "fairseq_keys.json"
DATA = json.loads(FIXTURE.read_text(encoding="utf-8"))
NAMES = sorted(DATA["configs"])
KINDS = {"pretraining": "Wav2Vec2ForPretraining", "ctc": "Wav2Vec2ForCTC"}
# fields that decide parameter names and shapes
ARCH_FIELDS = ("extractor_mode", "conv_feature_layers", "conv_bias", "encoder_layers", "encoder_embed_dim",
               "encoder_ffn_embed_dim", "encoder_attention_heads", "layer_norm_first", "conv_pos",
               "conv_pos_groups", "final_dim", "latent_vars", "latent_groups", "latent_dim")


def our_config(name: str):
    entry = DATA["configs"][name]
    return get_preset(entry["speech_ssl_preset"], **entry["speech_ssl_overrides"])


def our_model(name: str, kind: str):
    cfg = our_config(name)
    if kind == "ctc":
        return Wav2Vec2ForCTC(cfg, DATA["configs"][name]["vocab_size"])
    return Wav2Vec2ForPretraining(cfg)


def diff_report(got: dict, want: dict) -> str:
    missing = sorted(set(want) - set(got))
    extra = sorted(set(got) - set(want))
    shapes = sorted(f"{k}: ours {got[k]} vs fairseq {want[k]}" for k in set(got) & set(want) if got[k] != want[k])
    return f"not written (fairseq has them): {missing}; not in fairseq: {extra}; shapes: {shapes}"


def test_fixture_was_made_by_fairseq_and_covers_both_extractor_modes():
    assert DATA["generated_by"].endswith("make_fairseq_keys.py") and DATA["fairseq_version"]
    modes = {DATA["configs"][n]["pretraining"]["cfg_model"]["extractor_mode"] for n in NAMES}
    assert modes == {"default", "layer_norm"}
    for n in NAMES:
        keys = DATA["configs"][n]["pretraining"]["keys"]
        assert "encoder.pos_conv.0.weight_g" in keys and "quantizer.vars" in keys


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("kind", sorted(KINDS))
def test_fixture_config_is_our_config(name, kind):
    """The fixture's fairseq config dict parses to our preset (same architecture)."""
    entry = DATA["configs"][name]
    parsed = to_dict(config_from_fairseq(entry[kind]["cfg_model"], source=str(FIXTURE)))
    ours = to_dict(our_config(name))
    assert {k: parsed[k] for k in ARCH_FIELDS} == {k: ours[k] for k in ARCH_FIELDS}


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("kind", sorted(KINDS))
def test_export_writes_fairseq_key_names_and_shapes(name, kind):
    model = our_model(name, kind)
    sd = model.state_dict()
    exported = {fs: list(sd[ours].shape) for ours, fs in key_table(model.cfg, KINDS[kind])}
    assert len(exported) == len(key_table(model.cfg, KINDS[kind]))  # no two of our keys on one fairseq key
    want = DATA["configs"][name][kind]["keys"]
    assert exported == want, diff_report(exported, want)


def write_fairseq_checkpoint(path: Path, name: str, kind: str) -> dict:
    """A fairseq-style .pt of the fixture's keys/shapes (random tensors) and config dicts -> its state."""
    entry = DATA["configs"][name]
    g = torch.Generator().manual_seed(0)
    state = {k: torch.randn(*shape, generator=g) for k, shape in entry[kind]["keys"].items()}
    cfg = {"model": entry[kind]["cfg_model"], "task": {"_name": "audio_pretraining", "normalize": False}}
    if kind == "pretraining":
        cfg["criterion"] = {"_name": "wav2vec", "loss_weights": [0.1, 10.0]}
    torch.save({"cfg": cfg, "model": state, "optimizer_history": []}, path)
    return state


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("kind", sorted(KINDS))
def test_import_of_fairseq_shaped_checkpoint(tmp_path, name, kind):
    state = write_fairseq_checkpoint(tmp_path / "model.pt", name, kind)
    entry = DATA["configs"][name]
    model = load_fairseq(tmp_path / "model.pt")  # raises DataError listing any missing/unexpected key
    assert type(model).__name__ == KINDS[kind]
    loaded = model.state_dict()
    table = key_table(model.cfg, KINDS[kind])
    assert {fs for _, fs in table} == set(state)
    for ours, fs in table:
        assert torch.equal(loaded[ours], state[fs]), (ours, fs)
    if kind == "ctc":
        assert model.head.weight.shape[0] == entry["vocab_size"]


def test_convert_cli_reads_fairseq_shaped_checkpoint(tmp_path):
    state = write_fairseq_checkpoint(tmp_path / "ft.pt", "tiny", "ctc")
    assert main(["convert", "--from", "fairseq", str(tmp_path / "ft.pt"), "--to", "speech_ssl",
                 str(tmp_path / "out")]) == 0
    model = load_model(tmp_path / "out")
    assert torch.equal(model.head.weight, state["w2v_encoder.proj.weight"])


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("kind", sorted(KINDS))
def test_convert_to_fairseq_writes_fairseqs_names_and_shapes_as_plain_tensors(tmp_path, name, kind):
    """`convert --to fairseq`: the .pt loads with weights_only (nothing of ours to unpickle), its state dict has
    exactly fairseq's keys and shapes (the fixture, not our table), and it converts back to the same model."""
    model = our_model(name, kind).eval()
    model.normalize_input = True
    from speech_ssl.models.checkpoint import save_model

    save_model(model, tmp_path / "ours")
    assert main(["convert", "--from", "speech_ssl", str(tmp_path / "ours"), "--to", "fairseq",
                 str(tmp_path / "x.pt")]) == 0
    ck = torch.load(tmp_path / "x.pt", weights_only=True)
    want = {k: tuple(v) for k, v in DATA["configs"][name][kind]["keys"].items()}
    got = {k: tuple(v.shape) for k, v in ck["model"].items()}
    assert got == want, diff_report(got, want)
    back = load_fairseq(tmp_path / "x.pt")
    assert back.normalize_input is True and type(back) is type(model)
    assert all(torch.equal(v, back.state_dict()[k]) for k, v in model.state_dict().items())
