"""Decode a manifest with a fine-tuned CTC model: greedy or beam search, outputs, scoring, RTF, tuning.

    opts = DecodeOptions(checkpoint="exp/ft/checkpoints/best", manifest="data/dev.tsv", out="exp/decode")
    summary = decode_manifest(opts)

Writes into ``out``: ``hyp.txt`` (``id<TAB>text``), ``ref.txt`` when references exist, ``results.jsonl``
(one object per utterance: id, audio path, seconds, hypothesis, reference, error counts), and
``summary.json``; with ``tune=True`` also ``tune.json`` (the score of every grid point).

Utterances longer than ``chunk_seconds`` are cut into chunks of that length, each run with
``chunk_context_seconds`` of audio on both sides whose frames are discarded, and the chunk logits are
concatenated; with a GroupNorm feature encoder (BASE, ``extractor_mode=default``) the normalisation
statistics are per chunk, so results differ slightly from a whole-utterance pass.

The real-time factor is (model + search seconds) / audio seconds, audio loading excluded.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import torch

from speech_ssl.data.audio import SAMPLE_RATE
from speech_ssl.data.datasets import AudioDataset
from speech_ssl.data.manifest import read_labels, read_manifest
from speech_ssl.data.units import Dictionary, Unit, infer_unit, labels_to_text, tokens_to_text
from speech_ssl.data.workers import Guarded, GuardedCollate, raise_if_failed, stop_workers
from speech_ssl.decode.ctc import BeamConfig, BeamSearchDecoder, greedy_ctc
from speech_ssl.decode.io import write_jsonl, write_transcripts
from speech_ssl.decode.score import ScoreResult, default_speaker, score
from speech_ssl.device import resolve_device
from speech_ssl.errors import DataError
from speech_ssl.files import atomic_write_text, output_dir
from speech_ssl.models.checkpoint import load_model, model_normalize, read_checkpoint_config
from speech_ssl.models.feature_encoder import conv_output_length
from speech_ssl.models.inference import chunked_frames, length_batches
from speech_ssl.models.wav2vec2 import Wav2Vec2ForCTC
from speech_ssl.precision import autocast_dtype, slow_precision_note, store_weights_in
from speech_ssl.progress import progress

logger = logging.getLogger(__name__)


@dataclass
class DecodeOptions:
    checkpoint: str
    manifest: str
    out: str
    labels: str | None = None  # reference labels: an extension next to the manifest (wrd/ltr/phn) or a path
    dictionary: str | None = None  # default: dict*.txt in the checkpoint folder
    unit: Unit | None = None  # None: from the dictionary (| -> letter, ▁ -> spm, else phone)
    normalize: bool | None = None  # per-utterance waveform normalisation; None: from the checkpoint
    max_tokens: int = 1_600_000  # samples per batch
    chunk_seconds: float = 30.0  # 0: every utterance in one pass, however long
    chunk_context_seconds: float = 2.0
    device: str = "auto"
    beam: BeamConfig | None = None  # None: greedy
    tune: bool = False
    tune_lm_weights: list[float] = field(default_factory=lambda: [0.0, 0.5, 1.0, 1.5, 2.0, 2.5, 3.0])
    tune_word_scores: list[float] = field(default_factory=lambda: [-2.0, -1.0, 0.0, 1.0])
    limit: int | None = None  # decode only the first N rows
    num_workers: int = 2  # audio-loading processes (0: in the main process)
    precision: str = "fp32"  # fp32 | bf16 | fp16 (autocast for the model; log-softmax and search in fp32)


# ----------------------------------------------------------------------------------------------
# Model, dictionary, references
# ----------------------------------------------------------------------------------------------


def load_ctc_model(checkpoint: str | Path, device: torch.device):
    """(CTC model in eval mode, the ``extra`` dict of its config.json) from one of our checkpoints."""
    meta = read_checkpoint_config(checkpoint)
    model = load_model(checkpoint)
    if not isinstance(model, Wav2Vec2ForCTC):
        raise DataError(
            f"checkpoint holds a {type(model).__name__}, not a CTC model (fine-tune it first)", checkpoint
        )
    return model.to(device).eval(), dict(meta.get("extra") or {})


def output_symbols(model, checkpoint: str | Path, explicit_dict: str | None) -> list[str]:
    """The model's output symbols: ``--dict`` when given, else the vocab stored in the checkpoint,
    else a ``dict*.txt`` next to it. Checked against the model's output size."""
    if explicit_dict is None and model.vocab is not None:
        symbols = list(model.vocab)
        where: str | Path = checkpoint
    else:
        where = find_dictionary(checkpoint, explicit_dict)
        symbols = list(Dictionary.load(where).symbols)
    if len(symbols) != model.vocab_size:
        raise DataError(f"dictionary has {len(symbols)} symbols but the model outputs {model.vocab_size}", where)
    return symbols


