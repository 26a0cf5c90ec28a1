"""speech_ssl.report.results and `speech-ssl results table | curves | pretrain-info`: each recipe's results
table from the files its stages leave (exact text), errors on non-finite rates, the fine-tuning curves and
the pretraining summary."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from speech_ssl.cli import main
from speech_ssl.errors import DataError
from speech_ssl.models import Wav2Vec2ForPretraining, get_preset
from speech_ssl.models.checkpoint import save_model
from speech_ssl.report.results import finetune_runs, last_update, pretrain_info, results_table
from speech_ssl.train.checkpoint import export_weights, verify_checkpoint


def _score(d: Path, unit: str, rate: float) -> None:
    d.mkdir(parents=True, exist_ok=True)
    (d / f"score.{unit}.json").write_text(json.dumps({"error_rate": rate, "name": unit}))


def _log(run: Path, updates: list[int], valid: dict | None = None) -> None:
    run.mkdir(parents=True, exist_ok=True)
    lines = [{"split": "train", "update": u, "loss": 3.0 - 0.1 * u} for u in updates]
    if valid:
        lines.append({"split": "valid", **valid})
    (run / "log.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))


def librispeech_exp(exp: Path) -> Path:
    for name, dec, t, w, c in (("base-10m", "greedy", "dev-clean", 0.5, 0.25),
                               ("base-10m", "greedy", "test-clean", 0.4, 0.2),
                               ("base-10m", "lm", "test-clean", 0.3, 0.15),
                               ("base-100h", "greedy", "dev-other", 0.1234, 0.0456)):
        d = exp / "decode" / name / dec / t
        _score(d, "word", w)
        _score(d, "char", c)
    return exp


def commonvoice_exp(exp: Path) -> Path:
    for t, r in (("dev", 0.3), ("test", 0.35)):
        _score(exp / "decode" / "tr-phn" / t, "phone", r)
        _score(exp / "decode" / "tr-ltr" / t, "word", r + 0.5)
        _score(exp / "decode" / "tr-ltr" / t, "char", r / 2)
    _score(exp / "decode" / "de-phn" / "dev", "phone", 0.9)
    _log(exp / "finetune" / "tr-phn", [1, 2, 3])
    return exp


def babel_exp(exp: Path) -> Path:
    for dec in ("greedy", "lm"):
        for t, r in (("valid", 0.6), ("dev", 0.7)):
            _score(exp / "decode" / "tr" / dec / t, "word", r - (dec == "lm") * 0.1)
            _score(exp / "decode" / "tr" / dec / t, "char", r / 3)
    _score(exp / "decode" / "ky" / "greedy" / "valid", "word", 0.8)
    _score(exp / "decode" / "ky" / "greedy" / "valid", "char", 0.4)
    _log(exp / "finetune" / "tr", [5, 10])
    return exp


def synth_exp(exp: Path) -> Path:
    def summary(d: Path, metric: str, rate: float) -> None:
        d.mkdir(parents=True, exist_ok=True)
        (d / "summary.json").write_text(json.dumps({"score": {"metric": metric, "error_rate": rate}}))

    summary(exp / "decode" / "en-10m-pretrained" / "greedy", "WER", 0.9)
    _score(exp / "decode" / "en-10m-pretrained" / "greedy", "char", 0.45)
    summary(exp / "decode" / "en-10m-pretrained" / "lm", "WER", 0.8)
    summary(exp / "decode" / "en-10m-pretrained" / "tune", "WER", 0.1)
    summary(exp / "decode" / "ky-scratch" / "greedy", "PER", 0.95)
    _score(exp / "decode" / "ky-scratch" / "greedy", "phone", 0.95)
    _log(exp / "finetune" / "en-10m-pretrained", [1, 2])
    _log(exp / "finetune" / "ky-scratch", [])
    return exp


EXPECTED = {
    "librispeech": """# recipes/librispeech results (%, WER / CER)

