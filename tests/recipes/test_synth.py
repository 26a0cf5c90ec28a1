"""recipes/synth/run.sh: option parsing, and the whole recipe end to end on tiny data (TINY=1)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests import REPO

RUN = REPO / "recipes" / "synth" / "run.sh"


def _run(args, env_extra, timeout=120):
    env = dict(os.environ, OMP_NUM_THREADS="1", SPEECH_SSL_NO_BAR="1")
    env.update(env_extra)
    return subprocess.run(["bash", str(RUN), *args], capture_output=True, text=True, env=env, timeout=timeout,
                          cwd="/")


def test_syntax_and_unknown_option(tmp_path):
    assert subprocess.run(["bash", "-n", str(RUN)]).returncode == 0
    p = _run(["--no-such-knob", "1"], {"EXP": str(tmp_path)})
    assert p.returncode == 2 and "unknown option --no-such-knob" in p.stderr
    p = _run(["--stage"], {"EXP": str(tmp_path)})
    assert p.returncode == 2 and "needs a value" in p.stderr
    p = _run(["--stage", "3"], {"EXP": str(tmp_path), "MONO": "yes"})
    assert p.returncode == 2 and "MONO is 0, 1 or only, not 'yes'" in p.stderr


def test_installed_cli_is_used_and_empty_scoring_stage(tmp_path):
    """With `speech-ssl` on PATH the recipe calls it; stage 7 on an empty experiment writes an empty table."""
    bin_dir = Path(sys.executable).parent
    if not (bin_dir / "speech-ssl").exists():
        pytest.skip("speech-ssl is not installed next to this python")
    p = _run(["--stage", "7", "--stop-stage", "7"], {"EXP": str(tmp_path), "PATH": f"{bin_dir}:{os.environ['PATH']}"})
    assert p.returncode == 0, p.stderr
    assert (tmp_path / "results.md").read_text().startswith("# recipes/synth results")


def test_conditions_pick_stage_4_runs_and_a_missing_mono_model_is_an_error(tmp_path):
    """CONDITIONS=fi-pretrained-mono without a monolingual model stops with a message, before any training."""
    shipped = REPO / "recipes" / "synth" / "pretrained"
    p = _run(["--stage", "4", "--stop-stage", "4"], {"EXP": str(tmp_path), "PRETRAINED": str(shipped),
                                                      "CONDITIONS": "fi-pretrained-mono",
                                                      "SPEECH_SSL_PYTHON": sys.executable})
    assert p.returncode == 1 and "no monolingual model at" in p.stderr, p.stderr[-2000:]
    assert not (tmp_path / "finetune").exists()
    # a mistyped run name is an error listing the names, not a stage that runs nothing and says nothing
    p = _run(["--stage", "4", "--stop-stage", "4"], {"EXP": str(tmp_path), "PRETRAINED": str(shipped),
                                                      "CONDITIONS": "en-10m-scratch,en-10m-scratchh",
                                                      "SPEECH_SSL_PYTHON": sys.executable})
    assert p.returncode == 2 and "no run named 'en-10m-scratchh'" in p.stderr, p.stderr[-2000:]
    assert not (tmp_path / "finetune").exists()


def test_a_fine_tuning_stopped_by_a_signal_is_not_finalized(tmp_path):
    """The trainer exits 75 when a signal stopped it; stage 4 must stop there, not copy the partial run to
    RUN/final (which a later run would take as done). FT_OVERRIDES reach the command, after the recipe's own."""
    calls = tmp_path / "calls.txt"
    fake = tmp_path / "python"  # stands in for `python -m speech_ssl ...`: finetune is "stopped", the rest succeeds
    fake.write_text(f'#!/usr/bin/env bash\necho "$*" >> {calls}\n[ "$3" = finetune ] && exit 75\nexit 0\n')
    fake.chmod(0o755)
    exp = tmp_path / "exp"
    p = _run(["--stage", "4", "--stop-stage", "4"], {
        "EXP": str(exp), "DEVICE": "cpu", "PRETRAINED": str(REPO / "recipes" / "synth" / "pretrained"),
        "CONDITIONS": "en-10m-scratch", "SPEECH_SSL_PYTHON": str(fake),
        "FT_OVERRIDES": "model.overrides.mask_prob=0.3 optim.lr=5e-4"})
    assert p.returncode == 75, p.stderr[-2000:]
    lines = calls.read_text().splitlines()
    ft = [c for c in lines if c.startswith("-m speech_ssl finetune ")]
    assert len(ft) == 1 and ft[0].split(" --run-dir ")[0].endswith("model.overrides.mask_prob=0.3 optim.lr=5e-4")
    assert not any(" convert " in c for c in lines)
    assert not (exp / "finetune" / "en-10m-scratch" / "final").exists()


def _fake_cli(tmp_path):
    """Stands in for `python -m speech_ssl ...`: logs each call, succeeds, and a run leaves a checkpoint."""
    calls = tmp_path / "calls.txt"
    fake = tmp_path / "python"
    fake.write_text(f'#!/usr/bin/env bash\necho "$*" >> {calls}\n'
                    'a=("$@"); for ((i = 0; i < ${#a[@]}; i++)); do\n'
                    '  [ "${a[i]}" = --run-dir ] && mkdir -p "${a[i+1]}/checkpoints/checkpoint_00000001"\ndone\nexit 0\n')
    fake.chmod(0o755)
    return fake, calls