def find_dictionary(checkpoint: str | Path, explicit: str | None) -> Path:
    if explicit:
        return Path(explicit)
    ck = Path(checkpoint)
    folder = ck if ck.is_dir() else ck.parent
    for name in ("dict.txt", "dict.ltr.txt", "dict.phn.txt"):
        if (folder / name).is_file():
            return folder / name
    cands = sorted(folder.glob("dict.*.txt"))
    if len(cands) == 1:
        return cands[0]
    raise DataError("no vocabulary in the checkpoint and no dict.txt next to it: pass --dict", folder)


def read_references(manifest_path: Path, n_rows: int, labels: str | None, unit: Unit) -> tuple[list[str] | None, str]:
    """Reference texts for the manifest rows and the scoring unit ("word" or "phone")."""
    score_unit = "phone" if unit == "phone" else "word"
    if labels is None:
        for ext in ("wrd", "ltr", "phn"):
            if manifest_path.with_suffix("." + ext).is_file():
                labels = ext
                break
        else:
            return None, score_unit
    path = Path(labels)
    if not path.is_file():
        path = manifest_path.with_suffix("." + labels.lstrip("."))
    lines = read_labels(path, n_rows, str(manifest_path))
    ext = path.suffix.lstrip(".")
    if ext == "ltr":
        return [labels_to_text(ln, "letter") for ln in lines], "word"
    if ext == "phn":
        return [" ".join(s for s in ln.split() if s != "|") for ln in lines], "phone"
    return [" ".join(ln.split()) for ln in lines], score_unit


def utterance_ids(manifest) -> list[str]:
    ids = []
    seen: set[str] = set()
    for i, e in enumerate(manifest.entries):
        stem = Path(e.path).name.split(".")[0]
        uid = stem if e.start is None else f"{stem}_{e.start}_{e.end}"
        if uid in seen:
            uid = f"{uid}#{i}"
        seen.add(uid)
        ids.append(uid)
    return ids


# ----------------------------------------------------------------------------------------------
# Emissions
# ----------------------------------------------------------------------------------------------


def chunked_log_probs(
    model: Callable, wav: torch.Tensor, conv_layers: list[tuple[int, int, int]], chunk: int, context: int,
    max_tokens: int,
) -> torch.Tensor:
    """CTC log-probs ``(T, V)`` of one long waveform, chunk by chunk (:func:`chunked_frames`)."""

    def log_probs(x, lens):
        out = model(x, lens)
        return out.logits.float().log_softmax(-1), out.out_lengths

    return chunked_frames(log_probs, wav, conv_layers, chunk, context, max_tokens)


# ----------------------------------------------------------------------------------------------
# Main entry
# ----------------------------------------------------------------------------------------------


