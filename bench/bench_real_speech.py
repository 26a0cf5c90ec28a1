"""A small real-speech check, outside CI: five LibriVox clips, our CTC model vs pocketsphinx.

    make bench-real CHECKPOINT=exp/synth/finetune/en-10m-pretrained/final
    # or: .venv/bin/pip install pocketsphinx==5.1.1 && .venv/bin/python bench/bench_real_speech.py \
    #         --checkpoint CK [--lm en.arpa --lexicon en.lexicon.txt] [--cache ~/.cache/speech_ssl/real_speech]

The clips: pocketsphinx's source distribution carries five LibriVox recordings (Jane Austen, *Sense and
Sensibility* ch. 1, read for LibriVox, public domain; 16 kHz mono, 24.7 s, 71 words) with transcripts
under ``test/data/librivox/``. ``pip download --no-binary :all:`` fetches that sdist (pip prepares its
metadata first: ~3 min once, then the clips are cached). The references are normalised as the
LibriSpeech reader's labels are (upper case, punctuation dropped but apostrophes).

The recognisers, on the same clips:
- ours: ``speech_ssl.decode.run.decode_manifest`` on a fine-tuned checkpoint (greedy CTC, or beam search
  with ``--lm``/``--lexicon``), through a manifest written like every other one;
- pocketsphinx 5.1.1 (``pip install pocketsphinx``): its bundled US-English continuous HMM acoustic model,
  CMUdict and 3-gram LM, default settings.

It prints WER and CER for both, and each clip's hypotheses. This is a sanity check of the audio path on
real recordings and a statement of the domain gap between the eSpeak corpus and real speech: a model
trained only on synthetic speech is not expected to do well here. Not a target, not a test.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf

from speech_ssl.data.manifest import ManifestEntry, write_manifest
from speech_ssl.decode.io import read_transcripts
from speech_ssl.decode.score import normalize_text as reference
from speech_ssl.decode.score import score

POCKETSPHINX = "pocketsphinx==5.1.1"
CLIPS = "test/data/librivox/"


def fetch_clips(cache: Path) -> list[tuple[Path, str]]:
    """(wav, transcript) pairs in ``cache/librivox``, fetched from pocketsphinx's sdist with pip once."""
    clips = cache / "librivox"
    if not sorted(clips.glob("*.wav")):
        sdist_dir = cache / "sdist"
        if not sorted(sdist_dir.glob("pocketsphinx-*.tar.gz")):
            print(f"fetching {POCKETSPHINX}'s source distribution with pip (once; ~3 min) ...", file=sys.stderr)
            subprocess.run([sys.executable, "-m", "pip", "download", "-q", POCKETSPHINX, "--no-binary", ":all:",
                            "--no-deps", "-d", str(sdist_dir)], check=True)
        sdist = sorted(sdist_dir.glob("pocketsphinx-*.tar.gz"))[-1]
        tmp = cache / "librivox.partial"
        tmp.mkdir(parents=True, exist_ok=True)
        with tarfile.open(sdist) as tar:
            for m in tar.getmembers():
                rel = m.name.split("/", 1)[-1]
                if m.isfile() and rel.startswith(CLIPS) and rel.endswith((".wav", ".txt")):
                    m.name = Path(rel).name
                    tar.extract(m, tmp, filter="data")
        tmp.rename(clips)
    pairs = []
    for wav in sorted(clips.glob("*.wav")):
        txt = wav.with_suffix(".txt")
        if not txt.is_file():
            raise FileNotFoundError(f"{wav}: no transcript {txt.name} beside it")
        pairs.append((wav, txt.read_text(encoding="utf-8").strip()))
    if not pairs:
        raise FileNotFoundError(f"{clips}: no clips")
    return pairs


