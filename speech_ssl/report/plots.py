"""PNG figures of training runs, for the demo and the recipes (matplotlib, Agg backend; written atomically).

- :func:`plot_pretraining`: loss, contrastive accuracy, code/prob perplexity and Gumbel temperature per update
  (train and held-out) from a run's ``log.jsonl``;
- :func:`plot_finetuning`: CTC loss (bits per label) and the fraction of blank frames per update, one line
  per condition, one column per language;
- :func:`plot_code_usage`: each language's quantizer-code distribution reduced to 2-D by PCA, as labelled
  points (XLSR paper, Figure 2 style).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from speech_ssl.files import atomic_open


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: str | Path) -> Path:
    path = Path(path)
    with atomic_open(path, "wb") as f:
        fig.savefig(f, format="png", dpi=110, bbox_inches="tight")
    return path


def read_log(path: str | Path) -> dict[str, list[dict]]:
    """``{split: [event, ...]}`` from a trainer ``log.jsonl`` (alarm events under ``alarm``)."""
    out: dict[str, list[dict]] = {}
    p = Path(path)
    if not p.is_file():
        return out
    for line in p.read_text().splitlines():
        if not line.strip():
            continue
        e = json.loads(line)
        key = e.get("split") or ("alarm" if "alarm" in e else "other")
        out.setdefault(key, []).append(e)
    return out


def _series(events: list[dict], key: str) -> tuple[list[int], list[float]]:
    xs, ys = [], []
    for e in events:
        if key in e and isinstance(e[key], (int, float)):
            xs.append(int(e["update"]))
            ys.append(float(e[key]))
    return xs, ys


def _smooth(ys: list[float], window: int) -> np.ndarray:
    """Trailing moving average (the first points average what exists so far)."""
    y = np.asarray(ys, dtype=np.float64)
    c = np.cumsum(np.insert(y, 0, 0.0))
    n = np.arange(1, len(y) + 1)
    lo = np.maximum(n - window, 0)
    return (c[n] - c[lo]) / (n - lo)


def _plot_series(ax, xs, ys, label, style="-"):
    """Raw values faint and a moving average on top when there are many noisy points (one per update)."""
    if len(xs) > 40 and style == "-":
        line = ax.plot(xs, ys, "-", alpha=0.25, linewidth=0.8)[0]
        ax.plot(xs, _smooth(ys, max(5, len(xs) // 25)), "-", color=line.get_color(), label=label)
    else:
        ax.plot(xs, ys, style, label=label, markersize=3)


def plot_pretraining(log_path: str | Path, out: str | Path, title: str = "pretraining", chance_bits: float | None = None,
                     num_codes: int | None = None) -> Path:
    plt = _plt()
    log = read_log(log_path)
    panels = [
        ("loss", "loss (bits)", ["loss"]),
        ("accuracy", "contrastive accuracy", ["accuracy"]),
        ("perplexity", "codebook perplexity", ["code_perplexity", "prob_perplexity"]),
        ("temp", "Gumbel temperature", ["temp"]),
    ]
    fig, axes = plt.subplots(1, 4, figsize=(16, 3.4))
    for ax, (_, label, keys) in zip(axes, panels):
        for split, style in (("train", "-"), ("valid", "o--")):
            for key in keys:
                xs, ys = _series(log.get(split, []), key)
                if xs:
                    _plot_series(ax, xs, ys, f"{split} {key}" if len(keys) > 1 else split, style)
        ax.set_xlabel("update")
        ax.set_title(label)
        ax.grid(alpha=0.3)
    if chance_bits is not None:
        axes[0].axhline(chance_bits, color="gray", ls=":", label=f"chance {chance_bits:.2f}")
        axes[1].axhline(2.0 ** -chance_bits, color="gray", ls=":", label="chance")
    if num_codes is not None:
        axes[2].axhline(num_codes, color="gray", ls=":", label=f"all {num_codes} codes")
    for ax in axes:
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=7)
    fig.suptitle(title, y=1.03)
    path = _save(fig, out)
    plt.close(fig)
    return path


def plot_finetuning(runs: dict[str, dict[str, str | Path]], out: str | Path) -> Path:
    """``runs = {language: {condition: run_dir}}``; one column per language, rows: CTC loss and blank fraction
    (train), and the validation set's greedy unit error rate (letters or phones) when the runs validated."""
    plt = _plt()
    langs = list(runs)
    logs = {lang: {c: read_log(Path(d) / "log.jsonl") for c, d in runs[lang].items()} for lang in langs}
    rows = [("train", "nll_loss", "CTC loss (bits per label, train)"),
            ("train", "blank_frac", "fraction of blank frames (train)")]
    if any(_series(lg.get("valid", []), "uer")[0] for by in logs.values() for lg in by.values()):
        rows.append(("valid", "uer", "unit error rate, greedy (valid, %)"))
    ncol = max(1, len(langs))
    fig, axes = plt.subplots(len(rows), ncol, figsize=(6 * ncol, 3.2 * len(rows)), squeeze=False)
    for j, lang in enumerate(langs):
        for cond, log in logs[lang].items():
            for i, (split, key, _) in enumerate(rows):
                xs, ys = _series(log.get(split, []), key)
                if xs:
                    _plot_series(axes[i][j], xs, ys, cond, style="-o" if split == "valid" else "-")
        for i, (_, _, title) in enumerate(rows):
            axes[i][j].set_title(f"{lang}: {title}")
            axes[i][j].set_xlabel("update")
            axes[i][j].grid(alpha=0.3)
            if axes[i][j].get_legend_handles_labels()[0]:
                axes[i][j].legend(fontsize=7)
    fig.tight_layout()
    path = _save(fig, out)
    plt.close(fig)
    return path


def plot_code_usage(xy: np.ndarray, labels: list[str], explained: np.ndarray, out: str | Path,
                    highlight: str | None = None, title: str = "") -> Path:
    plt = _plt()
    fig, ax = plt.subplots(figsize=(5.5, 5))
    for (x, y), lab in zip(np.asarray(xy), labels):
        special = lab == highlight
        ax.scatter([x], [y], s=60 if special else 40, c="tab:red" if special else "tab:blue",
                   marker="*" if special else "o")
        ax.annotate(lab + (" (left out)" if special else ""), (x, y), textcoords="offset points",
                    xytext=(5, 4), fontsize=9)
    ax.set_xlabel(f"PC1 ({100 * explained[0]:.0f}% of variance)")
    ax.set_ylabel(f"PC2 ({100 * explained[1]:.0f}% of variance)")
    ax.set_title(title or "quantizer code usage per language (PCA)")
    ax.grid(alpha=0.3)
    path = _save(fig, out)
    plt.close(fig)
    return path