@torch.no_grad()
def compute_emissions(model, manifest, conv_layers, vocab_size: int, opts: DecodeOptions, device, normalize: bool,
                      group_norm: bool = False):
    """Yields (row index, log-probs (T, V) on CPU, seconds of model time for this row); audio is read by
    ``opts.num_workers`` DataLoader workers while the model runs. ``group_norm``: the conv encoder normalises
    over time (fairseq's BASE), so every utterance runs alone, unpadded."""
    sizes = manifest.sizes
    chunk = int(opts.chunk_seconds * SAMPLE_RATE) if opts.chunk_seconds > 0 else max(sizes, default=0)
    context = int(opts.chunk_context_seconds * SAMPLE_RATE)
    rows = list(range(len(manifest)))
    if opts.limit is not None:
        rows = rows[: opts.limit]
    too_short = [i for i in rows if conv_output_length(sizes[i], conv_layers) < 1]
    if too_short:
        logger.warning(
            "%d rows are shorter than the encoder's receptive field (e.g. %s:%d); their hypotheses are empty",
            len(too_short), manifest.source, manifest.line_of(too_short[0]),
        )
    skip = set(too_short)
    long_rows = [i for i in rows if sizes[i] > chunk and i not in skip]
    short_rows = [i for i in rows if sizes[i] <= chunk and i not in skip]
    for i in too_short:
        yield i, torch.zeros(0, vocab_size), 0.0

    rows_ds = _ManifestAudio(manifest, normalize=normalize)
    if group_norm:  # each utterance alone: padding would change a group-norm encoder's features (HF's pipeline too)
        batches = [[i] for i in sorted(short_rows, key=lambda i: -sizes[i])]
    else:
        batches = [[short_rows[j] for j in b]
                   for b in length_batches([sizes[i] for i in short_rows], opts.max_tokens)]
    batches += [[i] for i in long_rows]
    loader = torch.utils.data.DataLoader(
        Guarded(rows_ds), batch_sampler=batches, collate_fn=GuardedCollate(_pad_batch), num_workers=opts.num_workers,
        pin_memory=device.type == "cuda",
    )
    dtype = autocast_dtype(opts.precision)

    def amp():  # entered around model calls only (not across the generator's yields)
        return torch.autocast(device.type, dtype=dtype, enabled=dtype is not None)

    batches_it = iter(loader)
    try:
        for batch in batches_it:
            idx, x, lens = raise_if_failed(batch)
            t0 = time.perf_counter()
            if len(idx) == 1 and int(lens[0]) > chunk:
                with amp():
                    lp = chunked_log_probs(model, x[0].to(device), conv_layers, chunk, context, opts.max_tokens)
                yield idx[0], lp.cpu(), time.perf_counter() - t0
                continue
            with amp():
                out = model(x.to(device, non_blocking=True), lens.to(device))
            logits, out_lens = out.logits, out.out_lengths
            lp = logits.float().log_softmax(-1).cpu()
            dt = (time.perf_counter() - t0) / len(idx)
            for r, i in enumerate(idx):
                yield i, lp[r, : int(out_lens[r])], dt
    finally:
        stop_workers(batches_it)


class _ManifestAudio(AudioDataset):
    """Manifest row ``i`` -> ``(i, waveform (L,) float32)`` (every row; errors name the manifest line)."""

    def __getitem__(self, i: int) -> tuple[int, torch.Tensor]:
        return i, self.load(i)


def _pad_batch(items: list[tuple[int, torch.Tensor]]) -> tuple[list[int], torch.Tensor, torch.Tensor]:
    """-> (row ids, waveforms (B, L) zero-padded, lengths (B,) int64)."""
    lens = torch.tensor([len(w) for _, w in items], dtype=torch.long)
    x = torch.zeros(len(items), int(lens.max()))
    for r, (_, w) in enumerate(items):
        x[r, : len(w)] = w
    return [i for i, _ in items], x, lens


