"""Read fairseq wav2vec 2.0 ``.pt`` checkpoints (pretrained and CTC fine-tuned) without running their code.

fairseq checkpoints are pickles holding ``model`` (the state dict), ``cfg`` (a plain dict from OmegaConf;
very old files: an ``argparse.Namespace`` under ``args``), ``optimizer_history``, ``extra_state``, ...
``torch.load(weights_only=True)`` refuses them (Namespace, numpy scalars, fairseq meter objects). We
unpickle them with a *restricted unpickler* instead: ``find_class`` returns only an allow-list of
constructors (torch tensor/storage rebuilders, ``collections.OrderedDict``, ``argparse.Namespace``, numpy
scalar/array rebuilders, ``_codecs.encode``); a class from ``fairseq.*`` / ``omegaconf.*`` becomes an
inert placeholder that only stores its pickled state (meters, DictConfig nodes); any other global
(``os.system``, ``builtins.eval``, ...) is refused with a DataError naming the file and the global.

fairseq ``conv_feature_layers`` strings (``"[(512, 10, 5)] + [(512, 3, 2)] * 4"``) are evaluated by a
literal-only arithmetic evaluator (lists, tuples, numbers, ``+``, ``*``), never ``eval``.

    model = load_fairseq("wav2vec_small.pt")                 # Wav2Vec2ForPretraining
    model = load_fairseq("wav2vec_small_960h.pt", "dict.ltr.txt")   # Wav2Vec2ForCTC with its vocabulary
"""

from __future__ import annotations

import argparse
import ast
import collections
import io
import pickle
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import torch
from torch import nn

from speech_ssl.config import ConfigError, from_dict, to_dict
from speech_ssl.data.audio import SAMPLE_RATE
from speech_ssl.data.units import Dictionary
from speech_ssl.errors import DataError
from speech_ssl.files import atomic_write_bytes
from speech_ssl.models.checkpoint import mismatch_report
from speech_ssl.models.config import Wav2Vec2Config
from speech_ssl.models.wav2vec2 import Wav2Vec2ForCTC, Wav2Vec2ForPretraining

FT_PREFIX = "w2v_encoder.w2v_model."


# ---------------------------------------------------------------------------- restricted unpickler
class _Opaque:
    """Placeholder for a class we do not import (fairseq meters, omegaconf nodes): keeps its state only."""

    _name = "?"

    def __init__(self, *args, **kwargs):
        self.args, self.kwargs, self.state = args, kwargs, None

    def __setstate__(self, state):
        self.state = state

    def __repr__(self) -> str:
        return f"<opaque {self._name}>"


def _allowed_global(module: str, name: str):
    if module == "collections" and name == "OrderedDict":
        return collections.OrderedDict
    if module == "argparse" and name == "Namespace":
        return argparse.Namespace
    if module == "_codecs" and name == "encode":
        import codecs

        return codecs.encode
    if module == "builtins" and name in ("set", "frozenset", "slice", "complex", "bytearray"):
        return {"set": set, "frozenset": frozenset, "slice": slice, "complex": complex, "bytearray": bytearray}[name]
    if module == "torch" and (name.endswith("Storage") or name == "Size" or isinstance(getattr(torch, name, None),
                                                                                     torch.dtype)):
        return getattr(torch, name)
    if module == "torch._utils" and name in ("_rebuild_tensor_v2", "_rebuild_parameter",
                                             "_rebuild_parameter_with_state", "_rebuild_tensor"):
        return getattr(torch._utils, name)
    if module == "torch._tensor" and name == "_rebuild_from_type_v2":
        return torch._tensor._rebuild_from_type_v2
    if module == "torch.nn.parameter" and name == "Parameter":
        return torch.nn.Parameter
    if module == "torch" and name == "Tensor":
        return torch.Tensor
    if module in ("numpy.core.multiarray", "numpy._core.multiarray") and name in ("scalar", "_reconstruct"):
        core = getattr(np, "_core", None)
        if core is None:  # numpy 1.x
            core = np.core
        return getattr(core.multiarray, name)
    if module == "numpy" and name in ("dtype", "ndarray"):
        return getattr(np, name)
    if module == "numpy.dtypes" and name.endswith("DType"):
        return getattr(np.dtypes, name)
    if module.split(".")[0] in ("fairseq", "omegaconf", "fairseq_cli"):
        return type(name, (_Opaque,), {"_name": f"{module}.{name}"})
    return None