| model | decoder | dev-clean WER / CER | dev-other WER / CER | test-clean WER / CER |
|---|---|---|---|---|
| base-100h | greedy | - | 12.3 / 4.6 | - |
| base-10m | greedy | 50.0 / 25.0 | - | 40.0 / 20.0 |
| base-10m | lm | - | - | 30.0 / 15.0 |
""",
    "commonvoice": """# recipes/commonvoice results (%, greedy decoding)

| language | units | dev PER | test PER | dev WER / CER | test WER / CER | updates |
|---|---|---|---|---|---|---|
| de | phn | 90.0 | - | - | - |  |
| tr | ltr | - | - | 80.0 / 15.0 | 85.0 / 17.5 |  |
| tr | phn | 30.0 | 35.0 | - | - | 3 |
""",
    "babel": """# recipes/babel results (%, WER / CER; BABEL's dev set is the test set)

| language | decoder | valid WER / CER | dev (test) WER / CER | updates |
|---|---|---|---|---|
| ky | greedy | 80.0 / 40.0 | - |  |
| tr | greedy | 60.0 / 20.0 | 70.0 / 23.3 | 10 |
| tr | lm | 50.0 / 20.0 | 60.0 / 23.3 | 10 |
""",
    "synth": """# recipes/synth results (test sets, %)