def decode_manifest(opts: DecodeOptions, log: Callable[[str], None] = print) -> dict:
    """Decode ``opts.manifest``; write outputs into ``opts.out``; return the summary dict."""
    if opts.precision not in ("fp32", "bf16", "fp16"):
        raise ValueError(f"precision must be fp32, bf16 or fp16, got {opts.precision!r}")
    if opts.tune and not (opts.tune_lm_weights and opts.tune_word_scores):
        raise ValueError("tuning needs at least one lm_weight and one word_score")
    for name, value, low in (("max_tokens", opts.max_tokens, 1), ("chunk_seconds", opts.chunk_seconds, 0),
                             ("chunk_context_seconds", opts.chunk_context_seconds, 0),
                             ("limit", opts.limit if opts.limit is not None else 1, 1),
                             ("num_workers", opts.num_workers, 0)):
        if value < low:
            raise ValueError(f"{name} must be >= {low}, got {value}")
    device = resolve_device(opts.device)
    if note := slow_precision_note(device, opts.precision):
        log(note)
    manifest = read_manifest(opts.manifest)
    model, extra = load_ctc_model(opts.checkpoint, device)
    out = output_dir(opts.out)  # before decoding: a file there is an error now, not after the work
    if opts.precision != "fp32":  # the matmul weights in the autocast dtype once, not cast on every batch
        store_weights_in(model, autocast_dtype(opts.precision))
    symbols = output_symbols(model, opts.checkpoint, opts.dictionary)
    trained = extra.get("unit")  # recorded by fine-tuning
    unit = opts.unit or trained or infer_unit(symbols)
    if trained and unit != trained:
        log(f"warning: --unit {unit}, but {opts.checkpoint} outputs {trained} units: hypotheses are read and scored "
            f"as {unit}s")
    cfg = model.cfg
    normalize = model_normalize(model, opts.normalize)
    n_rows = len(manifest) if opts.limit is None else min(opts.limit, len(manifest))
    refs_all, score_unit = read_references(Path(opts.manifest), len(manifest), opts.labels, unit)
    refs = refs_all[:n_rows] if refs_all is not None else None
    ids = utterance_ids(manifest)[:n_rows]
    beam = BeamSearchDecoder(symbols, opts.beam) if opts.beam is not None else None
    keep_emissions = opts.tune and beam is not None
    if opts.tune and beam is None:
        raise ValueError("--tune needs an LM (--lm): it searches lm_weight and word_score")
    if opts.tune and refs is None:
        raise DataError("--tune needs reference labels (e.g. --labels wrd)", opts.manifest)

    greedy_hyp: list[str] = [""] * n_rows
    beam_hyp: list[str] = [""] * n_rows
    emissions: list[torch.Tensor | None] = [None] * n_rows
    model_time = search_time = 0.0
    audio_seconds = sum(manifest.sizes[:n_rows]) / SAMPLE_RATE
    t_start = time.perf_counter()
    rows = compute_emissions(
        model, manifest, list(cfg.conv_feature_layers), len(symbols), opts, device, normalize,
        group_norm=cfg.extractor_mode == "default",
    )
    for i, lp, dt in progress(rows, total=n_rows, desc="decode", unit="utt"):
        model_time += dt
        t0 = time.perf_counter()
        greedy_hyp[i] = tokens_to_text(greedy_ctc(lp[None])[0], symbols, unit)
        if beam is not None and not opts.tune:  # with --tune the search runs after the grid search
            hyp = beam.decode(lp[None])[0][0]
            beam_hyp[i] = beam.to_text(hyp, unit)
        search_time += time.perf_counter() - t0
        if keep_emissions:
            emissions[i] = lp
    wall = time.perf_counter() - t_start
    hyps = beam_hyp if beam is not None else greedy_hyp
    rtf = (model_time + search_time) / max(audio_seconds, 1e-9)
    summary: dict = {
        "checkpoint": str(opts.checkpoint),
        "manifest": str(opts.manifest),
        "utterances": n_rows,
        "audio_seconds": audio_seconds,
        "model_seconds": model_time,
        "search_seconds": search_time,
        "wall_seconds": wall,
        "rtf": rtf,
        "device": str(device),
        "decoder": "greedy" if beam is None else ("beam-lexicon" if not beam.lexicon_free else "beam-lexfree"),
        "unit": unit,
    }
    result: ScoreResult | None = None
    greedy_result: ScoreResult | None = None
    if opts.tune:
        best = tune_weights(beam, emissions, refs, symbols, unit, score_unit, opts, log)
        summary["tune"] = best
        atomic_write_text(out / "tune.json", json.dumps(best, indent=1) + "\n")
        beam.set_weights(best["best"]["lm_weight"], best["best"]["word_score"])
        t0 = time.perf_counter()
        hyps = [beam.to_text(beam.decode(e[None])[0][0], unit) for e in emissions]
        search_time += time.perf_counter() - t0
        rtf = (model_time + search_time) / max(audio_seconds, 1e-9)
        summary.update(search_seconds=search_time, rtf=rtf)
    write_transcripts(out / "hyp.txt", ids, hyps)
    if beam is not None:
        write_transcripts(out / "hyp.greedy.txt", ids, greedy_hyp)
    if refs is not None:
        write_transcripts(out / "ref.txt", ids, refs)
        result = score(refs, hyps, score_unit, ids=ids, speaker_of=default_speaker)
        summary["score"] = {k: v for k, v in result.as_dict().items() if k not in ("utterances",)}
        if beam is not None:
            greedy_result = score(refs, greedy_hyp, score_unit, ids=ids)
            summary["greedy_error_rate"] = greedy_result.error_rate
    rows = []
    for j, uid in enumerate(ids):
        row = {
            "id": uid,
            "audio": str(manifest.full_path(j)),
            "seconds": manifest.sizes[j] / SAMPLE_RATE,
            "hyp": hyps[j],
        }
        if beam is not None:
            row["hyp_greedy"] = greedy_hyp[j]
        if result is not None:
            c = result.utterances[j].counts
            row.update({"ref": refs[j], "errors": c.errors, "ref_len": c.ref_len, "sub": c.sub, "del": c.dele,
                        "ins": c.ins})
        rows.append(row)
    write_jsonl(out / "results.jsonl", rows)
    atomic_write_text(out / "summary.json", json.dumps(summary, indent=1) + "\n")
    log(
        f"decoded {n_rows} utterances, {audio_seconds:.1f} s of audio in {model_time + search_time:.2f} s "
        f"(model {model_time:.2f} s, search {search_time:.2f} s) on {device}: RTF {rtf:.4f}"
    )
    if greedy_result is not None:
        log(f"greedy: {greedy_result.summary_line()}")
    if result is not None:
        log(result.summary_line())
    return summary