class _RestrictedUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str):
        obj = _allowed_global(module, name)
        if obj is None:
            raise pickle.UnpicklingError(f"refusing to load global {module}.{name} (not on the allow-list)")
        return obj


_restricted_pickle = SimpleNamespace(
    Unpickler=_RestrictedUnpickler,
    load=lambda f, **kw: _RestrictedUnpickler(f, **kw).load(),
    loads=lambda b, **kw: _RestrictedUnpickler(__import__("io").BytesIO(b), **kw).load(),
    __name__="speech_ssl_restricted_pickle",
)


def read_fairseq_checkpoint(path: str | Path) -> dict:
    """The checkpoint dict, unpickled with the allow-list above (DataError naming the file otherwise)."""
    path = Path(path)
    if not path.is_file():
        raise DataError("fairseq checkpoint not found", path)
    try:
        state = torch.load(path, map_location="cpu", weights_only=False, pickle_module=_restricted_pickle)
    except pickle.UnpicklingError as e:
        raise DataError(f"unsafe or unreadable pickle: {e}", path) from e
    except Exception as e:  # noqa: BLE001 - zip/format errors from torch.load
        raise DataError(f"cannot read fairseq checkpoint: {type(e).__name__}: {e}", path) from e
    if not isinstance(state, dict) or "model" not in state:
        raise DataError("not a fairseq checkpoint (no 'model' entry)", path)
    return state


# ---------------------------------------------------------------------------- config
def literal_arith(text: str) -> Any:
    """Evaluate a literal expression of lists/tuples/numbers with + and * (no names, no calls)."""
    def ev(node: ast.AST) -> Any:
        if isinstance(node, ast.Expression):
            return ev(node.body)
        if isinstance(node, ast.Constant) and isinstance(node.value, (int, float)):
            return node.value
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
            return -ev(node.operand)
        if isinstance(node, ast.List):
            return [ev(e) for e in node.elts]
        if isinstance(node, ast.Tuple):
            return tuple(ev(e) for e in node.elts)
        if isinstance(node, ast.BinOp) and isinstance(node.op, (ast.Add, ast.Mult)):
            a, b = ev(node.left), ev(node.right)
            return a + b if isinstance(node.op, ast.Add) else a * b
        raise ValueError(f"unsupported expression element {ast.dump(node)[:60]}")

    return ev(ast.parse(text.strip(), mode="eval"))


def _as_dict(obj: Any) -> dict:
    if obj is None:
        return {}
    if isinstance(obj, argparse.Namespace):
        return dict(vars(obj))
    if isinstance(obj, _Opaque):
        raise ValueError("the config is an omegaconf object; re-save the checkpoint with a plain-dict cfg")
    if isinstance(obj, dict):
        return dict(obj)
    raise ValueError(f"unexpected config type {type(obj).__name__}")


_UNSUPPORTED = {
    "quantize_input": False, "target_glu": False, "negatives_from_everywhere": False, "codebook_negatives": 0,
    "pos_conv_depth": 1, "conv_pos_batch_norm": False, "quantizer_depth": 1, "layer_type": "transformer",
    "combine_groups": False, "same_quantizer": False, "adp_num": -1,
}
_FT_OVERRIDES = {  # fine-tuning field -> pretraining field (fairseq Wav2VecEncoder arg_overrides)
    "dropout": "dropout", "activation_dropout": "activation_dropout", "dropout_input": "dropout_input",
    "attention_dropout": "attention_dropout", "mask_length": "mask_length", "mask_prob": "mask_prob",
    "require_same_masks": "require_same_masks", "mask_selection": "mask_selection", "mask_other": "mask_other",
    "no_mask_overlap": "no_mask_overlap", "mask_channel_length": "mask_channel_length",
    "mask_channel_prob": "mask_channel_prob", "mask_channel_before": "mask_channel_before",
    "mask_channel_selection": "mask_channel_selection", "mask_channel_other": "mask_channel_other",
    "no_mask_channel_overlap": "no_mask_channel_overlap", "layerdrop": "encoder_layerdrop",
    "feature_grad_mult": "feature_grad_mult", "final_dropout": "final_dropout",
}


