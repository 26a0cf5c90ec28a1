"""HF transformers Wav2Vec2 folders in and out, through an explicit key table.

A folder holds ``config.json`` + ``model.safetensors`` (or a sharded ``model.safetensors.index.json``;
``pytorch_model.bin`` is read with ``torch.load(weights_only=True)``, which refuses code). Supported:
``Wav2Vec2ForPreTraining``, ``Wav2Vec2ForCTC`` and the bare ``Wav2Vec2Model``, both ``feat_extract_norm``
modes, both weight-norm spellings of the positional conv (``weight_g``/``weight_v`` and
``parametrizations.weight.original0/1``).

Every key of the target model comes from ``key_table(cfg, architecture)``; an import fails listing every
missing key, every unexpected key and every shape mismatch at once.

CTC vocabulary. fairseq (and we) use ``<s>``=0 as the CTC blank and ``<pad>``=1; HF's Wav2Vec2ForCTC uses
``pad_token_id`` as the blank, and HF's converted checkpoints name row 0 ``<pad>`` and row 1 ``<s>``. The
rows are the same: only the *names* of rows 0 and 1 differ. So weights map row for row; on import a
``vocab.json`` with ``<pad>``=0, ``<s>``=1 becomes our ``["<s>", "<pad>", ...]`` and on export the two names
are swapped back. If an HF config has ``pad_token_id`` != 0, the head rows (and names) are permuted so
the blank becomes our row 0.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from torch import nn

from speech_ssl.config import from_dict, to_dict
from speech_ssl.data.audio import SAMPLE_RATE
from speech_ssl.data.units import WORD_SEP
from speech_ssl.errors import DataError, describe_load_error
from speech_ssl.files import atomic_write_bytes
from speech_ssl.models.checkpoint import (
    load_state_dict,
    mismatch_report,
    save_state_dict,
)
from speech_ssl.models.config import Wav2Vec2Config
from speech_ssl.models.wav2vec2 import Wav2Vec2ForCTC, Wav2Vec2ForPretraining, Wav2Vec2Model

HF_ARCH = {
    "Wav2Vec2Model": "Wav2Vec2Model",
    "Wav2Vec2ForPreTraining": "Wav2Vec2ForPretraining",
    "Wav2Vec2ForCTC": "Wav2Vec2ForCTC",
}
OUR_TO_HF_ARCH = {v: k for k, v in HF_ARCH.items()}
WN_G = ("parametrizations.weight.original0", "weight_g")
WN_V = ("parametrizations.weight.original1", "weight_v")


# ---------------------------------------------------------------------------- config
def config_to_hf(cfg: Wav2Vec2Config, architecture: str = "Wav2Vec2ForPretraining",
                 vocab_size: int | None = None) -> dict:
    """Our config as an HF ``Wav2Vec2Config`` mapping. Fields HF has no equivalent for are kept under
    ``"speech_ssl_config"`` so that a round trip is lossless."""
    dims = [d for d, _, _ in cfg.conv_feature_layers]
    d = {
        "model_type": "wav2vec2",
        "architectures": [OUR_TO_HF_ARCH[architecture]],
        "conv_dim": dims,
        "conv_kernel": [k for _, k, _ in cfg.conv_feature_layers],
        "conv_stride": [s for _, _, s in cfg.conv_feature_layers],
        "num_feat_extract_layers": len(dims),
        "conv_bias": cfg.conv_bias,
        "feat_extract_norm": "layer" if cfg.extractor_mode == "layer_norm" else "group",
        "feat_extract_activation": "gelu",
        "hidden_size": cfg.encoder_embed_dim,
        "num_hidden_layers": cfg.encoder_layers,
        "intermediate_size": cfg.encoder_ffn_embed_dim,
        "num_attention_heads": cfg.encoder_attention_heads,
        "hidden_act": "gelu",
        "hidden_dropout": cfg.dropout,
        "activation_dropout": cfg.activation_dropout,
        "attention_dropout": cfg.attention_dropout,
        "feat_proj_dropout": cfg.dropout_input,
        "feat_quantizer_dropout": cfg.dropout_features,
        "final_dropout": cfg.final_dropout,
        "layerdrop": cfg.encoder_layerdrop,
        "layer_norm_eps": cfg.layer_norm_eps,
        "do_stable_layer_norm": cfg.layer_norm_first,
        "num_conv_pos_embeddings": cfg.conv_pos,
        "num_conv_pos_embedding_groups": cfg.conv_pos_groups,
        "apply_spec_augment": True,
        "mask_time_prob": cfg.mask_prob,
        "mask_time_length": cfg.mask_length,
        "mask_time_min_masks": cfg.min_masks,
        "mask_feature_prob": cfg.mask_channel_prob,
        "mask_feature_length": cfg.mask_channel_length,
        "mask_feature_min_masks": cfg.mask_channel_min_masks,
        "num_codevectors_per_group": cfg.latent_vars,
        "num_codevector_groups": cfg.latent_groups,
        "contrastive_logits_temperature": cfg.logit_temp,
        "num_negatives": cfg.num_negatives,
        "codevector_dim": cfg.vq_dim,
        "proj_codevector_dim": cfg.final_dim,
        "diversity_loss_weight": cfg.loss_weights[0],
        "initializer_range": 0.02,
        "ctc_loss_reduction": "sum",
        "ctc_zero_infinity": True,
        "pad_token_id": 0,
        "bos_token_id": 1,
        "eos_token_id": 2,
        "add_adapter": False,
        "use_weighted_layer_sum": False,
        "speech_ssl_config": to_dict(cfg),
    }
    if vocab_size is not None:
        d["vocab_size"] = vocab_size
    return d


def config_from_hf(d: dict, source: str | None = None) -> Wav2Vec2Config:
    """An HF ``Wav2Vec2Config`` mapping as our config (DataError naming ``source`` for unsupported ones)."""
    def need(key: str, ok, what: str) -> None:
        if key in d and not ok(d[key]):
            raise DataError(f"unsupported HF config: {key}={d[key]!r} ({what})", source)

    need("model_type", lambda v: v == "wav2vec2", "only model_type 'wav2vec2' is supported")
    need("feat_extract_activation", lambda v: v == "gelu", "only gelu")
    need("hidden_act", lambda v: v == "gelu", "only gelu")
    need("add_adapter", lambda v: not v, "adapters are not supported")
    need("feat_extract_norm", lambda v: v in ("group", "layer"), "group or layer")
    base = dict(d.get("speech_ssl_config") or {})
    try:
        dims, ks, ss = d["conv_dim"], d["conv_kernel"], d["conv_stride"]
        if not (len(dims) == len(ks) == len(ss)):
            raise DataError(f"conv_dim/conv_kernel/conv_stride lengths differ: {len(dims)}/{len(ks)}/{len(ss)}",
                            source)
        hf = {
            "conv_feature_layers": [[int(a), int(b), int(c)] for a, b, c in zip(dims, ks, ss)],
            "conv_bias": bool(d.get("conv_bias", False)),
            "extractor_mode": "layer_norm" if d.get("feat_extract_norm", "group") == "layer" else "default",
            "encoder_embed_dim": int(d["hidden_size"]),
            "encoder_layers": int(d["num_hidden_layers"]),
            "encoder_ffn_embed_dim": int(d["intermediate_size"]),
            "encoder_attention_heads": int(d["num_attention_heads"]),
            "layer_norm_first": bool(d.get("do_stable_layer_norm", False)),
            "layer_norm_eps": float(d.get("layer_norm_eps", 1e-5)),
            "conv_pos": int(d.get("num_conv_pos_embeddings", 128)),
            "conv_pos_groups": int(d.get("num_conv_pos_embedding_groups", 16)),
            "dropout": float(d.get("hidden_dropout", 0.1)),
            "activation_dropout": float(d.get("activation_dropout", 0.1)),
            "attention_dropout": float(d.get("attention_dropout", 0.1)),
            "dropout_input": float(d.get("feat_proj_dropout", 0.0)),
            "dropout_features": float(d.get("feat_quantizer_dropout", 0.0)),
            "final_dropout": float(d.get("final_dropout", 0.1)),
            "encoder_layerdrop": float(d.get("layerdrop", 0.1)),
            "mask_prob": float(d.get("mask_time_prob", 0.05)) if d.get("apply_spec_augment", True) else 0.0,
            "mask_length": int(d.get("mask_time_length", 10)),
            "min_masks": int(d.get("mask_time_min_masks", 2)),
            "mask_channel_prob": float(d.get("mask_feature_prob", 0.0)) if d.get("apply_spec_augment", True)
            else 0.0,
            "mask_channel_length": int(d.get("mask_feature_length", 10)),
            "mask_channel_min_masks": int(d.get("mask_feature_min_masks", 0)),
            "latent_vars": int(d.get("num_codevectors_per_group", 320)),
            "latent_groups": int(d.get("num_codevector_groups", 2)),
            "logit_temp": float(d.get("contrastive_logits_temperature", 0.1)),
            "num_negatives": int(d.get("num_negatives", 100)),
            "final_dim": int(d.get("proj_codevector_dim", 256)),
        }
        vq = int(d.get("codevector_dim", 256))
        hf["latent_dim"] = 0 if vq == hf["final_dim"] else vq
        if "diversity_loss_weight" in d:
            w = list(base.get("loss_weights", (0.1, 10.0 if hf["extractor_mode"] == "default" else 0.0)))
            hf["loss_weights"] = [float(d["diversity_loss_weight"]), float(w[1])]
        elif "loss_weights" not in base:
            hf["loss_weights"] = [0.1, 10.0 if hf["extractor_mode"] == "default" else 0.0]
    except KeyError as e:
        raise DataError(f"HF config lacks required field {e.args[0]!r}", source) from e
    except (TypeError, ValueError) as e:
        raise DataError(f"bad HF config value: {e}", source) from e
    if not base:
        # Fields HF lacks take fairseq's values for the matching architecture.
        large = hf["layer_norm_first"]
        base["feature_grad_mult"] = 1.0 if large else 0.1
        base["latent_temp"] = [2.0, 0.1, 0.999995] if large else [2.0, 0.5, 0.999995]
    base.update(hf)
    return from_dict(Wav2Vec2Config, base, source)


# ---------------------------------------------------------------------------- key table
def key_table(cfg: Wav2Vec2Config, architecture: str) -> list[tuple[str, str]]:
    """Every (our key, HF key) pair for a model of ``architecture`` (ours: Wav2Vec2Model,
    Wav2Vec2ForPretraining, Wav2Vec2ForCTC). The positional-conv weight-norm keys use HF 5.x's
    ``parametrizations.weight.original0/1`` spelling; readers also accept ``weight_g/weight_v``."""
    top = architecture != "Wav2Vec2Model"
    o = "wav2vec2." if top else ""
    h = "wav2vec2." if top else ""
    t: list[tuple[str, str]] = []

    def both(our: str, hf: str, params=("weight", "bias")) -> None:
        for p in params:
            t.append((f"{our}.{p}", f"{hf}.{p}"))

    for i in range(len(cfg.conv_feature_layers)):
        ours, theirs = f"{o}feature_encoder.blocks.{i}", f"{h}feature_extractor.conv_layers.{i}"
        both(f"{ours}.conv", f"{theirs}.conv", ("weight", "bias") if cfg.conv_bias else ("weight",))
        if cfg.extractor_mode == "layer_norm" or i == 0:
            both(f"{ours}.norm", f"{theirs}.layer_norm")
    both(f"{o}feature_norm", f"{h}feature_projection.layer_norm")
    both(f"{o}feature_proj", f"{h}feature_projection.projection")
    t.append((f"{o}mask_emb", f"{h}masked_spec_embed"))
    pc, hpc = f"{o}encoder.pos_conv.conv", f"{h}encoder.pos_conv_embed.conv"
    t.append((f"{pc}.parametrizations.weight.original0", f"{hpc}.{WN_G[0]}"))
    t.append((f"{pc}.parametrizations.weight.original1", f"{hpc}.{WN_V[0]}"))
    t.append((f"{pc}.bias", f"{hpc}.bias"))
    both(f"{o}encoder.layer_norm", f"{h}encoder.layer_norm")
    for n in range(cfg.encoder_layers):
        ours, theirs = f"{o}encoder.layers.{n}", f"{h}encoder.layers.{n}"
        for p in ("q", "k", "v", "out"):
            both(f"{ours}.attn.{p}_proj", f"{theirs}.attention.{p}_proj")
        both(f"{ours}.attn_norm", f"{theirs}.layer_norm")
        both(f"{ours}.fc1", f"{theirs}.feed_forward.intermediate_dense")
        both(f"{ours}.fc2", f"{theirs}.feed_forward.output_dense")
        both(f"{ours}.final_norm", f"{theirs}.final_layer_norm")
    if architecture == "Wav2Vec2ForPretraining":
        t.append(("quantizer.codevectors", "quantizer.codevectors"))
        both("quantizer.weight_proj", "quantizer.weight_proj")
        both("project_q", "project_q")
        both("final_proj", "project_hid")
    elif architecture == "Wav2Vec2ForCTC":
        both("head", "lm_head")
    return t


def _alternatives(hf_key: str) -> list[str]:
    for new, old in (WN_G, WN_V):
        if hf_key.endswith(new):
            return [hf_key, hf_key[: -len(new)] + old]
    return [hf_key]


# ---------------------------------------------------------------------------- reading
def read_hf_state_dict(folder: Path) -> dict[str, torch.Tensor]:
    st = folder / "model.safetensors"
    index = folder / "model.safetensors.index.json"
    if st.is_file():
        return load_state_dict(st)
    if index.is_file():
        try:
            files = sorted(set(json.loads(index.read_text())["weight_map"].values()))
        except (json.JSONDecodeError, KeyError) as e:
            raise DataError(f"bad safetensors index: {e}", index) from e
        state: dict[str, torch.Tensor] = {}
        for f in files:
            state.update(load_state_dict(folder / f))
        return state
    binf = folder / "pytorch_model.bin"
    if binf.is_file():
        try:
            return torch.load(binf, map_location="cpu", weights_only=True)
        except Exception as e:  # noqa: BLE001 - report any unpickling refusal with the file
            raise DataError(f"cannot read pytorch_model.bin: {describe_load_error(e)}", binf) from None
    raise DataError("no model.safetensors, model.safetensors.index.json or pytorch_model.bin", folder)


def _read_vocab(folder: Path, vocab_size: int) -> list[str] | None:
    vf = folder / "vocab.json"
    if not vf.is_file():
        return None
    try:
        v = json.loads(vf.read_text())
    except json.JSONDecodeError as e:
        raise DataError(f"invalid JSON: {e.msg}", vf, e.lineno) from e
    if isinstance(v, dict) and v and all(isinstance(x, dict) for x in v.values()):
        v = next(iter(v.values()))  # multi-language vocab: {lang: {sym: id}}
    if not isinstance(v, dict):
        raise DataError("expected a mapping symbol -> id", vf)
    names = [None] * vocab_size
    for sym, i in v.items():
        if isinstance(i, int) and 0 <= i < vocab_size:
            names[i] = sym
    if any(n is None for n in names):
        return None
    return names


def load_hf(folder: str | Path) -> nn.Module:
    """Our model (Wav2Vec2Model / ForPretraining / ForCTC) with the weights of an HF Wav2Vec2 folder."""
    folder = Path(folder)
    cfg_file = folder / "config.json"
    if not cfg_file.is_file():
        raise DataError("config.json not found (expected an HF transformers Wav2Vec2 folder)", folder)
    try:
        d = json.loads(cfg_file.read_text())
    except json.JSONDecodeError as e:
        raise DataError(f"invalid JSON: {e.msg}", cfg_file, e.lineno) from e
    archs = d.get("architectures") or []
    hf_arch = next((a for a in archs if a in HF_ARCH), None)
    state = read_hf_state_dict(folder)
    if hf_arch is None:  # infer from keys
        if "lm_head.weight" in state:
            hf_arch = "Wav2Vec2ForCTC"
        elif "quantizer.codevectors" in state:
            hf_arch = "Wav2Vec2ForPreTraining"
        elif any(k.startswith("feature_extractor.") for k in state):
            hf_arch = "Wav2Vec2Model"
        else:
            raise DataError(f"unsupported architectures {archs}; expected one of {list(HF_ARCH)}", cfg_file)
    arch = HF_ARCH[hf_arch]
    cfg = config_from_hf(d, str(cfg_file))
    vocab = None
    perm = None
    if arch == "Wav2Vec2ForCTC":
        vocab_size = int(d.get("vocab_size", state["lm_head.weight"].shape[0] if "lm_head.weight" in state else 32))
        blank = int(d.get("pad_token_id", 0) if d.get("pad_token_id") is not None else 0)
        vocab = _read_vocab(folder, vocab_size)
        if blank != 0:
            perm = [blank] + [i for i in range(vocab_size) if i != blank]
            if vocab is not None:
                vocab = [vocab[i] for i in perm]
        if vocab is not None and vocab[0] == "<pad>" and len(vocab) > 1 and vocab[1] == "<s>":
            vocab[0], vocab[1] = "<s>", "<pad>"
        delimiter = _read_word_delimiter(folder)
        if vocab is not None and delimiter not in (None, WORD_SEP) and delimiter in vocab and WORD_SEP not in vocab:
            vocab[vocab.index(delimiter)] = WORD_SEP  # our word separator, whatever the tokenizer called it
        model: nn.Module = Wav2Vec2ForCTC(cfg, vocab_size, vocab)
    elif arch == "Wav2Vec2ForPretraining":
        model = Wav2Vec2ForPretraining(cfg)
    else:
        model = Wav2Vec2Model(cfg)
    ours = model.state_dict()
    new_state: dict[str, torch.Tensor] = {}
    used: set[str] = set()
    missing, shapes = [], []
    mask_key_optional = cfg.mask_prob == 0 and cfg.mask_channel_prob == 0
    for our_key, hf_key in key_table(cfg, arch):
        found = next((k for k in _alternatives(hf_key) if k in state), None)
        if found is None:
            if hf_key.endswith("masked_spec_embed") and mask_key_optional:
                continue  # HF creates it only when a mask probability is > 0; keep our init
            missing.append(hf_key)
            continue
        used.add(found)
        v = state[found]
        if our_key.startswith("head.") and perm is not None:
            v = v[perm]
        if tuple(v.shape) != tuple(ours[our_key].shape):
            shapes.append(f"{found}: file {tuple(v.shape)} vs expected {tuple(ours[our_key].shape)}")
            continue
        new_state[our_key] = v
    unexpected = sorted(set(state) - used)
    if missing or unexpected or shapes:
        raise DataError(f"HF {hf_arch} weights do not match the key table:"
                        + mismatch_report(missing, unexpected, shapes), folder)
    model.load_state_dict(new_state, strict=False)
    model.normalize_input = _read_do_normalize(folder)
    return model


def _optional_json(path: Path) -> dict | None:
    """A JSON file of an HF folder that may be absent (tokenizer and feature extractor configs)."""
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise DataError(f"invalid JSON: {e.msg}", path, e.lineno) from e


def _read_word_delimiter(folder: Path) -> str | None:
    """``word_delimiter_token`` of the folder's Wav2Vec2CTCTokenizer config, None without one."""
    value = (_optional_json(folder / "tokenizer_config.json") or {}).get("word_delimiter_token")
    return value.get("content") if isinstance(value, dict) else value