def tune_weights(beam: BeamSearchDecoder, emissions, refs, symbols, unit, score_unit, opts: DecodeOptions, log) -> dict:
    """Grid search of (lm_weight, word_score) on the decoded set; returns every point and the best."""
    grid = []
    for lw in opts.tune_lm_weights:
        for ws in opts.tune_word_scores:
            beam.set_weights(lw, ws)
            hyps = [beam.to_text(beam.decode(e[None])[0][0], unit) for e in emissions]
            r = score(refs, hyps, score_unit)
            grid.append({"lm_weight": lw, "word_score": ws, "error_rate": r.error_rate, "errors": r.total.errors})
            log(f"  lm_weight {lw:5.2f}  word_score {ws:5.2f}  {r.name} {100 * r.error_rate:6.2f} %")
    best = min(grid, key=lambda g: (g["error_rate"], abs(g["lm_weight"]), abs(g["word_score"])))
    log(f"best: lm_weight {best['lm_weight']} word_score {best['word_score']} -> {100 * best['error_rate']:.2f} %")
    edges = grid_edges(best, opts.tune_lm_weights, opts.tune_word_scores)
    for name, side in edges:
        log(f"warning: the best {name} is the grid's {side} value; widen --tune-{name.replace('_', '-')}s "
            f"(the optimum may lie beyond it)")
    return {"grid": grid, "best": best, "at_edge": [f"{name}:{side}" for name, side in edges]}


def grid_edges(best: dict, lm_weights: list[float], word_scores: list[float]) -> list[tuple[str, str]]:
    """Which of the best point's coordinates sit on the edge of a tuning grid that could go further.

    ``lm_weight`` 0 is a floor (no LM), so only its largest value counts; ``word_score`` is open both ways.
    A coordinate searched at a single value is not an edge.
    """
    edges = []
    if len(set(lm_weights)) > 1 and best["lm_weight"] == max(lm_weights):
        edges.append(("lm_weight", "largest"))
    if len(set(word_scores)) > 1:
        if best["word_score"] == max(word_scores):
            edges.append(("word_score", "largest"))
        elif best["word_score"] == min(word_scores):
            edges.append(("word_score", "smallest"))
    return edges