| model | decoder | WER | CER | PER | updates |
|---|---|---|---|---|---|
| en-10m-pretrained | greedy | 90.0 | 45.0 | - | 2 |
| en-10m-pretrained | lm | 80.0 | - | - | 2 |
| ky-scratch | greedy | - | - | 95.0 |  |
""",
}
BUILD = {"librispeech": librispeech_exp, "commonvoice": commonvoice_exp, "babel": babel_exp, "synth": synth_exp}


@pytest.mark.parametrize("recipe", sorted(EXPECTED))
def test_results_table_text_and_file(tmp_path, recipe):
    exp = BUILD[recipe](tmp_path / "exp")
    text = results_table(exp, recipe)
    assert text == EXPECTED[recipe]
    assert (exp / "results.md").read_text() == text


@pytest.mark.parametrize("recipe", sorted(EXPECTED))
def test_results_table_of_an_empty_experiment(tmp_path, recipe):
    text = results_table(tmp_path, recipe)
    assert text.startswith(f"# recipes/{recipe} results") and text.count("\n|") >= 1


def test_results_table_non_finite_and_unknown_recipe(tmp_path):
    exp = librispeech_exp(tmp_path / "exp")
    _score(exp / "decode" / "base-10m" / "lm" / "dev-clean", "word", math.inf)
    _score(exp / "decode" / "base-10m" / "lm" / "dev-clean", "char", 0.1)
    with pytest.raises(DataError, match="lm/dev-clean.*non-finite"):
        results_table(exp, "librispeech")
    with pytest.raises(ValueError, match="unknown recipe"):
        results_table(exp, "timit")


def test_results_table_command(tmp_path, capsys):
    exp = babel_exp(tmp_path / "exp")
    assert main(["results", "table", str(exp), "--recipe", "babel"]) == 0
    assert capsys.readouterr().out == EXPECTED["babel"] + "\n"
    assert (exp / "results.md").read_text() == EXPECTED["babel"]
    assert main(["results", "table", str(exp), "--recipe", "babel", "--out", str(tmp_path / "t.md")]) == 0
    assert (tmp_path / "t.md").read_text() == EXPECTED["babel"]
    _score(exp / "decode" / "tr" / "lm" / "dev", "char", math.nan)
    assert main(["results", "table", str(exp), "--recipe", "babel"]) == 1
    assert "non-finite" in capsys.readouterr().err


def test_last_update_and_finetune_runs(tmp_path):
    _log(tmp_path / "en-10m-pretrained", [1, 2, 7])
    _log(tmp_path / "ky-scratch", [])
    (tmp_path / "notes").mkdir()
    assert last_update(tmp_path / "en-10m-pretrained") == "7" and last_update(tmp_path / "ky-scratch") == ""
    assert last_update(tmp_path / "nothing") == ""
    runs = finetune_runs(tmp_path)
    assert runs == {"en": {"10m-pretrained": tmp_path / "en-10m-pretrained"},
                    "ky": {"scratch": tmp_path / "ky-scratch"}}


def test_results_curves_command(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    assert main(["results", "curves", str(tmp_path / "none"), "--out", str(tmp_path / "c.png")]) == 1
    assert "none: no such folder" in capsys.readouterr().err and not (tmp_path / "c.png").exists()
    (tmp_path / "empty").mkdir()
    assert main(["results", "curves", str(tmp_path / "empty"), "--out", str(tmp_path / "c.png")]) == 0
    assert "no fine-tuning runs" in capsys.readouterr().out and not (tmp_path / "c.png").exists()
    for cmd in (["table", str(tmp_path / "nope"), "--recipe", "synth"], ["seeds", str(tmp_path), str(tmp_path / "nope")]):
        assert main(["results", *cmd, "--out", str(tmp_path / "t.md")]) == 1
        assert "nope: no such folder" in capsys.readouterr().err and not (tmp_path / "t.md").exists()
    for name in ("en-10m-pretrained", "en-10m-scratch", "ky-scratch"):
        run = tmp_path / "ft" / name
        run.mkdir(parents=True)
        (run / "log.jsonl").write_text("".join(
            json.dumps({"split": "train", "update": u, "nll_loss": 5 - 0.2 * u, "blank_frac": 0.5}) + "\n"
            for u in range(1, 6)))
    assert main(["results", "curves", str(tmp_path / "ft"), "--out", str(tmp_path / "c.png")]) == 0
    assert "fine-tuning curves:" in capsys.readouterr().out
    assert (tmp_path / "c.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_pretrain_info_and_command(tmp_path, capsys):
    run = tmp_path / "pretrain"
    _log(run, [1, 2, 3], valid={"update": 3, "loss": 2.5, "accuracy": 0.4, "temp": 1.9, "other": 1})
    with pytest.raises(DataError, match="final"):
        pretrain_info(run, 12.0, "cpu", "run.sh", ["a.tsv"])
    save_model(Wav2Vec2ForPretraining(get_preset("tiny")), tmp_path / "weights")
    export_weights(tmp_path / "weights", run / "final")  # RUN/final as finalize makes it
    info = pretrain_info(run, 12.0, "cpu", "run.sh --stage 3", ["a.tsv", "b.tsv"])
    assert info["updates"] == 3 and info["wall_seconds_last_invocation"] == 12.0
    assert info["train_last"] == {"update": 3, "loss": pytest.approx(2.7)}
    assert info["valid_last"] == {"update": 3, "loss": 2.5, "accuracy": 0.4, "temp": 1.9}
    assert info["machine"].endswith("(cpu)") and info["command"] == "run.sh --stage 3"
    assert json.loads((run / "final" / "pretrain_info.json").read_text()) == info
    assert "pretrain_info.json" in verify_checkpoint(run / "final")["files"]  # final's meta.json covers it
    assert main(["results", "pretrain-info", str(run), "--wall", "5", "--device", "cpu",
                 "--command=x.sh --stage 3 (TINY=1)", "--train=[a.tsv,b.tsv]"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["train_manifests"] == ["a.tsv", "b.tsv"] and printed["wall_seconds_last_invocation"] == 5.0
    assert printed["command"] == "x.sh --stage 3 (TINY=1)"
    assert json.loads((run / "final" / "pretrain_info.json").read_text()) == printed  # replaced, and still verifies
    verify_checkpoint(run / "final")
    assert main(["results", "pretrain-info", str(tmp_path / "none"), "--wall", "5", "--device", "cpu",
                 "--command", "x", "--train", "a.tsv"]) == 1
    assert "log.jsonl" in capsys.readouterr().err


def test_results_curves_without_matplotlib_exits_3(tmp_path, capsys, monkeypatch):
    import sys

    _log(tmp_path / "ft" / "en-10m-scratch", [1, 2])
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # `import matplotlib` raises ImportError
    assert main(["results", "curves", str(tmp_path / "ft"), "--out", str(tmp_path / "c.png")]) == 3
    assert "no fine-tuning curves" in capsys.readouterr().err and not (tmp_path / "c.png").exists()


def test_synth_seeds_table_mean_sd_and_command(tmp_path, capsys):
    """Three synth folders run with SEED=3, 1, 2: rows per run name and decoder, seeds in order, sample sd, the
    per-seed values in seed order; a run missing in one folder has fewer seeds; a repeated seed is an error."""
    exps = []
    for seed, wer, cer in ((3, 0.70, 0.40), (1, 0.50, 0.30), (2, 0.60, 0.35)):
        exp = synth_exp(tmp_path / f"s{seed}")
        summary = exp / "decode" / "en-10m-pretrained" / "greedy" / "summary.json"
        summary.write_text(json.dumps({"score": {"metric": "WER", "error_rate": wer}}))
        _score(summary.parent, "char", cer)
        (exp / "finetune" / "en-10m-pretrained" / "config.yaml").write_text(f"task: ctc\nseed: {seed}\n")
        (exp / "finetune" / "ky-scratch" / "config.yaml").write_text(f"seed: {seed}\n")
        exps.append(exp)
    import shutil

    shutil.rmtree(exps[0] / "decode" / "ky-scratch")  # seed 3 has no ky-scratch decode
    out = tmp_path / "seeds.md"
    assert main(["results", "seeds", *map(str, exps), "--out", str(out)]) == 0
    text = out.read_text()
    assert capsys.readouterr().out.strip() == text.strip()
    assert "| en-10m-pretrained | greedy | 1,2,3 | 60.0 ± 10.0 | 35.0 ± 5.0 | - | 50.0 60.0 70.0 |" in text
    assert "| en-10m-pretrained | lm | 1,2,3 | 80.0 ± 0.0 | - | - | 80.0 80.0 80.0 |" in text
    assert "| ky-scratch | greedy | 1,2 | - | - | 95.0 ± 0.0 | 95.0 95.0 |" in text
    assert main(["results", "seeds", str(exps[1]), str(exps[1])]) == 1
    assert "a seed appears twice" in capsys.readouterr().err
    assert main(["results", "seeds", str(tmp_path / "nowhere")]) == 1
    capsys.readouterr()
    (exps[2] / "finetune" / "ky-scratch" / "config.yaml").unlink()
    assert main(["results", "seeds", *map(str, exps)]) == 1
    err = capsys.readouterr().err
    assert "no seed in the run's config.yaml" in err and str(exps[2] / "finetune" / "ky-scratch") in err
    (exps[2] / "finetune" / "ky-scratch" / "config.yaml").write_text("seed: [2\n")  # not YAML: named, no traceback
    assert main(["results", "seeds", *map(str, exps)]) == 1
    assert str(exps[2] / "finetune" / "ky-scratch" / "config.yaml") in capsys.readouterr().err
    (exps[2] / "finetune" / "ky-scratch" / "config.yaml").write_text("seed: 2\n")
    # the same run name decoded on another test set is refused
    for exp, manifest in ((exps[1], "a/test.tsv"), (exps[2], "b/test.tsv")):
        f = exp / "decode" / "en-10m-pretrained" / "lm" / "summary.json"
        f.write_text(json.dumps({**json.loads(f.read_text()), "manifest": str(tmp_path / manifest)}))
    assert main(["results", "seeds", *map(str, exps)]) == 1
    assert "read different test sets" in capsys.readouterr().err
