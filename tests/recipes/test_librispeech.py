"""recipes/librispeech/run.sh end to end in tiny mode (embedded corpus in the LibriSpeech / Libri-light layouts,
tiny model, a few updates): every stage's outputs, finite scores, and a second run that skips finished work."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from speech_ssl.train.checkpoint import verify_checkpoint
from tests.recipes.helpers import REPO, check_syntax_and_unknown_option, run_recipe

RUN = REPO / "recipes" / "librispeech" / "run.sh"


def _run(args, env_extra, timeout=300):
    return run_recipe(RUN, args, env_extra, timeout)


def _finite_scores(exp: Path, names: list[str], decoders=("greedy", "lm")) -> None:
    for name in names:
        for dec in decoders:
            for t in ("dev-clean", "test-clean"):
                d = exp / "decode" / name / dec / t
                assert (d / "hyp.txt").exists() and (d / "ref.txt").exists(), d
                for unit in ("word", "char"):
                    s = json.loads((d / f"score.{unit}.json").read_text())
                    assert math.isfinite(s["error_rate"]) and s["error_rate"] >= 0, (d, unit, s["error_rate"])
                summary = json.loads((d / "summary.json").read_text())
                assert summary["score"]["metric"] == "WER"


def test_syntax_and_options(tmp_path):
    check_syntax_and_unknown_option(RUN, tmp_path)
    p = _run(["--stage"], {"EXP": str(tmp_path)})
    assert p.returncode == 2 and "needs a value" in p.stderr
    # real-corpus mode without a corpus: a clear message, not a traceback
    p = _run(["--stop-stage", "1"], {"EXP": str(tmp_path), "TINY": "0", "LIBRISPEECH": ""})
    assert p.returncode == 2 and "LIBRISPEECH" in p.stderr


def test_recipe_tiny_end_to_end_and_idempotent(tmp_path):
    """Stages 1-6 on the 10m and 100h subsets; a second run finds every step done."""
    exp = tmp_path / "exp"
    env = {"EXP": str(exp), "SUBSETS": "10m,100h"}
    p = _run([], env)
    assert p.returncode == 0, p.stderr[-4000:]
    # stage 1: corpus in the real layouts, manifests, one fairseq-ordered letter dictionary
    assert (exp / "corpus" / "synth_info.json").exists()
    for tsv in ("librispeech/train-clean-100.tsv", "librispeech/dev-clean.tsv", "librispeech/test-clean.tsv",
                "librilight/train-10m.tsv", "librilight/train-1h.tsv", "librilight/train-10h.tsv"):
        assert (exp / "data" / tsv).exists(), tsv
    symbols = [ln.split()[0] for ln in (exp / "data" / "dict.ltr.txt").read_text().splitlines()]
    assert symbols[:4] == ["|", "E", "T", "A"] and len(symbols) == 28
    # stage 2: pretraining; stage 3: one fine-tuned model per subset, best checkpoint copied to final/
    assert (exp / "pretrain" / "final" / "model.safetensors").exists()
    assert not (exp / "pretrain" / "final" / "train_state.pt").exists()
    # final/ is a checkpoint of its own: its meta.json lists what it holds (no training state) and verifies
    meta = verify_checkpoint(exp / "pretrain" / "final")
    assert "train_state.pt" not in meta["files"] and meta["num_updates"] > 0
    for name, lr in (("base-10m", 5e-5), ("base-100h", 3e-5)):  # fairseq's lr per subset, tiny budget
        assert (exp / "finetune" / name / "final" / "model.safetensors").exists()
        cfg = yaml.safe_load((exp / "finetune" / name / "config.yaml").read_text())
        assert cfg["optim"]["max_update"] == 2 and float(cfg["optim"]["lr"]) == lr
    # stage 4: our LM on the train transcripts (never dev/test)
    assert (exp / "lm" / "lm.arpa").exists() and (exp / "lm" / "lexicon.txt").exists()
    train_text = (exp / "lm" / "train.txt").read_text().splitlines()
    test_text = (exp / "data" / "librispeech" / "test-clean.wrd").read_text().splitlines()
    assert train_text and not set(test_text) <= set(train_text)
    # stages 5-6: greedy and LM decodes of dev/test, finite scores, a results table
    _finite_scores(exp, ["base-10m", "base-100h"])
    tune = json.loads((exp / "decode" / "base-10m" / "lm" / "dev-clean" / "tune.json").read_text())
    assert "best" in tune
    table = (exp / "results.md").read_text()
    assert table.count("| base-") == 4 and "test-clean WER / CER" in table
    # --lm ARPA without --lexicon: a letter lexicon of its unigrams (here: the same words as ours)
    exp_lm = tmp_path / "exp_lm"
    p3 = _run(["--stage", "4", "--stop-stage", "4", "--lm", str(exp / "lm" / "lm.arpa")],
              {"EXP": str(exp_lm), "DATA": str(exp / "data")}, timeout=60)
    assert p3.returncode == 0, p3.stderr[-2000:]
    assert (exp_lm / "lm" / "lexicon.txt").read_text() == (exp / "lm" / "lexicon.txt").read_text()
    # a second run skips every finished step
    stamp = (exp / "decode" / "base-10m" / "greedy" / "test-clean" / "summary.json").stat().st_mtime_ns
    p2 = _run([], env, timeout=120)
    assert p2.returncode == 0, p2.stderr[-3000:]
    for msg in ("embedded corpus exists", "pretraining done", "base-10m done", "base-100h done", "LM exists"):
        assert msg in p2.stderr, msg
    assert "fine-tuning" not in p2.stderr and "greedy" not in p2.stderr
    assert (exp / "decode" / "base-10m" / "greedy" / "test-clean" / "summary.json").stat().st_mtime_ns == stamp
    # other settings for a finished run: refused with the difference named, the run and its final untouched
    final = (exp / "finetune" / "base-10m" / "final" / "model.safetensors").read_bytes()
    p4 = _run(["--stage", "3", "--stop-stage", "3"], {**env, "FT_OVERRIDES": "optim.lr=1e-3"}, timeout=120)
    assert p4.returncode == 2, p4.stderr[-3000:]
    assert "finetune/base-10m finished at update" in p4.stderr and "optim.lr: " in p4.stderr and " -> 0.001" in p4.stderr
    assert (exp / "finetune" / "base-10m" / "final" / "model.safetensors").read_bytes() == final


@pytest.mark.slow
def test_recipe_tiny_all_subsets_and_converted_checkpoint(tmp_path):
    """All four subsets; then fine-tuning from an HF-format checkpoint (converted by stage 2) on shared data."""
    exp = tmp_path / "exp"
    p = _run([], {"EXP": str(exp)}, timeout=600)
    assert p.returncode == 0, p.stderr[-4000:]
    names = [f"base-{s}" for s in ("10m", "1h", "10h", "100h")]
    _finite_scores(exp, names)
    hf = tmp_path / "hf"
    c = subprocess.run([sys.executable, "-m", "speech_ssl", "convert", "--from", "speech_ssl",
                        str(exp / "pretrain" / "final"), "--to", "hf", str(hf)],
                       capture_output=True, text=True, cwd=REPO)
    assert c.returncode == 0, c.stderr
    exp2 = tmp_path / "exp2"
    p = _run(["--stage", "2", "--stop-stage", "3", "--pretrained", str(hf)],
             {"EXP": str(exp2), "DATA": str(exp / "data"), "SUBSETS": "10m", "FT_UPDATES": "1"})
    assert p.returncode == 0, p.stderr[-4000:]
    assert "converting" in p.stderr
    assert (exp2 / "pretrained" / "model.safetensors").exists()
    assert (exp2 / "finetune" / "base-10m" / "final" / "model.safetensors").exists()
    assert not (exp2 / "pretrain").exists()
