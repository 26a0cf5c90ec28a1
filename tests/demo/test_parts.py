"""Parts of the demo that are cheap to test alone: PCA, the results table, the settings check of a reused folder (subsets: test_data_subsets.py,
plots: test_report_plots.py)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from speech_ssl.demo.codes import pca_2d
from speech_ssl.demo.results import format_table, markdown, table_rows


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


def test_demo_assets_are_package_data_not_checkout_paths():
    """The demo finds its configs and shipped checkpoints inside the installed package (recipes/synth links to
    them), so a wheel installed outside the checkout runs it."""
    from pathlib import Path

    import speech_ssl.demo
    from speech_ssl.demo.config import ASSETS, CONF, SHIPPED, SHIPPED_MONO

    pkg = Path(speech_ssl.demo.__path__[0]).resolve()
    for p in (ASSETS, CONF, SHIPPED, SHIPPED_MONO):
        assert p.resolve().is_relative_to(pkg)
    assert (CONF / "finetune.yaml").is_file() and (SHIPPED / "model.safetensors").is_file()
    repo = pkg.parents[1]
    assert (repo / "recipes" / "synth" / "pretrained").resolve() == SHIPPED.resolve()


def test_a_folder_made_with_other_settings_is_refused(tmp_path):
    """`make demo-quick` then `make demo` into one folder used to reuse the quick corpus and fail halfway."""
    from speech_ssl.demo.config import demo_config
    from speech_ssl.demo.run import SETTINGS_FILE, DemoError, check_settings

    quick, full = demo_config(quick=True), demo_config()
    check_settings(tmp_path, quick)
    assert json.loads((tmp_path / SETTINGS_FILE).read_text())["quick"] is True
    check_settings(tmp_path, quick)  # the same settings again: fine (an interrupted demo continues)
    with pytest.raises(DemoError, match=r"other settings \(quick True there, False now; languages"):
        check_settings(tmp_path, full)
    (tmp_path / SETTINGS_FILE).write_text('{"quick": tru')
    with pytest.raises(DemoError, match=rf"{SETTINGS_FILE}:1: not valid JSON"):
        check_settings(tmp_path, quick)
