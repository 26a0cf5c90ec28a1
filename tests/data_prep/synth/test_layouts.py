"""The preparers read the synthetic corpus (data_prep.synth) in every real layout, and recover its labels.

Skipped when data_prep.synth or eSpeak NG is not installed. The synthetic corpus records the words of
every utterance under ``labels/``; the prepared ``.wrd`` files must agree with them.
"""

import csv

import pytest

from data_prep import babel, commonvoice, librilight, librispeech
from speech_ssl.data.manifest import read_labels, read_manifest


def _truth(path):
    with open(path, encoding="utf-8", newline="") as f:
        return {Path_stem(r["path"]): r["words"] for r in csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE)}


def Path_stem(p):  # noqa: N802 - tiny helper
    return p.rsplit("/", 1)[-1].rsplit(".", 1)[0]


@pytest.fixture(scope="module")
def synth(tmp_path_factory):
    pytest.importorskip("espeakng_loader")
    cli = pytest.importorskip("data_prep.synth.cli")
    import argparse

    out = tmp_path_factory.mktemp("synth")
    p = argparse.ArgumentParser()
    cli.add_arguments(p)
    args = p.parse_args(["--out", str(out), "--languages", "en,tr", "--minutes-per-language", "0.3",
                         "--speakers-per-language", "4", "--dev-speakers", "1", "--test-speakers", "1",
                         "--babel-languages", "tr", "--babel-minutes", "0.3", "--workers", "1", "--no-progress"])
    assert cli.run(args) == 0
    return out


def test_librispeech_and_librilight_layouts(synth, tmp_path):
    librispeech.prepare(synth / "LibriSpeech", tmp_path / "ls")
    for f in sorted((synth / "labels" / "librispeech").glob("*.tsv")):
        truth = _truth(f)
        m = read_manifest(tmp_path / "ls" / f.name)
        wrd = read_labels(tmp_path / "ls" / f"{f.stem}.wrd", len(m))
        assert {Path_stem(e.path): w.lower() for e, w in zip(m.entries, wrd)} == {k: v.lower() for k, v in truth.items()}
    librilight.prepare(synth / "librispeech_finetuning", tmp_path / "ll")
    n_folds = sum(len(_truth(f)) for f in (synth / "labels" / "librilight").glob("*.tsv"))
    assert len(read_manifest(tmp_path / "ll" / "train-10h.tsv")) == n_folds


def test_commonvoice_layout(synth, tmp_path):
    root = next((synth).glob("cv-corpus-*/tr"))
    commonvoice.prepare(root, tmp_path / "cv")
    for split in ("train", "dev", "test"):
        truth = _truth(synth / "labels" / "commonvoice-tr" / f"{split}.tsv")
        m = read_manifest(tmp_path / "cv" / f"{split}.tsv")
        wrd = read_labels(tmp_path / "cv" / f"{split}.wrd", len(m))
        assert {Path_stem(e.path): w for e, w in zip(m.entries, wrd)} == truth


def test_babel_layout(synth, tmp_path):
    root = next(p for p in synth.iterdir() if (p / "conversational").is_dir())
    babel.prepare(root, tmp_path / "babel", lang="tr")
    with open(synth / "labels" / "babel-tr" / "training.tsv", encoding="utf-8", newline="") as f:
        truth = [r["words"] for r in csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE)]
    assert sorted(read_labels(tmp_path / "babel" / "train.wrd")) == sorted(truth)
