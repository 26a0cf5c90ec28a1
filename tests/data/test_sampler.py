"""speech_ssl.data.sampler: max_tokens batches, determinism, DDP sharding, resume, language sampling."""

import numpy as np
import pytest

from speech_ssl.data.sampler import DynamicBatchSampler, MultiCorpusBatchSampler, language_probs

SIZES = np.random.default_rng(0).integers(1000, 20000, size=500)


@pytest.mark.parametrize("num_buckets", [0, 4])
def test_batches_respect_max_tokens_and_cover_everything(num_buckets):
    s = DynamicBatchSampler(SIZES, max_tokens=60000, max_sentences=8, seed=3, num_buckets=num_buckets)
    batches = list(s)
    flat = [i for b in batches for i in b]
    assert sorted(flat) == list(range(len(SIZES)))
    for b in batches:
        assert len(b) * SIZES[b].max() <= 60000 and len(b) <= 8
    if num_buckets == 0:  # fairseq's greedy packing over sorted sizes: only the last batch is underfull
        full = [len(b) == min(8, 60000 // SIZES[b].max()) for b in batches]
        assert sum(not f for f in full) <= 1


def test_deterministic_from_seed_and_epoch():
    a = DynamicBatchSampler(SIZES, 60000, seed=1)
    b = DynamicBatchSampler(SIZES, 60000, seed=1)
    assert list(a) == list(b)
    e1 = list(a)
    a.set_epoch(2)
    assert list(a) != e1
    assert list(DynamicBatchSampler(SIZES, 60000, seed=2)) != e1
    ns = DynamicBatchSampler(SIZES, 60000, shuffle=False)
    assert [x for bt in ns for x in bt] == np.argsort(-SIZES, kind="stable").tolist()


def test_buckets_change_composition_across_epochs():
    s = DynamicBatchSampler(SIZES, 60000, seed=1, num_buckets=4)
    e1 = sorted(map(tuple, s))
    s.set_epoch(2)
    assert sorted(map(tuple, s)) != e1


@pytest.mark.parametrize("world", [2, 3, 7])
def test_ddp_shards_have_equal_counts_and_cover_all(world):
    shards = [list(DynamicBatchSampler(SIZES, 60000, seed=4, num_replicas=world, rank=r)) for r in range(world)]
    assert len({len(x) for x in shards}) == 1
    covered = {i for sh in shards for b in sh for i in b}
    assert covered == set(range(len(SIZES)))
    single = list(DynamicBatchSampler(SIZES, 60000, seed=4))
    assert sum(len(sh) for sh in shards) - len(single) < world  # only the padding repeats


def test_resume_mid_epoch():
    s = DynamicBatchSampler(SIZES, 60000, seed=9, num_replicas=2, rank=1)
    s.set_epoch(3)
    full = list(s)
    it = iter(s)
    head = [next(it) for _ in range(5)]
    state = s.state_dict()
    assert state["epoch"] == 3 and state["position"] == 5
    t = DynamicBatchSampler(SIZES, 60000, seed=9, num_replicas=2, rank=1)
    t.load_state_dict(state)
    t.set_epoch(3)  # the trainer's usual call keeps the loaded position
    assert head + list(t) == full
    # explicit consumed count (DataLoader prefetch) overrides the yielded count
    assert s.state_dict(batches_done=2)["position"] == 2
    with pytest.raises(ValueError, match="seed"):
        DynamicBatchSampler(SIZES, 60000, seed=1, num_replicas=2, rank=1).load_state_dict(state)
    with pytest.raises(ValueError, match="ranks"):
        DynamicBatchSampler(SIZES, 60000, seed=9).load_state_dict(state)


def test_oversize_items():
    sizes = np.array([100, 5000, 200])
    with pytest.raises(ValueError, match="1 items are longer than max_tokens=1000"):
        DynamicBatchSampler(sizes, 1000)
    s = DynamicBatchSampler(sizes, 1000, skip_oversize=True)
    assert s.num_oversize == 1 and sorted(i for b in s for i in b) == [0, 2]


def test_language_probs():
    n = [900.0, 90.0, 10.0]
    np.testing.assert_allclose(language_probs(n, 1.0), [0.9, 0.09, 0.01])
    np.testing.assert_allclose(language_probs(n, 0.0), [1 / 3] * 3)
    p = language_probs(n, 0.5)
    q = np.sqrt([0.9, 0.09, 0.01])
    np.testing.assert_allclose(p, q / q.sum())


def test_multicorpus_shares():
    rng = np.random.default_rng(1)
    corpora = [rng.integers(1000, 3000, 2000), rng.integers(1000, 3000, 200), rng.integers(1000, 3000, 40)]
    s = MultiCorpusBatchSampler(corpora, ["en", "fr", "sw"], max_tokens=12000, alpha=0.5, seed=2)
    shares = s.language_shares()
    for v in shares.values():
        assert abs(v["epoch"] - v["target"]) < 0.02
    assert shares["sw"]["target"] > shares["sw"]["natural"] and shares["en"]["target"] < shares["en"]["natural"]
    batches = list(s)
    flat = np.concatenate([np.asarray(b) for b in batches])
    # down-sampled English items appear at most once; up-sampled Swahili items repeat
    assert np.bincount(flat[flat < 2000]).max() == 1
    assert np.bincount(flat[flat >= 2200] - 2200).min() >= 1
    total = sum(c.sum() for c in corpora)
    assert abs(s.sizes[flat].sum() / total - 1) < 0.02
    s.set_epoch(2)
    assert sorted(map(tuple, s)) != sorted(map(tuple, batches))
    nat = MultiCorpusBatchSampler(corpora, ["en", "fr", "sw"], max_tokens=12000, alpha=1.0)
    assert sorted(i for b in nat for i in b) == list(range(2240))


def _fairseq_batch_by_size(order, sizes, max_tokens, max_sentences, mult):
    """Item-by-item reference of fairseq's batch_by_size (data_utils_fast.batch_by_size_vec semantics)."""
    batches, cur, cur_max = [], [], 0
    for idx in order:
        new_max = max(cur_max, sizes[idx])
        if cur and ((len(cur) + 1) * new_max > max_tokens or (max_sentences and len(cur) == max_sentences)):
            k = len(cur)
            k = max(mult * (k // mult), k % mult)
            batches.append(cur[:k])
            cur = cur[k:]
            cur_max = max((sizes[i] for i in cur), default=0)
            new_max = max(cur_max, sizes[idx])
        cur.append(idx)
        cur_max = new_max
    if cur:
        batches.append(cur)
    return batches


@pytest.mark.parametrize("mult,max_sentences", [(1, None), (8, None), (8, 20), (3, 7)])
def test_batches_match_fairseq_batch_by_size(mult, max_sentences):
    s = DynamicBatchSampler(SIZES, 100000, max_sentences=max_sentences, shuffle=False, batch_size_multiple=mult)
    order = np.argsort(-SIZES, kind="stable")
    ref = _fairseq_batch_by_size(order.tolist(), SIZES, 100000, max_sentences, mult)
    assert [b.tolist() for b in s.all_batches()] == ref
    if mult == 8:
        assert all(len(b) % 8 == 0 for b in ref[:-1] if len(b) >= 8)
