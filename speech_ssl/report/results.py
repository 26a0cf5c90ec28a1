"""The results tables of the recipes' experiment folders, and the summary of a pretraining run.

    text = results_table("exp/librispeech", "librispeech")   # also written to exp/librispeech/results.md

Each recipe has its own table, read from the files its stages leave behind:

- ``librispeech``: ``decode/<model>/<decoder>/<set>/score.{word,char}.json`` -> one row per model and decoder,
  one ``WER / CER`` column per LibriSpeech dev/test set present;
- ``commonvoice``: ``decode/<lang>-<unit>/{dev,test}/score.{phone,word,char}.json`` -> PER (phones) and
  WER / CER (letters) of dev and test, and the fine-tuning updates (``finetune/<lang>-<unit>/log.jsonl``);
- ``babel``: ``decode/<lang>/<decoder>/{valid,dev}/score.{word,char}.json`` -> WER / CER of valid and of dev
  (BABEL's dev set is the test set), and the fine-tuning updates;
- ``synth``: ``decode/<name>/<decoder>/summary.json`` (+ ``score.{char,phone}.json``; the ``tune`` decodes
  are left out) -> WER, CER, PER in one row per run and decoder, and the fine-tuning updates;
  ``synth_seeds_table`` reads several synth folders (one per fine-tuning seed) -> mean ± sd per run.

Error rates are fractions in the JSON files and percentages with one decimal in the tables; a non-finite
error rate is a DataError naming the folder. The command line is ``speech-ssl results table EXP --recipe R``.
"""

from __future__ import annotations

import json
import math
import os
import platform
import statistics
from pathlib import Path

import torch

from speech_ssl.config import read_yaml
from speech_ssl.errors import DataError
from speech_ssl.files import atomic_write_text
from speech_ssl.train.checkpoint import add_files

RECIPES = ("librispeech", "commonvoice", "babel", "synth")
LIBRISPEECH_SETS = ("dev-clean", "dev-other", "test-clean", "test-other")
PRETRAIN_KEYS = ("update", "loss", "accuracy", "code_perplexity", "prob_perplexity", "temp")


def _rate(path: Path) -> float:
    return json.loads(path.read_text())["error_rate"]


def _finite(where: Path, **rates: float) -> None:
    bad = [k for k, v in rates.items() if not math.isfinite(v)]
    if bad:
        raise DataError(f"non-finite error rate ({', '.join(bad)})", where)


def last_update(run: Path) -> str:
    """The update of the last train line of ``run/log.jsonl``, as text; "" without a log or train lines."""
    log = Path(run) / "log.jsonl"
    if not log.exists():
        return ""
    tr = [json.loads(x) for x in log.read_text().splitlines() if '"train"' in x]
    return str(tr[-1]["update"]) if tr else ""


def librispeech_table(exp: Path) -> str:
    found: dict[tuple[str, str], dict[str, tuple[float, float]]] = {}
    for p in sorted(exp.glob("decode/*/*/*/score.word.json")):
        name, dec, t = p.parts[-4], p.parts[-3], p.parts[-2]
        w, c = _rate(p), _rate(p.parent / "score.char.json")
        _finite(p.parent, word=w, char=c)
        found.setdefault((name, dec), {})[t] = (w, c)
    present = [s for s in LIBRISPEECH_SETS if any(s in v for v in found.values())]
    head = "| model | decoder | " + " | ".join(f"{s} WER / CER" for s in present) + " |"
    rows = [head, "|" + "---|" * (2 + len(present))]
    for (name, dec), v in sorted(found.items()):
        cells = [f"{100 * v[s][0]:.1f} / {100 * v[s][1]:.1f}" if s in v else "-" for s in present]
        rows.append(f"| {name} | {dec} | " + " | ".join(cells) + " |")
    return "# recipes/librispeech results (%, WER / CER)\n\n" + "\n".join(rows) + "\n"


def commonvoice_table(exp: Path) -> str:
    rows = ["| language | units | dev PER | test PER | dev WER / CER | test WER / CER | updates |",
            "|---|---|---|---|---|---|---|"]
    for run in sorted(p for p in exp.glob("decode/*") if p.is_dir()):
        lang, unit = run.name.rsplit("-", 1)
        cells = {}
        for t in ("dev", "test"):
            s = {u: _rate(run / t / f"score.{u}.json") for u in ("phone", "word", "char")
                 if (run / t / f"score.{u}.json").exists()}
            _finite(run / t, **s)
            cells[t] = s
        per = [f"{100 * cells[t]['phone']:.1f}" if "phone" in cells[t] else "-" for t in ("dev", "test")]
        wer = [f"{100 * cells[t]['word']:.1f} / {100 * cells[t]['char']:.1f}" if "word" in cells[t] else "-"
               for t in ("dev", "test")]
        ups = last_update(exp / "finetune" / run.name)
        rows.append(f"| {lang} | {unit} | {per[0]} | {per[1]} | {wer[0]} | {wer[1]} | {ups} |")
    return "# recipes/commonvoice results (%, greedy decoding)\n\n" + "\n".join(rows) + "\n"


