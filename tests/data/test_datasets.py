"""speech_ssl.data.datasets: fairseq cropping/padding semantics, filtering, targets, determinism."""

import numpy as np
import pytest
import soundfile as sf
import torch

from speech_ssl.data.datasets import DatasetConfig, FinetuneDataset, PretrainDataset
from speech_ssl.data.manifest import ManifestEntry, write_labels, write_manifest
from speech_ssl.data.sampler import DynamicBatchSampler
from speech_ssl.data.units import Dictionary, build_dictionary, text_to_letters
from speech_ssl.errors import DataError

LENGTHS = [16000, 20000, 31000, 5000, 40000, 12000]
TEXTS = ["HELLO WORLD", "A CAT", "THE DOG RAN", "NO", "YES IT IS", "OK"]


@pytest.fixture
def corpus(tmp_path):
    rng = np.random.default_rng(0)
    waves = []
    for i, n in enumerate(LENGTHS):
        x = rng.uniform(-0.5, 0.5, n).astype(np.float32)
        sf.write(tmp_path / f"u{i}.wav", x, 16000, subtype="FLOAT")
        waves.append(x)
    write_manifest(tmp_path / "train.tsv", tmp_path, [ManifestEntry(f"u{i}.wav", n) for i, n in enumerate(LENGTHS)])
    ltr = [text_to_letters(t) for t in TEXTS]
    write_labels(tmp_path / "train.ltr", ltr)
    build_dictionary(ltr).save(tmp_path / "dict.ltr.txt")
    return tmp_path, waves


def _find(haystack, needle):
    """Offset of the contiguous crop ``needle`` in ``haystack``."""
    for s in range(len(haystack) - len(needle) + 1):
        if haystack[s] == needle[0] and np.array_equal(haystack[s : s + len(needle)], needle):
            return s
    return -1


def test_pretrain_filters_and_caps_sizes(corpus):
    d, _ = corpus
    ds = PretrainDataset(d / "train.tsv", min_sample_size=10000, max_sample_size=25000)
    assert len(ds) == 5 and ds.num_skipped == 1  # the 5000-sample row is dropped
    assert ds.sizes.tolist() == [16000, 20000, 25000, 25000, 12000]
    assert ds.rows.tolist() == [0, 1, 2, 4, 5]


def test_pretrain_batch_cropped_to_shortest_at_random_offsets(corpus):
    d, waves = corpus
    ds = PretrainDataset(d / "train.tsv", max_sample_size=25000, seed=5)
    batch = ds.collater([ds[i] for i in [1, 2, 4]])
    assert batch["source"].shape == (3, 20000) and batch["source"].dtype == torch.float32
    assert batch["lengths"].tolist() == [20000] * 3 and batch["lengths"].dtype == torch.int64
    assert batch["id"].tolist() == [1, 2, 4]
    offsets = [_find(waves[r], batch["source"][k].numpy()) for k, r in enumerate([1, 2, 4])]
    assert offsets[0] == 0 and all(o >= 0 for o in offsets)  # crops are contiguous pieces of the sources
    # max_sample_size caps the crop even when every item is longer
    b2 = ds.collater([ds[i] for i in [2, 4]])
    assert b2["source"].shape == (2, 25000)
    # reproducible for the same (seed, epoch, ids), different for another epoch
    again = ds.collater([ds[i] for i in [1, 2, 4]])
    assert torch.equal(again["source"], batch["source"])
    ds.set_epoch(2)
    other = ds.collater([ds[i] for i in [1, 2, 4]])
    assert not torch.equal(other["source"], batch["source"])


def test_pretrain_normalize(corpus):
    d, waves = corpus
    ds = PretrainDataset(d / "train.tsv", normalize=True)
    x = ds[0]["source"]
    ref = torch.nn.functional.layer_norm(torch.from_numpy(waves[0]), (len(waves[0]),))
    torch.testing.assert_close(x, ref, atol=1e-5, rtol=0)


def test_finetune_pads_and_targets(corpus):
    d, waves = corpus
    ds = FinetuneDataset.from_config(DatasetConfig(manifest=str(d / "train.tsv"), labels="ltr"))
    batch = ds.collater([ds[i] for i in [0, 3, 4]])
    assert batch["source"].shape == (3, 40000)
    assert batch["lengths"].tolist() == [16000, 5000, 40000]
    np.testing.assert_array_equal(batch["source"][1, :5000].numpy(), waves[3])
    assert batch["source"][1, 5000:].abs().sum() == 0 and batch["source"][0, 16000:].abs().sum() == 0
    dic = Dictionary.load(d / "dict.ltr.txt")
    assert batch["target_lengths"].tolist() == [12, 3, 10]
    assert batch["target"].shape == (3, 12) and batch["target"].dtype == torch.int64
    assert dic.decode(batch["target"][1]) == "N O |"
    assert batch["target"][1, 3:].eq(dic.pad_index).all()


