"""The demo's results: the table (printed and in ``results.md``), ``results.json`` and the plots.

Rows are (language, condition, seed): updates and wall time of fine-tuning, greedy WER/CER (English) or PER
(the left-out language) on test, and WER/CER with the n-gram LM. Conditions with several seeds also get a
mean ± standard deviation row. Every number of that table is what this run measured. A second table, when
the recipe's committed seed sweep for the left-out language exists (``recipes/synth/results/seeds_<lang>.json``,
written by ``recipes/synth/escape_sweep.py``), shows those runs, marked as carried over, with their command.
"""

from __future__ import annotations

import json
import math
import statistics
from pathlib import Path

from speech_ssl.files import atomic_write_text
from speech_ssl.report.plots import plot_finetuning, plot_pretraining

CONDITION_HELP = {
    "pretrained": "fine-tuned from the pretrained checkpoint (conv encoder frozen)",
    "pretrained-mono-en": "fine-tuned from the English-only pretrained checkpoint (conv encoder frozen)",
    "scratch": "random weights, everything trained (conv encoder included), same wall time",
    "random-frozen": "control: random weights through the pretrained condition's recipe (conv encoder frozen)",
}


def _pct(v) -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "-"
    return f"{100 * v:.1f}"


def table_rows(results: dict) -> list[dict]:
    rows = []
    for r in results.get("finetuning", []):
        s = r.get("scores", {})
        g, lm = s.get("greedy", {}), s.get("lm", {})
        rows.append({
            "lang": r["lang"], "condition": r["condition"], "seed": str(r["seed"]), "updates": r.get("updates"),
            "seconds": r.get("wall_seconds"),
            "greedy_wer": g.get("wer"), "greedy_cer": g.get("cer"), "per": g.get("per"),
            "lm_wer": lm.get("wer"), "lm_cer": lm.get("cer"),
            "blank_frac": r.get("last_train", {}).get("blank_frac"),
        })
    # mean over seeds
    groups: dict[tuple[str, str], list[dict]] = {}
    for row in rows:
        groups.setdefault((row["lang"], row["condition"]), []).append(row)
    out = []
    for (lang, cond), rs in groups.items():
        out.extend(rs)
        if len(rs) > 1:
            mean = {"lang": lang, "condition": cond, "seed": "mean ± sd", "updates": None, "seconds": None}
            for k in ("greedy_wer", "greedy_cer", "per", "lm_wer", "lm_cer", "blank_frac"):
                vals = [x[k] for x in rs if x[k] is not None]
                mean[k] = sum(vals) / len(vals) if vals else None
                mean[k + "_sd"] = statistics.stdev(vals) if len(vals) > 1 else None
            out.append(mean)
    return out


