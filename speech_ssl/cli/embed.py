"""``speech-ssl embed``: layer-N hidden states of one audio file, or of every row of a manifest.

    speech-ssl embed --checkpoint CK --layer 6 --out x.npy AUDIO
    speech-ssl embed --checkpoint CK --layer 6 --manifest train.tsv --out feats/   # feats/<id>.npy + index.tsv
    speech-ssl embed ... --chunk-seconds 30        # long recordings: 30 s chunks with 2 s of context each side
"""

from __future__ import annotations

import argparse


def add_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "embed", help="write layer-N hidden states as float32 (frames x dim) .npy, for a file or a manifest",
        description="Layer N means exactly HF transformers' hidden_states[N] for the same weights: 0 is the "
                    "input of the first Transformer layer, N the output of layer N (before the final "
                    "LayerNorm of pre-LN models); 'last' is the model output (after that LayerNorm). "
                    "Without --chunk-seconds a file is one forward pass (memory grows with the square of "
                    "its length); with it, long audio is cut into chunks, each run with context on both "
                    "sides whose frames are discarded, so the frame count is the same and the values "
                    "differ only through the limited context.",
    )
    p.add_argument("--checkpoint", required=True,
                   help="our checkpoint folder / .safetensors, an HF Wav2Vec2 folder, or a fairseq .pt")
    p.add_argument("--layer", default=None, help="0..num_layers or 'last' (default: num_layers)")
    p.add_argument("--out", required=True,
                   help="output .npy path (one file) or folder (--manifest: <id>.npy per row and index.tsv)")
    p.add_argument("--manifest", default=None,
                   help="a fairseq manifest (.tsv): embed every row; rows already written are skipped")
    p.add_argument("--normalize", choices=["auto", "yes", "no"], default="auto",
                   help="per-utterance zero mean / unit variance of the waveform; auto (default): as the checkpoint "
                        "records it (normalize in config.json, do_normalize of an HF folder, fairseq's "
                        "task.normalize), no when it records nothing")
    p.add_argument("--chunk-seconds", type=float, default=0.0,
                   help="run audio longer than this in chunks of this length (0 = whole file in one pass)")
    p.add_argument("--chunk-context-seconds", type=float, default=2.0,
                   help="audio on each side of a chunk that the model sees but whose frames are dropped")
    p.add_argument("--device", default="cpu")
    p.add_argument("audio", nargs="?", help="audio file (any format soundfile reads; resampled to 16 kHz mono)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import sys

    from speech_ssl.decode.embed import embed_file, embed_manifest, save_npy
    from speech_ssl.errors import DataError
    from speech_ssl.interop.auto import load_any

    if (args.manifest is None) == (args.audio is None):
        print("speech-ssl embed: give one AUDIO file or --manifest M.tsv", file=sys.stderr)
        return 2
    try:
        model = load_any(args.checkpoint)
        normalize = {"auto": None, "yes": True, "no": False}[args.normalize]
        if args.manifest:
            written, skipped = embed_manifest(model, args.manifest, args.out, args.layer, normalize,
                                              args.device, args.chunk_seconds, args.chunk_context_seconds,
                                              checkpoint=args.checkpoint)
            print(f"{args.out}: {written} utterances embedded, {skipped} already there; index.tsv lists them")
            return 0
        arr = embed_file(model, args.audio, args.layer, normalize, args.device, args.chunk_seconds,
                         args.chunk_context_seconds)
    except (DataError, ValueError) as e:
        print(f"speech-ssl embed: {e}", file=sys.stderr)
        return 1
    save_npy(args.out, arr)
    print(f"{args.out}: {arr.shape[0]} frames x {arr.shape[1]} dims (layer {args.layer if args.layer else 'default'})")
    return 0
