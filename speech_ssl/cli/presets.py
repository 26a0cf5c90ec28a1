"""``speech-ssl presets``: the model presets with parameter counts measured from the code."""

from __future__ import annotations

import argparse


def add_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "presets", help="list model presets (parameters counted from the code)",
        description="List the wav2vec 2.0 presets. Parameter counts are measured by building each model "
                    "on the meta device (no memory, no weights).",
    )
    p.add_argument("--show", metavar="NAME", help="print one preset's full config as YAML")
    p.set_defaults(func=run)


def preset_rows() -> list[dict]:
    import torch

    from speech_ssl.models import Wav2Vec2ForPretraining, get_preset, preset_names

    rows = []
    for name in preset_names():
        cfg = get_preset(name)
        with torch.device("meta"):
            m = Wav2Vec2ForPretraining(cfg)
        rows.append({
            "name": name,
            "params": sum(p.numel() for p in m.parameters()),
            "backbone": sum(p.numel() for p in m.wav2vec2.parameters()),
            "layers": cfg.encoder_layers,
            "dim": cfg.encoder_embed_dim,
            "ffn": cfg.encoder_ffn_embed_dim,
            "heads": cfg.encoder_attention_heads,
            "extractor": "layer_norm" if cfg.extractor_mode == "layer_norm" else "group_norm",
            "transformer": "pre-LN" if cfg.layer_norm_first else "post-LN",
        })
    return rows


def _fmt(n: int) -> str:
    return f"{n / 1e9:.2f}B" if n >= 1e9 else (f"{n / 1e6:.1f}M" if n >= 1e6 else f"{n / 1e3:.0f}K")


def run(args: argparse.Namespace) -> int:
    if args.show:
        import yaml

        from speech_ssl.config import to_dict
        from speech_ssl.models import get_preset

        print(yaml.safe_dump(to_dict(get_preset(args.show)), sort_keys=False), end="")
        return 0
    rows = preset_rows()
    head = ["name", "params", "backbone", "layers", "dim", "ffn", "heads", "extractor", "transformer"]
    table = [[r["name"], _fmt(r["params"]), _fmt(r["backbone"]), str(r["layers"]), str(r["dim"]), str(r["ffn"]),
              str(r["heads"]), r["extractor"], r["transformer"]] for r in rows]
    widths = [max(len(h), *(len(t[i]) for t in table)) for i, h in enumerate(head)]
    print("  ".join(h.ljust(w) for h, w in zip(head, widths)))
    for t in table:
        print("  ".join(c.ljust(w) for c, w in zip(t, widths)))
    print("params: Wav2Vec2ForPretraining (with quantizer and heads); backbone: Wav2Vec2Model")
    return 0