def format_table(results: dict) -> str:
    head = ["lang", "condition", "seed", "updates", "seconds", "WER greedy", "CER greedy", "PER greedy",
            "WER +LM", "CER +LM", "blank frac (last update)"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    def pct(r, k):
        sd = r.get(k + "_sd")
        return _pct(r[k]) + (f" ± {100 * sd:.1f}" if sd is not None and r[k] is not None else "")

    for r in table_rows(results):
        cells = [r["lang"], r["condition"], r["seed"], "" if r["updates"] is None else str(r["updates"]),
                 "" if r["seconds"] is None else f"{r['seconds']:.0f}", pct(r, "greedy_wer"), pct(r, "greedy_cer"),
                 pct(r, "per"), pct(r, "lm_wer"), pct(r, "lm_cer"),
                 "-" if r["blank_frac"] is None else f"{r['blank_frac']:.3f}"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def seed_sweep_table(sweep: dict) -> str:
    """The recipe's committed seed sweep (escape_sweep.py summary.json) as a markdown table."""
    lines = [
        "| condition | init | seeds | escaped (dev PER < {:g}) | test PER mean ± sd | test PER per seed | "
        "dev PER per seed |".format(sweep["escape_below"]),
        "|---|---|---|---|---|---|---|",
    ]
    for r in sweep["settings"]:
        test = r.get("test_errors") or []
        mean = (f"{statistics.mean(test):.1f} ± {statistics.stdev(test):.1f}" if len(test) > 1
                else (f"{test[0]:.1f}" if test else "-"))
        init = next((o.split("=", 1)[1] for o in r["overrides"] if o.startswith("finetune.pretrained=")),
                    sweep["pretrained"])
        init = "random weights (the run's seed)" if "{random}" in init else f"`{init}`"
        lines.append(f"| {r['setting']} | {init} | {','.join(map(str, r['seeds']))} | {r['escaped']}/{r['runs']} | "
                     f"{mean} | {' '.join(f'{x:.1f}' for x in test)} | {' '.join(f'{x:.1f}' for x in r['uers'])} |")
    return "\n".join(lines)


def markdown(results: dict) -> str:
    cfg = results["config"]
    pt = results.get("pretraining", {})
    first, last, vlast = pt.get("first", {}), pt.get("last", {}), pt.get("valid_last", {})
    lines = [
        "# speech-ssl demo results",
        "",
        f"Mode: {'quick' if cfg['quick'] else 'full'}; seeds {cfg['seeds']}; {cfg['threads']} threads on {cfg['device']}; "
        f"total wall time {results['wall_seconds']:.0f} s.",
        "",
        f"**Fine-tuning started from: {results['checkpoint']['description']}** (`{results['checkpoint']['path']}`).",
        "",
        *([f"`{cfg['left_out']}` is also fine-tuned from the {results['checkpoint_mono']['description']} "
           f"(`pretrained-mono-en`; see its PROVENANCE.md for its budget).", ""]
          if results.get("checkpoint_mono") else []),
        "## Pretraining from scratch in this run",
        "",
        f"{pt.get('updates', 0)} updates in {pt.get('wall_seconds', 0):.0f} s on every language but "
        f"`{cfg['left_out']}`. Train loss {first.get('loss', float('nan')):.3f} -> {last.get('loss', float('nan')):.3f} bits, "
        f"contrastive accuracy {first.get('accuracy', float('nan')):.3f} -> {last.get('accuracy', float('nan')):.3f}, "
        f"code perplexity {first.get('code_perplexity', float('nan')):.1f} -> {last.get('code_perplexity', float('nan')):.1f}, "
        f"temperature {first.get('temp', float('nan')):.3f} -> {last.get('temp', float('nan')):.3f}"
        + (f"; held-out accuracy {vlast.get('accuracy', float('nan')):.3f}" if vlast else "") + ".",
        "",
        "## Fine-tuning and decoding (test sets; error rates in %)",
        "",
        f"English: {cfg['labelled_seconds'] / 60:.0f} minutes of labels (letters), {cfg['finetune_seconds']:.0f} s of "
        f"fine-tuning per condition; `{cfg['left_out']}` (left out of pretraining): its CommonVoice train split "
        f"on phones, {cfg['finetune_left_out_seconds']:.0f} s per condition. LM: word {cfg['lm_order']}-gram on "
        "the corpus's LM text and the English train transcripts (no dev or test sentence), lexicon beam search, "
        "weights tuned on dev" + lm_quality(results.get("lm_eval")) + ".",
        "",
        format_table(results),
        "",
        "Conditions:",
        "",
    ]
    seen = {r["condition"] for r in results.get("finetuning", [])}
    lines += [f"- `{k}`: {v}" for k, v in CONDITION_HELP.items() if k in seen]
    sweep = results.get("seed_sweep")
    if sweep:
        lines += [
            "", f"## `{cfg['left_out']}` over more seeds (carried over: the recipe's committed runs, not this run)", "",
            f"From `{sweep['file']}`: {sweep['updates']} updates each (about this demo's {cfg['finetune_left_out_seconds']:.0f} s), "
            f"the same corpus settings as this demo, test and dev PER of each seed's last checkpoint. Command: "
            f"`{sweep.get('command', 'see recipes/synth/README.md')}`.", "",
            seed_sweep_table(sweep),
        ]
    lines += ["", "## Plots", "", "- `plots/pretraining.png`: loss, accuracy, code perplexity, temperature",
              "- `plots/finetuning.png`: CTC loss and blank fraction per condition",
              "- `plots/code_usage_pca.png`: each language's quantizer-code distribution, 2-D PCA", ""]
    t = results.get("timings", {})
    lines += ["## Timings (s)", "", ", ".join(f"{k} {v:.0f}" for k, v in t.items()), ""]
    if results.get("notes"):
        lines += ["## Notes", ""] + [f"- {n}" for n in results["notes"]] + [""]
    return "\n".join(lines)


def lm_quality(ev: dict | None) -> str:
    """'; on the test transcripts: OOV 2.1%, perplexity 180' (empty without an evaluation)."""
    if not ev:
        return ""
    return (f"; on the test transcripts: OOV {100 * ev['oov_rate']:.1f}% of {ev['words']} words, "
            f"perplexity {ev['ppl']:.0f} ({ev['ppl_in_vocab']:.0f} without OOVs)")


def write_results(out: str | Path, results: dict) -> None:
    """results.json, results.md and the plots (pretraining, fine-tuning; code usage is drawn by the run)."""
    out = Path(out)
    (out / "plots").mkdir(parents=True, exist_ok=True)
    pt_log = out / "pretrain" / "log.jsonl"
    if pt_log.exists():
        chance = codes = None
        cks = sorted((out / "pretrain" / "checkpoints").glob("checkpoint_*/config.json"))
        if cks:
            m = json.loads(cks[-1].read_text())["model"]
            chance = math.log2(m["num_negatives"] + m.get("cross_sample_negatives", 0) + 1)
            codes = m["latent_groups"] * m["latent_vars"]
        plot_pretraining(pt_log, out / "plots" / "pretraining.png", title="pretraining from scratch (this run)",
                         chance_bits=chance, num_codes=codes)
    runs: dict[str, dict[str, str]] = {}
    for r in results.get("finetuning", []):
        if r["seed"] == results["config"]["seeds"][0]:
            runs.setdefault(r["lang"], {})[r["condition"]] = r["run_dir"]
    if runs:
        plot_finetuning(runs, out / "plots" / "finetuning.png")
    results["table"] = table_rows(results)
    atomic_write_text(out / "results.json", json.dumps(results, indent=1, allow_nan=True) + "\n")
    atomic_write_text(out / "results.md", markdown(results))