def babel_table(exp: Path) -> str:
    rows = ["| language | decoder | valid WER / CER | dev (test) WER / CER | updates |",
            "|---|---|---|---|---|"]
    for run in sorted(p for p in exp.glob("decode/*/*") if p.is_dir()):
        lang, dec = run.parent.name, run.name
        cells = []
        for t in ("valid", "dev"):
            f = run / t / "score.word.json"
            if not f.exists():
                cells.append("-")
                continue
            w, c = _rate(f), _rate(run / t / "score.char.json")
            _finite(run / t, word=w, char=c)
            cells.append(f"{100 * w:.1f} / {100 * c:.1f}")
        ups = last_update(exp / "finetune" / lang)
        rows.append(f"| {lang} | {dec} | {cells[0]} | {cells[1]} | {ups} |")
    title = "# recipes/babel results (%, WER / CER; BABEL's dev set is the test set)"
    return title + "\n\n" + "\n".join(rows) + "\n"


def synth_rows(exp: Path) -> list[dict]:
    """One dict per decode of a synth experiment: ``model``, ``decoder``, ``wer`` / ``cer`` / ``per`` (fractions,
    absent where they do not apply), ``updates`` (text), ``seed`` (the fine-tuning run's, None if unknown),
    ``run`` (its folder), ``where`` (the decode's folder) and ``test_set`` (the decoded manifest, when recorded)."""
    rows = []
    runs: dict[str, dict] = {}  # each fine-tuning run's log and config, read once for all its decoders
    for d in sorted(exp.glob("decode/*/*/summary.json")):
        name, dec = d.parent.parent.name, d.parent.name
        if dec == "tune":
            continue
        if name not in runs:
            run = exp / "finetune" / name
            runs[name] = {"run": run, "updates": last_update(run), "seed": _run_seed(run)}
        summary = json.loads(d.read_text())
        s = summary["score"]
        row: dict = {"model": name, "decoder": dec, **runs[name], "where": d.parent}
        if "manifest" in summary:  # the test set, as a file (the same through symlinked data/ folders)
            row["test_set"] = str(Path(summary["manifest"]).resolve())
        row["wer" if s["metric"] == "WER" else "per" if s["metric"] == "PER" else s["metric"].lower()] = s["error_rate"]
        if (d.parent / "score.char.json").exists():
            row["cer"] = _rate(d.parent / "score.char.json")
        _finite(d.parent, **{k: row[k] for k in ("wer", "cer", "per") if k in row})
        rows.append(row)
    return rows


def _run_seed(run: Path) -> int | None:
    cfg = run / "config.yaml"
    return read_yaml(cfg).get("seed") if cfg.exists() else None


def _pct(row: dict, key: str) -> str:
    return f"{100 * row[key]:.1f}" if key in row else "-"


def synth_table(exp: Path) -> str:
    rows = ["| model | decoder | WER | CER | PER | updates |", "|---|---|---|---|---|---|"]
    for r in synth_rows(exp):
        rows.append(f"| {r['model']} | {r['decoder']} | {_pct(r, 'wer')} | {_pct(r, 'cer')} | {_pct(r, 'per')} "
                    f"| {r['updates']} |")
    return "# recipes/synth results (test sets, %)\n\n" + "\n".join(rows) + "\n" + _lm_note(exp)


def _lm_note(exp: Path) -> str:
    ev = exp / "lm" / "eval_test.json"
    if not ev.exists():
        return ""
    e = json.loads(ev.read_text())
    return (f"\nThe `lm` rows use a word {e['order']}-gram that saw no dev or test sentence; on the test "
            f"transcripts: OOV {100 * e['oov_rate']:.1f}% of {e['words']} words, perplexity {e['ppl']:.0f} "
            f"({e['ppl_in_vocab']:.0f} without OOVs).\n")


