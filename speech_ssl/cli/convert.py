"""``speech-ssl convert --from FORMAT SRC --to FORMAT DST``: between our checkpoints, HF folders, fairseq."""

from __future__ import annotations

import argparse


def add_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "convert", help="convert checkpoints: speech_ssl <-> HF transformers, speech_ssl <-> fairseq .pt",
        description="Convert a wav2vec 2.0 checkpoint. Formats: speech_ssl (model.safetensors + config.json), "
                    "hf (HF transformers Wav2Vec2 folder), fairseq (a .pt file: plain tensors and config dicts that fairseq's own model classes load). Every key goes "
                    "through an explicit table; a mismatch lists all missing/unexpected keys and shapes. speech_ssl -> speech_ssl "
                    "between folders is a verified weights-only copy of a training checkpoint (every file of the "
                    "folder but train_state.pt, byte for byte, with a meta.json of its own; the destination is "
                    "replaced): the recipes make RUN/final this way.",
    )
    p.add_argument("--from", dest="src", nargs=2, metavar=("FORMAT", "PATH"),
                   help="source format (speech_ssl, hf, fairseq) and path")
    p.add_argument("--to", dest="dst", nargs=2, metavar=("FORMAT", "PATH"),
                   help="target format (speech_ssl, hf, fairseq) and path")
    p.add_argument("--detect", metavar="PATH", help="only print the format of the checkpoint at PATH")
    p.add_argument("--weight-norm-keys", choices=["parametrizations", "weight_g"], default="parametrizations",
                   help="HF output: spelling of the positional-conv weight-norm keys")
    p.set_defaults(func=run)


def _destination_problem(src, dst, dst_fmt: str) -> str | None:
    """Why writing ``dst`` would lose something (None when it would not): it is the source, holds the source,
    or is an existing file / folder that is not a checkpoint of the target format (a folder of data, a text
    file). An existing checkpoint of the target format is replaced, as a copy command would."""
    from speech_ssl.errors import DataError
    from speech_ssl.interop.auto import detect_format

    s, d = src.resolve(), dst.resolve()
    if d == s or s.is_relative_to(d):
        return "is the source (or holds it): it would be overwritten while it is read; choose another destination"
    if not dst.exists():
        return None
    folder = dst_fmt == "hf" or (dst_fmt == "speech_ssl" and dst.suffix != ".safetensors")
    if folder != dst.is_dir():
        return f"exists and is a {'file' if folder else 'folder'}; a {dst_fmt} checkpoint here is a " \
               f"{'folder' if folder else 'file'}: choose another destination"
    if folder and not any(dst.iterdir()):
        return None
    try:
        fmt = detect_format(dst)
    except DataError:
        fmt = None
    if fmt != dst_fmt:
        return f"exists and is not a {dst_fmt} checkpoint: it would be overwritten; choose another destination"
    return None


def run(args: argparse.Namespace) -> int:
    import sys

    from speech_ssl.errors import DataError
    from speech_ssl.interop.auto import FORMATS, detect_format, load_any

    if args.detect:
        try:
            print(detect_format(args.detect))
        except DataError as e:
            print(f"speech-ssl convert: {e}", file=sys.stderr)
            return 1
        return 0
    if args.src is None or args.dst is None:
        print("speech-ssl convert: give --from FORMAT PATH and --to FORMAT PATH (or --detect PATH)", file=sys.stderr)
        return 2
    (src_fmt, src), (dst_fmt, dst) = args.src, args.dst
    if src_fmt not in FORMATS:
        print(f"speech-ssl convert: unknown --from format {src_fmt!r} (known: {', '.join(FORMATS)})",
              file=sys.stderr)
        return 2
    if dst_fmt not in ("speech_ssl", "hf", "fairseq"):
        print(f"speech-ssl convert: unknown --to format {dst_fmt!r} (known: speech_ssl, hf, fairseq)",
              file=sys.stderr)
        return 2
    from pathlib import Path

    if problem := _destination_problem(Path(src), Path(dst), dst_fmt):
        print(f"speech-ssl convert: {dst}: {problem}", file=sys.stderr)
        return 2
    # between speech_ssl folders: a verified copy of the files (not a re-save that would drop dict.txt & co.)
    copy = src_fmt == dst_fmt == "speech_ssl" and Path(src).is_dir() and Path(dst).suffix != ".safetensors"
    try:
        if copy:
            from speech_ssl.train.checkpoint import export_weights

            export_weights(src, dst)
            model = load_any(dst, dst_fmt)  # the copy must load as a model
        else:
            model = load_any(src, src_fmt)
        if dst_fmt == "hf":
            from speech_ssl.interop.hf import save_hf

            save_hf(model, dst, weight_norm_keys=args.weight_norm_keys)
        elif dst_fmt == "fairseq":
            from speech_ssl.interop.fairseq import save_fairseq

            save_fairseq(model, dst)
        elif not copy:
            from speech_ssl.models.checkpoint import save_model

            save_model(model, dst)
    except DataError as e:
        print(f"speech-ssl convert: {e}", file=sys.stderr)
        return 1
    n = sum(p.numel() for p in model.parameters())
    print(f"{type(model).__name__} ({n:,} parameters): {src_fmt} {src} -> {dst_fmt} {dst}")
    return 0