def test_pretrain_overrides_reach_stage_3_after_the_recipes_own(tmp_path):
    """PRETRAIN_OVERRIDES (e.g. a larger model for a GPU lease) are the last words of the pretraining command
    and are recorded in the command that pretrain_info keeps."""
    fake, calls = _fake_cli(tmp_path)
    over = "model.overrides.encoder_layers=8 model.overrides.encoder_embed_dim=384"
    p = _run(["--stage", "3", "--stop-stage", "3"], {
        "EXP": str(tmp_path / "exp"), "DEVICE": "cpu", "SPEECH_SSL_PYTHON": str(fake), "PRETRAIN_OVERRIDES": over})
    assert p.returncode == 0, p.stderr[-2000:]
    lines = calls.read_text().splitlines()
    pt = [c for c in lines if c.startswith("-m speech_ssl pretrain ")]
    assert len(pt) == 1 and pt[0].split(" --run-dir ")[0].endswith(over)
    info = [c for c in lines if " pretrain-info " in c]
    assert len(info) == 1 and f"PRETRAIN_OVERRIDES={over})" in info[0]


@pytest.mark.parametrize("dropout", [None, "0.2"])
def test_dropout_only_when_english_is_fine_tuned_from_a_pretrained_model(tmp_path, dropout):
    """Stage 4 adds Transformer dropout (FT_PRETRAINED_DROPOUT, default 0.1) to the English runs from a pretrained
    model and to their random-frozen control; from scratch and the left-out language keep the config's 0."""
    fake, calls = _fake_cli(tmp_path)
    env = {"EXP": str(tmp_path / "exp"), "DEVICE": "cpu", "SPEECH_SSL_PYTHON": str(fake),
           "PRETRAINED": str(REPO / "recipes" / "synth" / "pretrained"),
           "CONDITIONS": "en-10m-pretrained,en-10m-pretrained-convtrain,en-10m-random-frozen,en-10m-scratch,"
                         "en-1h-scratch,fi-pretrained,fi-scratch"}
    (tmp_path / "exp" / "data" / "en").mkdir(parents=True)
    (tmp_path / "exp" / "data" / "en" / "train-1h.tsv").write_text("/\n")
    if dropout:
        env["FT_PRETRAINED_DROPOUT"] = dropout
    p = _run(["--stage", "4", "--stop-stage", "4"], env)
    assert p.returncode == 0, p.stderr[-2000:]
    runs = {}
    for c in calls.read_text().splitlines():
        if c.startswith("-m speech_ssl finetune "):
            runs[Path(c.split(" --run-dir ")[1].split()[0]).name] = c.split()
    assert len(runs) == 7
    want = dropout or "0.1"
    for name, words in runs.items():
        reg = {w for w in words if w.split("=")[0] in ("model.overrides.dropout", "model.overrides.attention_dropout",
                                                       "model.overrides.activation_dropout")}
        if name in ("en-10m-pretrained", "en-10m-pretrained-convtrain", "en-10m-random-frozen"):
            assert reg == {f"model.overrides.{k}={want}" for k in ("dropout", "attention_dropout",
                                                                   "activation_dropout")}, name
        else:
            assert reg == set(), name


@pytest.mark.slow
def test_recipe_end_to_end_tiny(tmp_path):
    """Stages 1-7 as `python3 -m speech_ssl` (no installed CLI), then a re-run that finds everything done."""
    env = {"TINY": "1", "EXP": str(tmp_path / "exp"), "THREADS": "1", "NJ": "2", "MONO": "1",
           "SPEECH_SSL_PYTHON": sys.executable}
    p = _run([], env, timeout=900)
    assert p.returncode == 0, p.stderr[-4000:]
    exp = tmp_path / "exp"
    assert (exp / "corpus" / "synth_info.json").exists()
    for tsv in ("librispeech/test-clean.tsv", "en/train-10m.tsv", "en/train-1h.tsv", "cv/fi/train.tsv",
                "cv/de/train.tsv"):
        assert (exp / "data" / tsv).exists(), tsv
    info = json.loads((exp / "pretrain" / "final" / "pretrain_info.json").read_text())
    assert info["updates"] == 3
    names = sorted(d.name for d in (exp / "finetune").iterdir() if (d / "final" / "model.safetensors").exists())
    assert names == ["en-10m-pretrained", "en-10m-pretrained-convtrain", "en-10m-pretrained-mono-convtrain",
                     "en-10m-random-frozen", "en-10m-scratch", "en-1h-scratch", "fi-pretrained", "fi-pretrained-mono",
                     "fi-random-frozen", "fi-scratch"]
    mono = json.loads((exp / "pretrain_mono" / "final" / "pretrain_info.json").read_text())
    assert mono["train_manifests"] == [str(exp / "data" / "librispeech" / "train-clean-100.tsv"),
                                       str(exp / "data" / "librilight" / "train-10h.tsv")]
    table = (exp / "results.md").read_text()
    assert table.count("| en-") == 12 and table.count("| fi-") == 4  # greedy + LM for English, greedy for fi
    # everything exists: a second run skips every step
    p2 = _run([], env, timeout=300)
    assert p2.returncode == 0, p2.stderr[-3000:]
    assert "corpus exists" in p2.stderr and "en-10m-pretrained done" in p2.stderr
    # MONO=only: stage 3 for the English-only model alone (the two can train side by side)
    p3 = _run(["--stage", "3", "--stop-stage", "3"], {**env, "MONO": "only"}, timeout=120)
    assert p3.returncode == 0, p3.stderr[-3000:]
    assert "pretrain_mono done" in p3.stderr and "pretrain done" not in p3.stderr