def config_from_fairseq(model_cfg: dict, criterion_cfg: dict | None = None, source: str | None = None
                        ) -> Wav2Vec2Config:
    """Our config from a fairseq ``cfg["model"]`` mapping (pretraining or fine-tuning)."""
    model_cfg = dict(model_cfg)
    ft = "w2v_args" in model_cfg or "w2v_path" in model_cfg
    if ft:
        w2v = model_cfg.get("w2v_args")
        if w2v is None:
            raise DataError("fine-tuned checkpoint without w2v_args (the pretraining config)", source)
        w2v = _as_dict(w2v)
        pre = _as_dict(w2v.get("model", w2v))  # new: w2v_args.model; old Namespace: flat
        for k_ft, k_pre in _FT_OVERRIDES.items():
            if k_ft in model_cfg and model_cfg[k_ft] is not None:
                pre[k_pre] = model_cfg[k_ft]
        if criterion_cfg is None and isinstance(w2v.get("criterion"), dict):
            criterion_cfg = w2v["criterion"]
        model_cfg = pre
    for k, ok in _UNSUPPORTED.items():
        if k in model_cfg and model_cfg[k] not in (ok, None):
            raise DataError(f"unsupported fairseq model option {k}={model_cfg[k]!r}", source)
    fields = set(Wav2Vec2Config.__dataclass_fields__)
    d: dict[str, Any] = {}
    for k, v in model_cfg.items():
        if k not in fields or v is None:
            continue
        if k in ("conv_feature_layers", "latent_temp") and isinstance(v, str):
            try:
                v = literal_arith(v)
            except (ValueError, SyntaxError) as e:
                raise DataError(f"cannot parse {k}={v!r}: {e}", source) from e
        if k == "conv_feature_layers":
            v = [list(t) for t in v]
        if isinstance(v, tuple):
            v = list(v)
        d[k] = v
    if criterion_cfg and criterion_cfg.get("loss_weights") is not None:
        lw = criterion_cfg["loss_weights"]
        lw = literal_arith(lw) if isinstance(lw, str) else lw
        d["loss_weights"] = [float(x) for x in lw] + [0.0] * (2 - len(lw))
    elif ft or "loss_weights" not in d:
        d.setdefault("loss_weights", [0.1, 10.0 if d.get("extractor_mode", "default") == "default" else 0.0])
    d["no_mask_overlap"] = False  # validated above only if set: our sampler always allows overlaps
    d["no_mask_channel_overlap"] = False
    try:
        return from_dict(Wav2Vec2Config, d, source)
    except ConfigError as e:
        raise DataError(str(e), source) from e


# ---------------------------------------------------------------------------- keys
def key_table(cfg: Wav2Vec2Config, architecture: str) -> list[tuple[str, str]]:
    """(our key, fairseq key) pairs. Pretraining: bare fairseq keys; CTC: ``w2v_encoder.w2v_model.`` +
    ``w2v_encoder.proj``. The positional conv uses ``weight_g``/``weight_v`` (either spelling is read)."""
    ctc = architecture == "Wav2Vec2ForCTC"
    f = FT_PREFIX if ctc else ""
    t: list[tuple[str, str]] = []

    def both(ours: str, theirs: str, params=("weight", "bias")) -> None:
        for p in params:
            t.append((f"wav2vec2.{ours}.{p}", f"{f}{theirs}.{p}"))

    for i in range(len(cfg.conv_feature_layers)):
        both(f"feature_encoder.blocks.{i}.conv", f"feature_extractor.conv_layers.{i}.0",
             ("weight", "bias") if cfg.conv_bias else ("weight",))
        if cfg.extractor_mode == "layer_norm":
            both(f"feature_encoder.blocks.{i}.norm", f"feature_extractor.conv_layers.{i}.2.1")
        elif i == 0:
            both("feature_encoder.blocks.0.norm", "feature_extractor.conv_layers.0.2")
    both("feature_norm", "layer_norm")
    both("feature_proj", "post_extract_proj")
    t.append(("wav2vec2.mask_emb", f"{f}mask_emb"))
    t.append(("wav2vec2.encoder.pos_conv.conv.parametrizations.weight.original0", f"{f}encoder.pos_conv.0.weight_g"))
    t.append(("wav2vec2.encoder.pos_conv.conv.parametrizations.weight.original1", f"{f}encoder.pos_conv.0.weight_v"))
    t.append(("wav2vec2.encoder.pos_conv.conv.bias", f"{f}encoder.pos_conv.0.bias"))
    both("encoder.layer_norm", "encoder.layer_norm")
    for n in range(cfg.encoder_layers):
        o, s = f"encoder.layers.{n}", f"encoder.layers.{n}"
        for p in ("q", "k", "v", "out"):
            both(f"{o}.attn.{p}_proj", f"{s}.self_attn.{p}_proj")
        both(f"{o}.attn_norm", f"{s}.self_attn_layer_norm")
        both(f"{o}.fc1", f"{s}.fc1")
        both(f"{o}.fc2", f"{s}.fc2")
        both(f"{o}.final_norm", f"{s}.final_layer_norm")
    if ctc:
        t += [("head.weight", "w2v_encoder.proj.weight"), ("head.bias", "w2v_encoder.proj.bias")]
    else:
        t += [("quantizer.codevectors", "quantizer.vars"), ("quantizer.weight_proj.weight", "quantizer.weight_proj.weight"),
              ("quantizer.weight_proj.bias", "quantizer.weight_proj.bias"), ("project_q.weight", "project_q.weight"),
              ("project_q.bias", "project_q.bias"), ("final_proj.weight", "final_proj.weight"),
              ("final_proj.bias", "final_proj.bias")]
    return t


