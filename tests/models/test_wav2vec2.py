"""Model behaviour: losses, gradients, LayerDrop, quantizer, input errors, batch consistency, CTC."""

from __future__ import annotations

import math

import pytest
import torch

from speech_ssl.models import Wav2Vec2ForCTC, Wav2Vec2ForPretraining, Wav2Vec2Model, get_preset, preset_names
from speech_ssl.models.masking import compute_mask_indices, sample_negatives


def tiny(**kw):
    return get_preset("tiny", **kw)


def wave(B=2, L=6400, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(B, L, generator=g) * 0.3


def fixed_mask(model, x, lens=None, seed=0):
    B, L = x.shape
    T = int(model.wav2vec2.output_lengths(torch.tensor([L]))[0])
    pm = None
    if lens is not None:
        pm = torch.arange(T)[None] >= model.wav2vec2.output_lengths(lens)[:, None]
    g = torch.Generator().manual_seed(seed)
    m = compute_mask_indices((B, T), pm, 0.5, 3, min_masks=2, generator=g)
    return m, sample_negatives(m, model.cfg.num_negatives, generator=g)


def test_pretraining_forward_logs_and_backward():
    model = Wav2Vec2ForPretraining(tiny(loss_weights=(0.1, 10.0))).train()
    x = wave()
    lens = torch.tensor([6400, 5000])
    out = model(x, lens, generator=torch.Generator().manual_seed(0))
    n = out.sample_size
    assert out.logits.shape == (n, 1 + model.cfg.num_negatives) and out.logits.dtype == torch.float32
    for k in ("loss", "contrastive_loss", "diversity_loss", "features_pen", "accuracy", "prob_perplexity",
              "code_perplexity", "temperature", "sample_size", "loss_bits"):
        assert k in out.logs and math.isfinite(out.logs[k]), k
    w_div, w_pen = model.cfg.loss_weights
    # logs are () device tensors (the trainer reads them only when it logs)
    assert all(torch.is_tensor(out.logs[k]) for k in ("loss", "contrastive_loss", "accuracy", "correct"))
    total = float(out.logs["contrastive_loss"] + w_div * out.logs["diversity_loss"] * n + w_pen * out.logs["features_pen"] * n)
    assert out.loss.item() == pytest.approx(total, rel=1e-5)
    GV = model.cfg.latent_vars * model.cfg.latent_groups
    assert 1.0 <= out.logs["prob_perplexity"] <= GV and 1.0 <= out.logs["code_perplexity"] <= GV
    assert out.logs["temperature"] == 2.0
    # the padded tail of utterance 1 is never masked or used as a negative
    T1 = int(model.wav2vec2.output_lengths(lens)[1])
    assert not out.mask_indices[1, T1:].any()
    out.loss.backward()
    missing = [n for n, p in model.named_parameters() if p.requires_grad and p.grad is None]
    assert not missing


def test_features_pen_is_mean_square_of_conv_output():
    model = Wav2Vec2ForPretraining(tiny()).eval()
    x = wave()
    m, neg = fixed_mask(model, x)
    with torch.no_grad():
        out = model(x, mask_indices=m, negative_indices=neg)
        ref = model.wav2vec2.feature_encoder(x).pow(2).mean().item()
    assert out.logs["features_pen"] == pytest.approx(ref, rel=1e-6)


def test_feature_grad_mult_scales_and_zero_stops_gradients():
    x = wave()
    grads = {}
    for mult in (1.0, 0.1, 0.0):
        torch.manual_seed(0)
        model = Wav2Vec2ForPretraining(tiny(feature_grad_mult=mult, loss_weights=(0.1, 10.0))).eval()
        m, neg = fixed_mask(model, x)
        model(x, mask_indices=m, negative_indices=neg).loss.backward()
        grads[mult] = model.wav2vec2.feature_encoder.blocks[0].conv.weight.grad
    assert grads[0.0] is None
    # Relative to the gradient's scale: the first conv's weight gradient sums ~L terms with cancellation, and
    # multi-threaded conv backward sums them in a different order each run.
    ref = grads[1.0] * 0.1
    assert (grads[0.1] - ref).abs().max() <= 1e-4 * ref.abs().max()


def test_layerdrop_keeps_every_parameter_in_the_graph():
    model = Wav2Vec2ForPretraining(tiny(encoder_layerdrop=1.0)).train()
    x = wave()
    out = model(x)
    out.loss.backward()
    for n, p in model.named_parameters():
        assert p.grad is not None, n  # DDP without find_unused_parameters needs this
        if ".encoder.layers." in n:
            assert torch.count_nonzero(p.grad) == 0, n
    # all layers skipped: hidden states do not change across layers
    hs = out.backbone.hidden_states
    assert all(torch.equal(hs[0], h) for h in hs[1:])


def test_layerdrop_decision_follows_generator():
    enc = Wav2Vec2Model(tiny(encoder_layers=8, encoder_layerdrop=0.5)).train()
    x = wave(1)

    def run(seed):
        g = torch.Generator().manual_seed(seed)
        hs = enc(x, apply_mask=False, generator=g).hidden_states
        return [torch.equal(a, b) for a, b in zip(hs[:-1], hs[1:])]

    assert run(3) == run(3)
    assert any(run(s) != run(3) for s in range(4, 10))


def test_quantizer_eval_argmax_train_straight_through_and_temperature():
    model = Wav2Vec2ForPretraining(tiny())
    q = model.quantizer
    feats = torch.randn(2, 7, model.wav2vec2.feature_encoder.out_dim)
    q.eval()
    o = q(feats)
    logits = q.weight_proj(feats).view(2, 7, q.groups, q.num_vars)
    assert torch.equal(o.codes, logits.argmax(-1))
    book = q.codevectors.view(q.groups, q.num_vars, -1)
    expect = torch.cat([book[g][o.codes[..., g]] for g in range(q.groups)], dim=-1)
    assert torch.allclose(o.x, expect)
    q.train()
    f = feats.clone().requires_grad_(True)
    o = q(f, generator=torch.Generator().manual_seed(0))
    expect = torch.cat([book[g][o.codes[..., g]] for g in range(q.groups)], dim=-1)
    assert torch.allclose(o.x, expect, atol=1e-6)  # hard codes in the forward pass
    o.x.sum().backward()
    assert f.grad is not None and f.grad.abs().sum() > 0  # soft gradients (straight-through)
    model.set_num_updates(0)
    assert q.curr_temp == 2.0
    model.set_num_updates(1000)
    assert q.curr_temp == pytest.approx(max(2.0 * 0.999**1000, 0.5))
    model.set_num_updates(10**6)
    assert q.curr_temp == 0.5


def test_negative_identical_to_positive_gets_minus_inf():
    model = Wav2Vec2ForPretraining(tiny()).eval()
    with torch.no_grad():
        model.quantizer.codevectors.fill_(0.5)  # every code the same -> every negative equals its positive
    x = wave()
    m, neg = fixed_mask(model, x)
    with torch.no_grad():
        out = model(x, mask_indices=m, negative_indices=neg)
    assert torch.all(torch.isinf(out.logits[:, 1:])) and torch.all(torch.isfinite(out.logits[:, 0]))
    assert out.logs["contrastive_loss"] == 0.0


def test_autocast_keeps_loss_math_fp32():
    model = Wav2Vec2ForPretraining(tiny()).train()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = model(wave(), generator=torch.Generator().manual_seed(0))
    assert out.logits.dtype == torch.float32 and out.loss.dtype == torch.float32
    assert math.isfinite(out.loss.item())


def test_input_errors():
    model = Wav2Vec2Model(tiny()).eval()
    assert model.receptive_field == 400
    with pytest.raises(ValueError, match="shorter than the receptive field.*400"):
        model(torch.zeros(1, 399))
    with pytest.raises(ValueError, match="shorter than the receptive field"):
        model(torch.zeros(2, 1000), torch.tensor([1000, 300]))
    with pytest.raises(ValueError, match="empty batch"):
        model(torch.zeros(0, 1000))
    with pytest.raises(TypeError, match="float"):
        model(torch.zeros(1, 1000, dtype=torch.int16))
    with pytest.raises(ValueError, match=r"\(batch, samples\)"):
        model(torch.zeros(1000))
    with pytest.raises(ValueError, match="lengths"):
        model(torch.zeros(2, 1000), torch.tensor([1000]))
    with pytest.raises(ValueError, match="exceed"):
        model(torch.zeros(1, 1000), torch.tensor([1200]))
    pt = Wav2Vec2ForPretraining(tiny(mask_prob=0.0))
    with pytest.raises(ValueError, match="needs masked frames"):
        pt(torch.zeros(1, 4000))
    assert get_preset("base").receptive_field == 400


def test_batch_consistency_layer_norm_mode():
    model = Wav2Vec2Model(tiny()).eval()  # layer-norm extractor, pre-LN
    lens = [6400, 4321, 2000]
    xs = [wave(1, n, seed=i)[0] for i, n in enumerate(lens)]
    batch = torch.zeros(3, max(lens))
    for i, x in enumerate(xs):
        batch[i, : len(x)] = x
    with torch.no_grad():
        out = model(batch, torch.tensor(lens))
        for i, x in enumerate(xs):
            single = model(x[None])
            T = single.last_hidden_state.shape[1]
            assert int(out.out_lengths[i]) == T
            for a, b in zip(out.hidden_states, single.hidden_states):
                assert (a[i, :T] - b[0]).abs().max().item() < 1e-5
            assert (out.last_hidden_state[i, :T] - single.last_hidden_state[0]).abs().max().item() < 1e-5


def test_hidden_states_only_when_asked_and_ctc_inference_frees_each_layer():
    model = Wav2Vec2Model(tiny(encoder_layers=3)).eval()
    x, lens = wave(), torch.tensor([6400, 5000])
    with torch.no_grad():
        full, lean = model(x, lens), model(x, lens, output_hidden_states=False)
    assert len(full.hidden_states) == 4 and lean.hidden_states == []
    assert torch.equal(full.last_hidden_state, lean.last_hidden_state)
    # CTC inference: when layer 2 starts, layer 0's output is gone (the backbone keeps no hidden states)
    import weakref

    ctc = Wav2Vec2ForCTC(tiny(encoder_layers=3), vocab_size=12).eval()
    seen = {}
    layers = ctc.wav2vec2.encoder.layers
    layers[0].register_forward_hook(lambda m, a, out: seen.update(out0=weakref.ref(out)))
    layers[2].register_forward_pre_hook(lambda m, a: seen.update(alive=seen["out0"]() is not None))
    with torch.no_grad():
        ctc(x, lens)
    assert seen["alive"] is False
    with torch.no_grad():  # the same check sees it alive when the hidden states are kept
        ctc.wav2vec2(x, lens)
    assert seen["alive"] is True


def test_group_norm_mode_depends_on_padding_documented():
    # Group-norm mode normalises conv block 0 over time including the zero padding (fairseq and HF do
    # the same; BASE models are meant to run unpadded). A padded row therefore differs from the row alone.
    model = Wav2Vec2Model(tiny(extractor_mode="default", conv_bias=False)).eval()
    x = wave(1, 3000)[0]
    batch = torch.zeros(1, 6400)
    batch[0, :3000] = x
    with torch.no_grad():
        a = model(batch, torch.tensor([3000])).last_hidden_state
        b = model(x[None]).last_hidden_state
    T = b.shape[1]
    assert (a[0, :T] - b[0]).abs().max().item() > 1e-3


def test_ctc_from_pretraining_blank_padding_and_freezing():
    pt = Wav2Vec2ForPretraining(tiny())
    ctc = Wav2Vec2ForCTC.from_pretraining(pt, 10, freeze_finetune_updates=5, mask_prob=0.65, mask_length=3)
    assert ctc.cfg.mask_prob == 0.65
    for (n, a), (_, b) in zip(pt.wav2vec2.state_dict().items(), ctc.wav2vec2.state_dict().items()):
        assert torch.equal(a, b), n
    ctc.freeze_feature_encoder()
    ctc.train()
    x = wave()
    lens = torch.tensor([6400, 3000])
    out = ctc(x, lens, generator=torch.Generator().manual_seed(0))
    logits, olen = out.logits, out.out_lengths
    assert logits.shape == (2, int(olen[0]), 10)
    pad = logits[1, int(olen[1]):]
    assert torch.all(pad[:, 0] == 0) and torch.all(torch.isinf(pad[:, 1:]))
    logits.log_softmax(-1)[torch.isfinite(logits)].sum().backward()
    assert ctc.head.weight.grad is not None
    assert all(p.grad is None for p in ctc.wav2vec2.parameters())  # frozen for the first 5 updates
    ctc.zero_grad()
    ctc.set_num_updates(5)
    logits = ctc(x, lens, generator=torch.Generator().manual_seed(0)).logits
    logits[torch.isfinite(logits)].sum().backward()
    assert ctc.wav2vec2.encoder.layers[0].fc1.weight.grad is not None
    assert ctc.wav2vec2.feature_encoder.blocks[0].conv.weight.grad is None  # conv stays frozen


def test_presets_build_and_param_counts():
    with torch.device("meta"):
        counts = {n: sum(p.numel() for p in Wav2Vec2ForPretraining(get_preset(n)).parameters())
                  for n in preset_names()}
    # fairseq / HF: BASE 95.0M, LARGE 317.4M (pretraining model incl. quantizer)
    assert abs(counts["base"] - 95.04e6) < 0.1e6, counts["base"]
    assert abs(counts["large"] - 317.4e6) < 0.5e6, counts["large"]
    assert counts["xls_r_300m"] == counts["large"] and counts["tiny"] < 1e6
    assert 0.9e9 < counts["xls_r_1b"] < 1.1e9 and 2.0e9 < counts["xls_r_2b"] < 2.3e9


@pytest.mark.parametrize("padded", [False, True])
def test_pretraining_step_reads_no_device_value(padded):
    """The forward + backward of a pretraining step never reads a value of the model's device (issue 15): on
    the ``meta`` device tensors have shapes but no values, so any read (``.item()``, ``bool(t)``, ``nonzero``,
    a data-dependent shape) raises. With host lengths the lengths checks, padding, masks, negatives and the
    masked-frame gather are decided on the host and copied over, so the whole step runs on ``meta``; on a GPU
    the same step queues its kernels without waiting for any."""
    cfg = tiny(encoder_layerdrop=0.1)
    model = Wav2Vec2ForPretraining(cfg).train()
    model.set_num_updates(3)
    lens = torch.tensor([6400, 5000 if padded else 6400])
    cpu_out = model(wave(), lens)  # the same step with values: the shapes to compare with
    model = model.to("meta")
    x = torch.empty(2, 6400, device="meta")
    out = model(x, lens)
    assert out.loss.device.type == "meta" and out.logits.shape[1] == cpu_out.logits.shape[1]
    assert out.mask_indices.device.type == "meta" and out.backbone.host_mask.device.type == "cpu"
    assert (out.backbone.padding_mask is not None) == padded
    out.loss.backward()
    assert all(p.grad is not None and p.grad.device.type == "meta" for p in model.parameters() if p.requires_grad)


def test_a_device_read_fails_on_meta():
    """The premise of the test above: reading a meta tensor's value raises."""
    t = torch.zeros(3, device="meta")
    for read in (lambda: t.sum().item(), lambda: bool(t.any()), lambda: t.nonzero()):
        with pytest.raises((NotImplementedError, RuntimeError)):
            read()


def test_ctc_loss_reads_targets_only_up_to_their_lengths():
    """The CTC loss takes padded (B, S) targets and host lengths (no gather, no device read): the same value as
    torch's loss on the concatenated targets, whatever the padding holds; bad lengths are refused."""
    torch.manual_seed(0)
    ctc = Wav2Vec2ForCTC(tiny(), vocab_size=12).eval()
    x, lens = wave(), torch.tensor([6400, 5200])
    labels = torch.tensor([[4, 5, 6, 7, 8], [9, 4, 4, 0, 0]])
    tlen = torch.tensor([5, 3])
    out = ctc(x, lens, labels=labels, label_lengths=tlen)
    flat = torch.cat([labels[0, :5], labels[1, :3]])
    ref = torch.nn.functional.ctc_loss(out.log_probs.transpose(0, 1), flat, out.out_lengths, tlen, blank=0,
                                       reduction="sum", zero_infinity=True)
    assert out.loss.item() == pytest.approx(ref.item(), rel=1e-6)
    other = labels.clone()
    other[1, 3:] = 11  # different padding, same loss
    assert ctc(x, lens, labels=other, label_lengths=tlen).loss.item() == pytest.approx(out.loss.item(), rel=1e-6)
    with pytest.raises(ValueError, match="label_lengths"):
        ctc(x, lens, labels=labels, label_lengths=torch.tensor([6, 3]))
