"""recipes/babel/run.sh end to end in tiny mode (embedded corpus in the LDC BABEL layout for two languages,
multilingual tiny pretraining, letter fine-tuning of one language, LM, decoding): every stage's outputs,
finite WER / CER, the conversation hold-out, and a second run that skips finished work."""

from __future__ import annotations

import json
import math
from pathlib import Path

import yaml

from tests.recipes.helpers import REPO, check_syntax_and_unknown_option, run_recipe

RUN = REPO / "recipes" / "babel" / "run.sh"


def _run(args, env_extra, timeout=300):
    return run_recipe(RUN, args, env_extra, timeout)


def test_syntax_and_options(tmp_path):
    check_syntax_and_unknown_option(RUN, tmp_path)
    p = _run([], {"EXP": str(tmp_path), "TINY": "0", "PACKS": ""})
    assert p.returncode == 2 and "PACKS" in p.stderr
    p = _run([], {"EXP": str(tmp_path), "TINY": "0", "PACKS": "/data/IARPA-babel105b-v0.5"})
    assert p.returncode == 2 and "not LANG:PACK_DIR" in p.stderr
    p = _run([], {"EXP": str(tmp_path), "TINY": "0", "PACKS": "tr:/x", "FT_LANGUAGES": "sw"})
    assert p.returncode == 2 and "sw has no pack" in p.stderr


def _rows(tsv: Path) -> list[str]:
    return tsv.read_text().splitlines()[1:]


def test_recipe_tiny_end_to_end_and_idempotent(tmp_path):
    exp = tmp_path / "exp"
    env = {"EXP": str(exp)}  # tiny defaults: BABEL tr + fi for pretraining, tr fine-tuned
    p = _run([], env)
    assert p.returncode == 0, p.stderr[-4000:]
    # stage 1: both packs prepared; validation held out of train, disjoint, together the whole train set
    for lang in ("tr", "fi"):
        d = exp / "data" / lang
        for name in ("train", "dev", "train-ft", "valid"):
            for ext in ("tsv", "wrd", "ltr"):
                assert (d / f"{name}.{ext}").exists(), (lang, name, ext)
        ft, va, tr = _rows(d / "train-ft.tsv"), _rows(d / "valid.tsv"), _rows(d / "train.tsv")
        assert va and ft and not set(ft) & set(va) and sorted(ft + va) == sorted(tr)
        assert len((d / "valid.wrd").read_text().splitlines()) == len(va)
    # stage 2: multilingual pretraining on both languages' train-ft audio
    cfg = yaml.safe_load((exp / "pretrain" / "config.yaml").read_text())
    assert sorted(Path(t).parent.name for t in cfg["data"]["train"]) == ["fi", "tr"]
    assert cfg["data"]["alpha"] == 0.5
    # stage 3: fine-tuned with the BABEL numbers (26k updates in the config; 2 in tiny mode)
    c = yaml.safe_load((exp / "finetune" / "tr" / "config.yaml").read_text())
    assert c["optim"]["max_update"] == 2 and float(c["optim"]["lr"]) == 3e-4
    assert yaml.safe_load((REPO / "recipes" / "babel" / "conf" / "finetune_xlsr.yaml").read_text())["optim"][
        "max_update"] == 26000
    assert (exp / "finetune" / "tr" / "final" / "model.safetensors").exists()
    assert not (exp / "finetune" / "fi").exists()
    # stages 4-6: LM, greedy and LM decodes of valid and dev, finite scores
    assert (exp / "lm" / "tr.arpa").exists() and (exp / "lm" / "tr.lexicon.txt").exists()
    for dec in ("greedy", "lm"):
        for t in ("valid", "dev"):
            d = exp / "decode" / "tr" / dec / t
            for unit in ("word", "char"):
                v = json.loads((d / f"score.{unit}.json").read_text())["error_rate"]
                assert math.isfinite(v) and v >= 0
    assert "best" in json.loads((exp / "decode" / "tr" / "lm" / "valid" / "tune.json").read_text())
    table = (exp / "results.md").read_text()
    assert "| tr | greedy |" in table and "| tr | lm |" in table
    # second run: nothing redone
    stamp = (exp / "decode" / "tr" / "lm" / "dev" / "summary.json").stat().st_mtime_ns
    p2 = _run([], env, timeout=120)
    assert p2.returncode == 0, p2.stderr[-3000:]
    for msg in ("tr prepared", "fi prepared", "pretraining done", "tr done", "tr LM exists"):
        assert msg in p2.stderr, msg
    assert "generating" not in p2.stderr and "fine-tuning" not in p2.stderr and "greedy" not in p2.stderr
    assert (exp / "decode" / "tr" / "lm" / "dev" / "summary.json").stat().st_mtime_ns == stamp
