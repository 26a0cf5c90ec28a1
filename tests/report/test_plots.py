"""speech_ssl.report.plots: the PNG figures of training runs (pretraining, fine-tuning curves, code usage)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from speech_ssl.report.plots import plot_code_usage, plot_finetuning, plot_pretraining

PNG = b"\x89PNG\r\n\x1a\n"


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


def test_smooth_is_a_trailing_mean():
    from speech_ssl.report.plots import _smooth

    assert _smooth([1, 2, 3, 4], 2) == pytest.approx([1.0, 1.5, 2.5, 3.5])
    assert _smooth([5.0], 10) == pytest.approx([5.0])