def _alternatives(key: str) -> list[str]:
    for old, new in ((".weight_g", ".parametrizations.weight.original0"),
                     (".weight_v", ".parametrizations.weight.original1")):
        if key.endswith(old):
            return [key, key[: -len(old)] + new]
    return [key]


def load_fairseq(path: str | Path, dict_path: str | Path | None = None) -> nn.Module:
    """Our Wav2Vec2ForPretraining (pretrained checkpoint) or Wav2Vec2ForCTC (fine-tuned) from a fairseq .pt.
    ``dict_path``: the fine-tuning ``dict.ltr.txt``, to attach the vocabulary (fairseq does not store it)."""
    path = Path(path)
    ckpt = read_fairseq_checkpoint(path)
    state = ckpt["model"]
    normalize = None
    try:
        if ckpt.get("cfg") is not None:
            cfg_all = _as_dict(ckpt["cfg"])
            model_cfg = _as_dict(cfg_all.get("model"))
            crit = cfg_all.get("criterion")
            crit = _as_dict(crit) if crit is not None else None
            task = cfg_all.get("task")
            normalize = _as_dict(task).get("normalize") if task is not None else None
        elif ckpt.get("args") is not None:
            model_cfg = _as_dict(ckpt["args"])
            crit = model_cfg
            normalize = model_cfg.get("normalize")
        else:
            raise DataError("checkpoint has neither 'cfg' nor 'args'", path)
    except ValueError as e:
        raise DataError(str(e), path) from e
    cfg = config_from_fairseq(model_cfg, crit, str(path))
    ctc = any(k.startswith("w2v_encoder.") for k in state)
    if ctc:
        if "w2v_encoder.proj.weight" not in state:
            raise DataError("fine-tuned checkpoint without w2v_encoder.proj (not a CTC model?)", path)
        vocab_size = state["w2v_encoder.proj.weight"].shape[0]
        vocab = Dictionary.load(dict_path).symbols if dict_path else None
        if vocab is not None and len(vocab) != vocab_size:
            raise DataError(f"dictionary has {len(vocab)} symbols (with the 4 specials) but the model has "
                            f"{vocab_size} outputs", dict_path)
        model: nn.Module = Wav2Vec2ForCTC(cfg, vocab_size, vocab)
        arch = "Wav2Vec2ForCTC"
    else:
        model = Wav2Vec2ForPretraining(cfg)
        arch = "Wav2Vec2ForPretraining"
    ours = model.state_dict()
    new, used, missing, shapes = {}, set(), [], []
    prefix = FT_PREFIX if ctc else ""
    for our_key, fs_key in key_table(cfg, arch):
        found = next((k for k in _alternatives(fs_key) if k in state), None)
        if found is None and fs_key.startswith(f"{prefix}post_extract_proj.") and \
                cfg.conv_dim == cfg.encoder_embed_dim:
            # fairseq has no projection when conv dim == model dim: identity
            new[our_key] = torch.eye(cfg.conv_dim) if our_key.endswith("weight") else torch.zeros(cfg.conv_dim)
            continue
        if found is None:
            missing.append(fs_key)
            continue
        used.add(found)
        v = state[found]
        if tuple(v.shape) != tuple(ours[our_key].shape):
            shapes.append(f"{found}: file {tuple(v.shape)} vs expected {tuple(ours[our_key].shape)}")
            continue
        new[our_key] = v.float()
    ignorable = ("w2v_encoder.w2v_model.quantizer.", "w2v_encoder.w2v_model.project_q.",
                 "w2v_encoder.w2v_model.final_proj.", "_float_tensor")
    unexpected = sorted(k for k in set(state) - used if not any(s in k for s in ignorable))
    if missing or unexpected or shapes:
        raise DataError("fairseq weights do not match the key table:" + mismatch_report(missing, unexpected, shapes),
                        path)
    model.load_state_dict(new, strict=True)
    model.normalize_input = None if normalize is None else bool(normalize)  # fairseq's task.normalize
    return model