def test_finetune_drops_longer_instead_of_cropping(corpus):
    d, _ = corpus
    ds = FinetuneDataset(d / "train.tsv", d / "train.ltr", d / "dict.ltr.txt", max_sample_size=30000)
    assert ds.num_too_long == 2 and len(ds) == 4
    assert [Dictionary.load(d / "dict.ltr.txt").decode(t) for t in ds.targets][-1] == "O K |"


def test_finetune_label_errors(corpus):
    d, _ = corpus
    lines = (d / "train.ltr").read_text().splitlines()
    lines[4] = "Y E S | Ü |"
    write_labels(d / "bad.ltr", lines)
    with pytest.raises(DataError, match=r"bad.ltr:5: symbol 'Ü' is not in the dictionary"):
        FinetuneDataset(d / "train.tsv", d / "bad.ltr", d / "dict.ltr.txt")
    write_labels(d / "short.ltr", lines[:3])
    with pytest.raises(DataError, match=r"short.ltr:4: label file has 3 lines"):
        FinetuneDataset(d / "train.tsv", d / "short.ltr", d / "dict.ltr.txt")


def test_missing_audio_names_file_and_manifest_line(corpus):
    d, _ = corpus
    (d / "u2.wav").unlink()
    ds = PretrainDataset(d / "train.tsv")
    with pytest.raises(DataError, match=r"u2.wav: audio file not found \(manifest .*train.tsv:4\)"):
        ds[2]


def test_segment_rows(tmp_path):
    x = np.random.default_rng(3).uniform(-0.5, 0.5, 8000 * 3).astype(np.float32)
    sf.write(tmp_path / "long.wav", x, 8000, subtype="FLOAT")
    write_manifest(
        tmp_path / "seg.tsv", tmp_path,
        [ManifestEntry("long.wav", 16000, 0, 8000), ManifestEntry("long.wav", 8000, 12000, 16000)],
    )
    ds = PretrainDataset(tmp_path / "seg.tsv")
    assert [len(ds[i]["source"]) for i in range(2)] == ds.sizes.tolist() == [16000, 8000]


def test_dataloader_with_sampler(corpus):
    d, _ = corpus
    ds = PretrainDataset(d / "train.tsv", min_sample_size=6000, max_sample_size=25000)
    sampler = DynamicBatchSampler(ds.sizes, max_tokens=50000, seed=1)
    loader = torch.utils.data.DataLoader(ds, batch_sampler=sampler, collate_fn=ds.collater)
    seen = []
    for b in loader:
        assert b["source"].numel() <= 50000
        seen += b["id"].tolist()
    assert sorted(seen) == list(range(len(ds)))




def test_manifest_counts_must_match_the_audio(tmp_path):
    """Policy: num_samples is the length at 16 kHz within 1%; an 8 kHz file listed with its own frame count
    (fairseq's manifest script) and a count 3x the audio are errors naming the manifest line."""
    sf.write(tmp_path / "a.wav", np.zeros(8000, np.float32), 8000)  # 1 s at 8 kHz = 16000 samples at 16 kHz
    sf.write(tmp_path / "b.wav", np.zeros(16000, np.float32), 16000)
    for rows, msg in ((["a.wav\t16000", "b.wav\t16000"], None),
                      (["b.wav\t16000", "a.wav\t8000"], r"m.tsv:3: .* lists 8000 samples .*x0\.500: a count of frames "
                                                       r"at the file's own rate"),
                      (["b.wav\t48000"], r"m.tsv:2: .* lists 48000 samples .* has 16000 at 16000 Hz \(a stale")):
        (tmp_path / "m.tsv").write_text(f"{tmp_path}\n" + "\n".join(rows) + "\n")
        ds = PretrainDataset(tmp_path / "m.tsv")
        if msg is None:
            assert [len(ds.load(i)) for i in range(len(ds))] == [16000, 16000]
            continue
        with pytest.raises(DataError, match=msg):
            for i in range(len(ds)):
                ds.load(i)


def test_manifest_rows_stay_inside_the_root(tmp_path):
    from speech_ssl.data.manifest import read_manifest

    (tmp_path / "m.tsv").write_text(f"{tmp_path}/root\na/b.wav\t16000\na/../../c.wav\t16000\n")
    with pytest.raises(DataError, match=r"m.tsv:3: row path 'a/../../c.wav' leaves the manifest's root"):
        read_manifest(tmp_path / "m.tsv")
    (tmp_path / "m.tsv").write_text(f"{tmp_path}/root\na/../b.wav\t16000\n{tmp_path}/c.wav\t16000\n")
    assert len(read_manifest(tmp_path / "m.tsv")) == 2  # inside the root after all, and an absolute path