def _read_do_normalize(folder: Path) -> bool | None:
    """``do_normalize`` of the folder's feature extractor (``preprocessor_config.json``), None without one."""
    d = _optional_json(folder / "preprocessor_config.json") or {}
    return bool(d["do_normalize"]) if "do_normalize" in d else None


# ---------------------------------------------------------------------------- writing
def save_hf(model: nn.Module, folder: str | Path, weight_norm_keys: str = "parametrizations") -> Path:
    """Write ``model`` as an HF transformers Wav2Vec2 folder (config.json, model.safetensors,
    preprocessor_config.json with the model's ``normalize_input`` as ``do_normalize`` and, for CTC with a
    vocabulary, vocab.json). ``weight_norm_keys``: "parametrizations" (HF >= 4.x with torch
    parametrizations) or "weight_g" (older spelling)."""
    if weight_norm_keys not in ("parametrizations", "weight_g"):
        raise ValueError(f"weight_norm_keys must be 'parametrizations' or 'weight_g', got {weight_norm_keys!r}")
    arch = type(model).__name__
    if arch not in OUR_TO_HF_ARCH:
        raise TypeError(f"cannot export a {arch}")
    cfg: Wav2Vec2Config = model.cfg
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    ours = model.state_dict()
    out: dict[str, torch.Tensor] = {}
    skip_mask = cfg.mask_prob == 0 and cfg.mask_channel_prob == 0
    for our_key, hf_key in key_table(cfg, arch):
        if hf_key.endswith("masked_spec_embed") and skip_mask:
            continue  # HF would not create it
        if weight_norm_keys == "weight_g":
            hf_key = _alternatives(hf_key)[-1]
        out[hf_key] = ours[our_key]
    vocab_size = model.vocab_size if isinstance(model, Wav2Vec2ForCTC) else None
    save_state_dict(out, folder / "model.safetensors", metadata={"format": "pt"})
    hf_cfg = config_to_hf(cfg, arch, vocab_size)
    atomic_write_bytes(folder / "config.json", (json.dumps(hf_cfg, indent=2) + "\n").encode())
    # HF's Wav2Vec2FeatureExtractor: what AutoFeatureExtractor / pipelines read (fairseq's default: no
    # normalisation when the model does not record it)
    fe = {
        "feature_extractor_type": "Wav2Vec2FeatureExtractor",
        "feature_size": 1,
        "sampling_rate": SAMPLE_RATE,
        "padding_value": 0.0,
        "padding_side": "right",
        "do_normalize": bool(getattr(model, "normalize_input", None)),
        "return_attention_mask": cfg.extractor_mode == "layer_norm",
    }
    atomic_write_bytes(folder / "preprocessor_config.json", (json.dumps(fe, indent=2) + "\n").encode())
    if isinstance(model, Wav2Vec2ForCTC) and model.vocab is not None:
        names = list(model.vocab)
        if names[:2] == ["<s>", "<pad>"]:
            names[0], names[1] = "<pad>", "<s>"
        atomic_write_bytes(folder / "vocab.json",
                            (json.dumps({s: i for i, s in enumerate(names)}, indent=2, ensure_ascii=False) + "\n")
                            .encode())
        # Wav2Vec2CTCTokenizer: HF's <pad> is the CTC blank (our <s> at 0), "|" separates words
        tok = {
            "tokenizer_class": "Wav2Vec2CTCTokenizer",
            "bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>", "pad_token": "<pad>",
            "word_delimiter_token": WORD_SEP, "replace_word_delimiter_char": " ", "do_lower_case": False,
            "clean_up_tokenization_spaces": False,
        }
        atomic_write_bytes(folder / "tokenizer_config.json", (json.dumps(tok, indent=2) + "\n").encode())
        special = {k: tok[k] for k in ("bos_token", "eos_token", "unk_token", "pad_token")}
        atomic_write_bytes(folder / "special_tokens_map.json", (json.dumps(special, indent=2) + "\n").encode())
    return folder