# ---------------------------------------------------------------------------- writing
# Our config fields that fairseq's Wav2Vec2Config does not have (loss_weights belongs to its criterion).
_OURS_ONLY = {"final_dropout", "layer_norm_eps", "loss_weights", "mask_channel_min_masks", "min_masks"}


def config_to_fairseq(cfg: Wav2Vec2Config) -> dict[str, Any]:
    """fairseq's ``cfg.model`` of a pretraining checkpoint (``Wav2Vec2Config``, ``_name: wav2vec2``)."""
    d: dict[str, Any] = {"_name": "wav2vec2", "quantize_targets": True}
    for k, v in to_dict(cfg).items():
        if k in _OURS_ONLY:
            continue
        if k == "conv_feature_layers":  # fairseq keeps it as a Python literal string
            v = "[" + ", ".join(f"({a}, {b}, {c})" for a, b, c in v) + "]"
        d[k] = list(v) if isinstance(v, tuple) else v
    return d


def save_fairseq(model: nn.Module, path: str | Path) -> Path:
    """Write a fairseq checkpoint ``.pt``: plain tensors under ``model`` (fairseq's parameter names) and plain
    dicts under ``cfg`` (model, task, criterion), so fairseq's own ``Wav2Vec2Model`` / ``Wav2VecCtc`` load it and
    nothing in it needs our classes to unpickle. A CTC model's vocabulary is not stored (fairseq keeps it in the
    task's ``dict.ltr.txt``); its dictionary file is written beside the ``.pt`` when the model has one."""
    path = Path(path)
    arch = type(model).__name__
    if arch not in ("Wav2Vec2ForPretraining", "Wav2Vec2ForCTC"):
        raise TypeError(f"cannot export a {arch} to fairseq (a pretraining or CTC model)")
    cfg: Wav2Vec2Config = model.cfg
    ours = model.state_dict()
    identity_proj = cfg.conv_dim == cfg.encoder_embed_dim  # fairseq has no post_extract_proj then
    state = {fs: ours[o].detach().cpu().float().contiguous() for o, fs in key_table(cfg, arch)
             if not (identity_proj and ".post_extract_proj." in f".{fs}")}
    normalize = bool(getattr(model, "normalize_input", None))
    pre = config_to_fairseq(cfg)
    criterion_pre = {"_name": "wav2vec", "infonce": True, "loss_weights": list(cfg.loss_weights),
                     "log_keys": ["prob_perplexity", "code_perplexity", "temp"]}
    task_pre = {"_name": "audio_pretraining", "data": "", "normalize": normalize, "sample_rate": SAMPLE_RATE}
    if arch == "Wav2Vec2ForPretraining":
        ckpt_cfg = {"model": pre, "task": task_pre, "criterion": criterion_pre}
    else:
        ft = {"_name": "wav2vec_ctc", "w2v_path": "", "normalize": normalize, "data": "",
              "w2v_args": {"model": pre, "task": task_pre, "criterion": criterion_pre},
              "freeze_finetune_updates": int(getattr(model, "freeze_finetune_updates", 0)),
              "apply_mask": cfg.mask_prob > 0 or cfg.mask_channel_prob > 0}
        for k_ft, k_pre in _FT_OVERRIDES.items():
            if k_pre in pre:
                ft[k_ft] = pre[k_pre]
        ft["final_dropout"] = cfg.final_dropout
        ckpt_cfg = {"model": ft, "task": {"_name": "audio_finetuning", "data": "", "normalize": normalize, "labels": "ltr",
                                          "sample_rate": SAMPLE_RATE},
                    "criterion": {"_name": "ctc", "zero_infinity": True}}
    buf = io.BytesIO()
    torch.save({"cfg": ckpt_cfg, "model": state, "optimizer_history": [], "extra_state": {}}, buf)
    atomic_write_bytes(path, buf.getvalue())
    vocab = getattr(model, "vocab", None)
    if arch == "Wav2Vec2ForCTC" and vocab is not None:
        Dictionary(vocab[4:]).save(path.with_name(f"dict.{path.stem}.txt"))
    return path