def synth_seeds_table(exps: list[str | Path], out: str | Path | None = None) -> str:
    """Mean ± sd over seeds of the synth runs of several experiment folders, one per ``SEED``: a row per run
    name and decoder with the seeds found, each metric's mean ± sd (sample sd) and the per-seed values in
    seed order. Written atomically to ``out`` when given.

    ``SEED`` also seeds the corpus, the English subsets and pretraining when a folder makes them; for a
    fine-tuning spread the folders share those (symlinked ``corpus``, ``data``, ``lm``, ``pretrain*``, as
    recipes/synth/README.md shows). Every run's seed is read from its ``config.yaml``; a run name whose
    decodes read different test sets is a DataError."""
    found: dict[tuple[str, str], list[dict]] = {}
    for exp in map(Path, exps):
        if not exp.is_dir():
            raise DataError("no such experiment folder", exp)
        for r in synth_rows(exp):
            found.setdefault((r["model"], r["decoder"]), []).append(r)
    lines = ["| model | decoder | seeds | WER | CER | PER | per seed (WER or PER) |", "|---|---|---|---|---|---|---|"]
    for (name, dec), rs in sorted(found.items()):
        for r in rs:
            if r["seed"] is None:
                raise DataError("no seed in the run's config.yaml", r["run"])
        rs = sorted(rs, key=lambda r: r["seed"])
        seeds = [r["seed"] for r in rs]
        if len(set(seeds)) != len(seeds):
            raise DataError(f"{name} / {dec} has seeds {seeds}: a seed appears twice (give one folder per seed)",
                            rs[-1]["where"])
        if len({r.get("test_set") for r in rs}) > 1:
            raise DataError(f"{name} / {dec}: the seeds' decodes read different test sets "
                            f"({', '.join(sorted({str(r.get('test_set')) for r in rs}))})", rs[-1]["where"])
        cells = []
        for k in ("wer", "cer", "per"):
            vals = [100 * r[k] for r in rs if k in r]
            cells.append("-" if not vals else f"{statistics.mean(vals):.1f}" + (
                f" ± {statistics.stdev(vals):.1f}" if len(vals) > 1 else ""))
        main_key = "wer" if "wer" in rs[0] else "per"
        per_seed = " ".join(_pct(r, main_key) for r in rs)
        lines.append(f"| {name} | {dec} | {','.join(str(x) for x in seeds)} | {' | '.join(cells)} | {per_seed} |")
    text = ("# recipes/synth results over seeds (test sets, %, mean ± sd)\n\n" + "\n".join(lines) + "\n"
            + _lm_note(Path(exps[0])))
    if out is not None:
        atomic_write_text(out, text)
    return text


TABLES = {"librispeech": librispeech_table, "commonvoice": commonvoice_table, "babel": babel_table,
          "synth": synth_table}


def results_table(exp: str | Path, recipe: str, out: str | Path | None = None) -> str:
    """The markdown results table of ``recipe``'s experiment folder ``exp``, written atomically to ``out``
    (default ``exp/results.md``); returns its text."""
    if recipe not in TABLES:
        raise ValueError(f"unknown recipe {recipe!r} (known: {', '.join(RECIPES)})")
    exp = Path(exp)
    text = TABLES[recipe](exp)
    atomic_write_text(exp / "results.md" if out is None else out, text)
    return text


def finetune_runs(folder: str | Path) -> dict[str, dict[str, Path]]:
    """``{language: {condition: run_dir}}`` of the run folders ``LANG-CONDITION`` under ``folder`` that hold a
    ``log.jsonl`` (e.g. ``en-10m-pretrained`` -> ``en``, ``10m-pretrained``), in name order."""
    runs: dict[str, dict[str, Path]] = {}
    for log in sorted(Path(folder).glob("*/log.jsonl")):
        lang, _, cond = log.parent.name.partition("-")
        runs.setdefault(lang, {})[cond] = log.parent
    return runs


def pretrain_info(run: str | Path, wall_seconds: float, device: str, command: str,
                  train_manifests: list[str]) -> dict:
    """The summary of a pretraining run that recipes/synth publishes with its checkpoint, written to
    ``run/final/pretrain_info.json``: updates done, wall time of the last invocation, the command, the
    machine, the training manifests, and the last train and validation numbers of ``run/log.jsonl``.
    ``run/final``'s ``meta.json`` is re-sealed to cover it (``checkpoint.add_files``)."""
    run = Path(run)
    log = run / "log.jsonl"
    if not log.is_file():
        raise DataError("training log not found", log)
    ev = [json.loads(x) for x in log.read_text().splitlines() if x.strip()]
    tr = [e for e in ev if e.get("split") == "train"]
    va = [e for e in ev if e.get("split") == "valid"]
    gpu = ""
    if device == "cuda":
        gpu = torch.cuda.get_device_name(0)
    info = {
        "updates": tr[-1]["update"] if tr else 0,
        "wall_seconds_last_invocation": wall_seconds,
        "command": command,
        "machine": f"{gpu or platform.processor() or 'cpu'}, {os.cpu_count()} CPU cores ({device})",
        "train_manifests": list(train_manifests),
        "train_last": {k: tr[-1][k] for k in PRETRAIN_KEYS if tr and k in tr[-1]},
        "valid_last": {k: va[-1][k] for k in PRETRAIN_KEYS if va and k in va[-1]},
    }
    if not (run / "final").is_dir():
        raise DataError("no final/ checkpoint folder", run)
    add_files(run / "final", {"pretrain_info.json": (json.dumps(info, indent=1) + "\n").encode()})
    return info
