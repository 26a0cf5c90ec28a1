"""Parts of the demo that are cheap to test alone: subsets, PCA, plots, the results table."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import soundfile as sf

from speech_ssl.data.manifest import read_labels, read_manifest
from speech_ssl.demo.codes import pca_2d
from speech_ssl.demo.manifests import subset_split
from speech_ssl.demo.plots import plot_code_usage, plot_finetuning, plot_pretraining
from speech_ssl.demo.results import format_table, markdown, table_rows
from speech_ssl.errors import DataError

PNG = b"\x89PNG\r\n\x1a\n"


def _split(tmp_path, n=20):
    rng = np.random.default_rng(0)
    rows, ltr, wrd = [], [], []
    for i in range(n):
        secs = 0.5 + 0.1 * (i % 5)
        x = (0.1 * rng.standard_normal(int(secs * 16000))).astype(np.float32)
        sf.write(tmp_path / f"u{i:02d}.flac", x, 16000)
        rows.append(f"u{i:02d}.flac\t{len(x)}")
        w = f"WORD{i}"
        wrd.append(w)
        ltr.append(" ".join(w) + " |")
    (tmp_path / "train.tsv").write_text(str(tmp_path) + "\n" + "\n".join(rows) + "\n")
    (tmp_path / "train.ltr").write_text("\n".join(ltr) + "\n")
    (tmp_path / "train.wrd").write_text("\n".join(wrd) + "\n")
    (tmp_path / "dict.ltr.txt").write_text("W 20\nO 20\n")
    return tmp_path / "train.tsv"


def test_subset_split_seconds_alignment_and_nesting(tmp_path):
    src = _split(tmp_path)
    small = subset_split(src, tmp_path / "sub" / "a.tsv", seconds=3.0, seed=3)
    big = subset_split(src, tmp_path / "sub" / "b.tsv", seconds=6.0, seed=3)
    assert 3.0 <= small["seconds"] < 3.0 + 0.9 and 6.0 <= big["seconds"] < 6.0 + 0.9
    m = read_manifest(tmp_path / "sub" / "a.tsv")
    assert sum(m.sizes) / 16000 == pytest.approx(small["seconds"])
    wrd = read_labels(tmp_path / "sub" / "a.wrd", len(m))
    ltr = read_labels(tmp_path / "sub" / "a.ltr", len(m))
    for e, w, lt in zip(m.entries, wrd, ltr):  # labels stay with their audio
        i = int(e.path[1:3])
        assert w == f"WORD{i}" and lt == " ".join(w) + " |"
    assert (tmp_path / "sub" / "dict.ltr.txt").read_text() == "W 20\nO 20\n"
    # the smaller subset is inside the bigger one (same seed = prefix of the same shuffled order)
    assert {e.path for e in m.entries} <= {e.path for e in read_manifest(tmp_path / "sub" / "b.tsv").entries}
    # manifest order is kept
    assert [e.path for e in m.entries] == sorted(e.path for e in m.entries)


def test_subset_split_too_little_audio(tmp_path):
    src = _split(tmp_path, n=3)
    with pytest.raises(DataError, match="train.tsv"):
        subset_split(src, tmp_path / "x.tsv", seconds=60)


def test_pca_2d_recovers_a_line_and_a_plane():
    t = np.linspace(-1, 1, 7)
    x = np.outer(t, [3.0, 4.0, 0.0])  # points on a line: PC1 explains everything
    xy, ex = pca_2d(x)
    assert ex[0] == pytest.approx(1.0) and ex[1] == pytest.approx(0.0, abs=1e-12)
    assert np.abs(xy[:, 0]) == pytest.approx(np.abs(t * 5.0))
    rng = np.random.default_rng(0)
    y = rng.standard_normal((6, 2)) @ rng.standard_normal((2, 10))
    xy, ex = pca_2d(y)
    assert ex.sum() == pytest.approx(1.0)
    # 2 components of rank-2 data keep every pairwise distance
    d = lambda a: np.linalg.norm(a[:, None] - a[None], axis=-1)  # noqa: E731
    assert d(xy) == pytest.approx(d(y - y.mean(0)), abs=1e-9)


def _is_png(path):
    import matplotlib.image as mpimg

    assert path.read_bytes()[:8] == PNG
    img = mpimg.imread(path)
    assert img.ndim == 3 and img.shape[0] > 100 and img.shape[1] > 100


def test_plots_are_png(tmp_path):
    log = tmp_path / "run" / "log.jsonl"
    log.parent.mkdir()
    lines = []
    for u in range(1, 11):
        lines.append({"split": "train", "update": u, "loss": 3.5 - 0.1 * u, "accuracy": 0.1 + 0.03 * u,
                      "code_perplexity": 20 + u, "prob_perplexity": 22 + u, "temp": 2 - 0.01 * u,
                      "nll_loss": 5 - 0.2 * u, "blank_frac": 0.5 + 0.04 * u})
    lines.append({"split": "valid", "update": 10, "loss": 2.6, "accuracy": 0.4})
    lines.append({"alarm": "x", "update": 3, "message": "m"})
    log.write_text("\n".join(json.dumps(x) for x in lines) + "\n")
    paths = [
        plot_pretraining(log, tmp_path / "p" / "pre.png", chance_bits=math.log2(11), num_codes=64),
        plot_finetuning({"en": {"a": log.parent, "b": log.parent}, "ky": {"a": log.parent}}, tmp_path / "p" / "ft.png"),
        plot_code_usage(np.array([[0, 0], [1, 2], [-1, 0.5]]), ["en", "de", "ky"], np.array([0.7, 0.3]),
                        tmp_path / "p" / "codes.png", highlight="ky"),
    ]
    for p in paths:
        _is_png(p)
    assert not list((tmp_path / "p").glob(".*tmp*"))  # written atomically, no leftovers
    # runs that validated get a third row: the valid unit error rate
    lines.append({"split": "valid", "update": 10, "uer": 40.0, "wer": 80.0})
    log.write_text("\n".join(json.dumps(x) for x in lines) + "\n")
    three = plot_finetuning({"en": {"a": log.parent}}, tmp_path / "p" / "ft3.png")
    import matplotlib.image as mpimg

    assert mpimg.imread(three).shape[0] > 1.3 * mpimg.imread(paths[1]).shape[0]


def test_results_table_means_and_markdown():
    runs = []
    for seed, wer in ((1, 0.5), (2, 0.7)):
        runs.append({"lang": "en", "condition": "pretrained", "seed": seed, "updates": 10, "wall_seconds": 5.0,
                     "run_dir": "x", "last_train": {"blank_frac": 0.9},
                     "scores": {"greedy": {"wer": wer, "cer": wer / 2}, "lm": {"wer": wer - 0.1, "cer": 0.1}}})
    runs.append({"lang": "ky", "condition": "scratch", "seed": 1, "updates": 7, "wall_seconds": 5.0, "run_dir": "y",
                 "last_train": {}, "scores": {"greedy": {"per": 0.8}}})
    res = {"config": {"quick": True, "seeds": [1, 2], "threads": 1, "device": "cpu", "left_out": "ky",
                      "labelled_seconds": 600, "finetune_seconds": 10, "finetune_left_out_seconds": 5, "lm_order": 3},
           "checkpoint": {"path": "p", "description": "d"}, "pretraining": {}, "finetuning": runs,
           "timings": {"a": 1.0}, "wall_seconds": 3.0}
    rows = table_rows(res)
    mean = [r for r in rows if r["seed"] == "mean ± sd"]
    assert len(mean) == 1 and mean[0]["greedy_wer"] == pytest.approx(0.6) and mean[0]["lm_wer"] == pytest.approx(0.5)
    assert mean[0]["greedy_wer_sd"] == pytest.approx(0.1414, abs=1e-4)
    t = format_table(res)
    assert "| en | pretrained | mean ± sd |  |  | 60.0 ± 14.1 |" in t and "| ky | scratch | 1 | 7 | 5 | - | - | 80.0 |" in t
    md = markdown(res)
    assert "Fine-tuning started from: d" in md and t in md and "over more seeds" not in md
    # the recipe's committed seed sweep, marked as carried over
    res["seed_sweep"] = {
        "file": "recipes/synth/results/seeds_ky.json", "command": "python recipes/synth/escape_sweep.py ...",
        "updates": 376, "escape_below": 60.0, "pretrained": "recipes/synth/pretrained", "settings": [
            {"setting": "multi", "overrides": [], "seeds": [1, 2, 3], "escaped": 2, "runs": 3,
             "test_errors": [30.0, 40.0, 80.0], "uers": [31.0, 41.0, 79.0]},
            {"setting": "mono", "overrides": ["finetune.pretrained=recipes/synth/pretrained_mono"], "seeds": [1],
             "escaped": 1, "runs": 1, "test_errors": [35.0], "uers": [36.0]},
            {"setting": "scratch", "overrides": ["finetune.pretrained={random}"], "seeds": [1],
             "escaped": 0, "runs": 1, "test_errors": [99.0], "uers": [98.0]},
        ]}
    md = markdown(res)
    assert "`ky` over more seeds (carried over" in md and "escape_sweep.py" in md
    assert "| multi | `recipes/synth/pretrained` | 1,2,3 | 2/3 | 50.0 ± 26.5 | 30.0 40.0 80.0 |" in md
    assert "| mono | `recipes/synth/pretrained_mono` | 1 | 1/1 | 35.0 |" in md
    assert "| scratch | random weights (the run's seed) | 1 | 0/1 |" in md


def test_smooth_is_a_trailing_mean():
    from speech_ssl.demo.plots import _smooth

    assert _smooth([1, 2, 3, 4], 2) == pytest.approx([1.0, 1.5, 2.5, 3.5])
    assert _smooth([5.0], 10) == pytest.approx([5.0])
