"""`speech-ssl demo --quick` at minimum size, end to end: every artifact written, every number finite,
the plots open as PNG images, the table names every condition and the checkpoint it used."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests import REPO

PNG = b"\x89PNG\r\n\x1a\n"

# The quick preset, shrunk further: 3 languages, ~1 min of English, a few updates per stage.
TINY = [
    "languages=[en,de,fi]", "english_minutes=1.6", "minutes_per_language=0.5", "labelled_seconds=30",
    "pretrain_seconds=14", "pretrain_max_update=3", "finetune_seconds=7", "finetune_left_out_seconds=7",
    "tune_lm_weights=[0.5,2.0]", "tune_word_scores=[0.0]", "code_usage_utterances=4", "synth_workers=2",
    "pretrain_overrides=[data.max_tokens=64000,data.max_sample_size=16000,schedule.warmup_updates=1]",
]


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo") / "out"
    env = dict(os.environ, PYTHONPATH=str(REPO), SPEECH_SSL_NO_BAR="1")
    cmd = [sys.executable, "-m", "speech_ssl", "demo", "--quick", "--out", str(out), "--pretrained", "none",
           "--threads", "1", *TINY]
    p = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=REPO, timeout=600)
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    return out, p.stdout


def _numbers(x, path="$"):
    if isinstance(x, bool) or x is None or isinstance(x, str):
        return
    if isinstance(x, (int, float)):
        yield path, x
    elif isinstance(x, dict):
        for k, v in x.items():
            yield from _numbers(v, f"{path}.{k}")
    elif isinstance(x, list):
        for i, v in enumerate(x):
            yield from _numbers(v, f"{path}[{i}]")


def test_artifacts_written(demo):
    out, stdout = demo
    for name in ("results.json", "results.md", "plots/pretraining.png", "plots/finetuning.png",
                 "plots/code_usage_pca.png"):
        assert (out / name).is_file() and (out / name).stat().st_size > 0, name
    assert not list(out.glob(".*.tmp"))
    assert "Fine-tuning started from: demo's own pretraining" in stdout
    assert "| en | pretrained | 1 |" in stdout


def test_every_number_finite_and_every_condition_scored(demo):
    out, _ = demo
    r = json.loads((out / "results.json").read_text())
    bad = [(p, v) for p, v in _numbers(r) if not math.isfinite(v)]
    assert not bad, bad[:5]
    conds = {(x["lang"], x["condition"]) for x in r["finetuning"]}
    want = {(lang, c) for lang in ("en", "fi") for c in ("pretrained", "scratch", "random-frozen")}
    mono = REPO / "recipes" / "synth" / "pretrained_mono" / "model.safetensors"
    if mono.exists():  # the shipped English-only checkpoint adds the monolingual condition for fi
        want.add(("fi", "pretrained-mono-en"))
        assert r["checkpoint_mono"]["path"].endswith("pretrained_mono")
        assert "also fine-tuned from the shipped English-only checkpoint" in (out / "results.md").read_text()
    assert conds == want
    for x in r["finetuning"]:
        assert x["updates"] >= 1 and x["wall_seconds"] > 0
        g = x["scores"]["greedy"]
        if x["lang"] == "en":
            assert {"wer", "cer"} <= set(g) and {"wer", "cer", "lm_weight"} <= set(x["scores"]["lm"])
        else:
            assert "per" in g
    assert r["checkpoint"]["path"].endswith(tuple(f"checkpoint_{n:08d}" for n in range(1, 4)))
    pt = r["pretraining"]
    assert 1 <= pt["updates"] <= 3 and {"loss", "accuracy", "code_perplexity", "temp"} <= set(pt["last"])
    assert sorted(r["code_usage"]["languages"]) == ["de", "en", "fi"]
    assert "| en | pretrained | 1 |" in (out / "results.md").read_text()


def test_english_greedy_scores_equal_a_greedy_decode(demo, tmp_path):
    """English greedy scores come from the LM decode's greedy hypotheses (one forward pass): they must equal
    what `speech-ssl decode` without an LM gives for the same checkpoint and test set."""
    from speech_ssl.decode.run import DecodeOptions, decode_manifest

    out, _ = demo
    r = json.loads((out / "results.json").read_text())
    x = next(x for x in r["finetuning"] if x["lang"] == "en" and x["condition"] == "pretrained")
    assert not (out / "decode" / "en" / Path(x["run_dir"]).name / "greedy").exists()
    s = decode_manifest(DecodeOptions(checkpoint=x["checkpoint"], manifest=str(out / "data" / "librispeech" /
                                      "test-clean.tsv"), out=str(tmp_path / "greedy"), labels="wrd", device="cpu",
                                      num_workers=0), log=lambda m: None)
    assert x["scores"]["greedy"]["wer"] == pytest.approx(s["score"]["error_rate"])
    lm_rows = [json.loads(r) for r in (out / "decode" / "en" / Path(x["run_dir"]).name / "lm" /
                                      "results.jsonl").read_text().splitlines()]
    greedy_rows = [json.loads(r) for r in (tmp_path / "greedy" / "results.jsonl").read_text().splitlines()]
    assert [r["hyp_greedy"] for r in lm_rows] == [r["hyp"] for r in greedy_rows]  # the same hypotheses, each one


def test_plots_open_as_png(demo):
    import matplotlib.image as mpimg

    out, _ = demo
    for p in sorted((out / "plots").glob("*.png")):
        assert p.read_bytes()[:8] == PNG
        img = mpimg.imread(p)
        assert img.ndim == 3 and min(img.shape[:2]) > 100


def test_rerun_is_idempotent(demo):
    """A second run finds every stage done and only rewrites the results (seconds, not minutes)."""
    out, _ = demo
    before = json.loads((out / "results.json").read_text())
    env = dict(os.environ, PYTHONPATH=str(REPO), SPEECH_SSL_NO_BAR="1")
    cmd = [sys.executable, "-m", "speech_ssl", "demo", "--quick", "--out", str(out), "--pretrained", "none",
           "--threads", "1", *TINY]
    p = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=REPO, timeout=300)
    assert p.returncode == 0, p.stderr[-2000:]
    after = json.loads((out / "results.json").read_text())
    assert after["table"] == before["table"]
    assert after["timings"]["finetune"] < 5
