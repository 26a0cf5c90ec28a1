"""recipes/commonvoice/run.sh end to end in tiny mode (embedded corpus in the CommonVoice layout, multilingual
tiny pretraining with alpha sampling, phone and letter fine-tuning): every stage's outputs, finite PER / WER,
and a second run that skips finished work."""

from __future__ import annotations

import json
import math

import yaml

from tests.recipes.helpers import REPO, check_syntax_and_unknown_option, run_recipe

RUN = REPO / "recipes" / "commonvoice" / "run.sh"


def _run(args, env_extra, timeout=300):
    return run_recipe(RUN, args, env_extra, timeout)


def test_syntax_and_options(tmp_path):
    check_syntax_and_unknown_option(RUN, tmp_path)
    p = _run(["--stop-stage", "1"], {"EXP": str(tmp_path), "TINY": "0", "CV_ROOT": ""})
    assert p.returncode == 2 and "CV_ROOT" in p.stderr


def test_recipe_tiny_end_to_end_and_idempotent(tmp_path):
    exp = tmp_path / "exp"
    env = {"EXP": str(exp)}  # tiny defaults: pretraining on de + tr, fine-tuning tr on phones and letters
    p = _run([], env)
    assert p.returncode == 0, p.stderr[-4000:]
    # stage 1: both languages prepared in the CommonVoice layout, a labelled subset for the fine-tuning language
    for lang in ("de", "tr"):
        for split in ("train", "dev", "test"):
            for ext in ("tsv", "wrd", "ltr", "phn"):
                assert (exp / "data" / lang / f"{split}.{ext}").exists(), (lang, split, ext)
    sub = (exp / "data" / "tr" / "train-ft.tsv").read_text().splitlines()
    full = (exp / "data" / "tr" / "train.tsv").read_text().splitlines()
    assert 1 < len(sub) < len(full) and set(sub[1:]) <= set(full[1:])
    assert len((exp / "data" / "tr" / "train-ft.phn").read_text().splitlines()) == len(sub) - 1
    # stage 2: multilingual pretraining over both languages with the config's alpha
    cfg = yaml.safe_load((exp / "pretrain" / "config.yaml").read_text())
    assert len(cfg["data"]["train"]) == 2 and cfg["data"]["alpha"] == 0.5
    assert (exp / "pretrain" / "final" / "model.safetensors").exists()
    # stage 3: XLSR fine-tuning numbers, phones and letters
    for unit in ("phn", "ltr"):
        run = exp / "finetune" / f"tr-{unit}"
        assert (run / "final" / "model.safetensors").exists()
        c = yaml.safe_load((run / "config.yaml").read_text())
        assert c["finetune"]["labels"] == unit and float(c["optim"]["lr"]) == 3e-4
        assert c["model"]["overrides"]["mask_prob"] == 0.75 and c["data"]["normalize"] is True
    # stages 4-5: PER on phones, WER and CER on letters, all finite
    for t in ("dev", "test"):
        per = json.loads((exp / "decode" / "tr-phn" / t / "score.phone.json").read_text())["error_rate"]
        assert math.isfinite(per)
        assert json.loads((exp / "decode" / "tr-phn" / t / "summary.json").read_text())["score"]["metric"] == "PER"
        for unit in ("word", "char"):
            v = json.loads((exp / "decode" / "tr-ltr" / t / f"score.{unit}.json").read_text())["error_rate"]
            assert math.isfinite(v)
    table = (exp / "results.md").read_text()
    assert "| tr | phn |" in table and "| tr | ltr |" in table
    # second run: nothing redone
    stamp = (exp / "decode" / "tr-phn" / "test" / "summary.json").stat().st_mtime_ns
    p2 = _run([], env, timeout=120)
    assert p2.returncode == 0, p2.stderr[-3000:]
    for msg in ("embedded corpus exists", "de prepared", "tr prepared", "pretraining done", "tr-phn done",
                "tr-ltr done"):
        assert msg in p2.stderr, msg
    assert "fine-tuning" not in p2.stderr and "greedy" not in p2.stderr
    assert (exp / "decode" / "tr-phn" / "test" / "summary.json").stat().st_mtime_ns == stamp