def ours(pairs, checkpoint: str, lm: str | None, lexicon: str | None, out: Path) -> dict:
    """Decode the clips through a manifest (+ .wrd labels) with our decoder; its summary dict."""
    from speech_ssl.decode.ctc import BeamConfig
    from speech_ssl.decode.run import DecodeOptions, decode_manifest

    write_manifest(out / "real.tsv", pairs[0][0].parent, [ManifestEntry(w.name, sf.info(str(w)).frames) for w, _ in pairs])
    (out / "real.wrd").write_text("".join(reference(t) + "\n" for _, t in pairs), encoding="utf-8")
    beam = BeamConfig(lm=lm, lexicon=lexicon) if lm else None
    opts = DecodeOptions(checkpoint=checkpoint, manifest=str(out / "real.tsv"), out=str(out / "ours"),
                         labels="wrd", beam=beam, num_workers=0, device="cpu")
    return decode_manifest(opts, log=lambda s: print("  " + s, file=sys.stderr))


def pocketsphinx(pairs) -> tuple[list[str], float]:
    """pocketsphinx's hypotheses (default US-English model and LM) and its decoding seconds."""
    try:
        from pocketsphinx import Decoder
    except ImportError as e:
        raise SystemExit(f"pocketsphinx is not installed: pip install {POCKETSPHINX}") from e
    decoder = Decoder(samprate=16000, loglevel="FATAL")
    hyps, seconds = [], 0.0
    for wav, _ in pairs:
        audio, sr = sf.read(str(wav), dtype="int16")
        if sr != 16000 or audio.ndim != 1:
            raise ValueError(f"{wav}: expected 16 kHz mono, got {sr} Hz, shape {audio.shape}")
        t0 = time.perf_counter()
        decoder.start_utt()
        decoder.process_raw(np.ascontiguousarray(audio).tobytes(), full_utt=True)
        decoder.end_utt()
        seconds += time.perf_counter() - t0
        hyp = decoder.hyp()
        hyps.append(reference(hyp.hypstr) if hyp is not None else "")
    return hyps, seconds


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--checkpoint", required=True, help="a fine-tuned CTC checkpoint of ours (letters, English)")
    p.add_argument("--lm", help="word ARPA LM for beam search (with --lexicon)")
    p.add_argument("--lexicon")
    p.add_argument("--cache", default=str(Path.home() / ".cache" / "speech_ssl" / "real_speech"))
    p.add_argument("--json", help="also write the figures here")
    args = p.parse_args()
    pairs = fetch_clips(Path(args.cache))
    refs = [reference(t) for _, t in pairs]
    with tempfile.TemporaryDirectory(prefix="real-speech-") as tmp:
        summary = ours(pairs, args.checkpoint, args.lm, args.lexicon, Path(tmp))
        _, our_hyps, _ = read_transcripts(Path(tmp) / "ours" / "hyp.txt")
    seconds = summary["audio_seconds"]
    ps_hyps, ps_seconds = pocketsphinx(pairs)
    table = {}
    for name, hyps, rtf in (
        (f"speech_ssl ({summary['decoder']})", our_hyps, summary["rtf"]),
        ("pocketsphinx 5.1.1 (en-us, its 3-gram)", ps_hyps, ps_seconds / seconds),
    ):
        w, c = score(refs, hyps, "word"), score(refs, hyps, "char")
        table[name] = {"wer": round(100 * w.error_rate, 1), "cer": round(100 * c.error_rate, 1), "rtf": round(rtf, 3),
                       "hyps": hyps}
    print(f"{len(pairs)} LibriVox clips, {seconds:.1f} s, {sum(len(r.split()) for r in refs)} words; "
          f"checkpoint {args.checkpoint}")
    print(f"{'system':45s} {'WER %':>7s} {'CER %':>7s} {'RTF':>7s}")
    for name, row in table.items():
        print(f"{name:45s} {row['wer']:7.1f} {row['cer']:7.1f} {row['rtf']:7.3f}")
    for i, r in enumerate(refs):
        print(f"\nREF  {r}")
        for name, row in table.items():
            print(f"{name.split()[0]:12s} {row['hyps'][i]}")
    if args.json:
        Path(args.json).write_text(json.dumps({"clips": len(pairs), "seconds": seconds, "checkpoint": args.checkpoint,
                                               "systems": table}, indent=1) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
