"""Parity with HF transformers Wav2Vec2 on random weights, and HF folders in/out."""

from __future__ import annotations

import json

import pytest
import torch

from speech_ssl.errors import DataError
from speech_ssl.interop.hf import config_from_hf, config_to_hf, key_table, load_hf, save_hf
from speech_ssl.models import Wav2Vec2ForCTC, Wav2Vec2ForPretraining, get_preset
from speech_ssl.models.masking import compute_mask_indices, sample_negatives

transformers = pytest.importorskip("transformers")

TOL = 1e-4
L_MAX = 8000
LENS = torch.tensor([8000, 5600])


def hf_config(stable: bool, size: str, **kw):
    if size == "base":  # BASE dimensions (conv 512, D 768, FFN 3072, 12 heads, pos conv 128/16), 2 layers
        c = dict(hidden_size=768, num_hidden_layers=2, num_attention_heads=12, intermediate_size=3072,
                 num_negatives=20)
    else:
        c = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
                 conv_dim=(16,) * 7, num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=2,
                 num_codevectors_per_group=8, codevector_dim=16, proj_codevector_dim=16, num_negatives=5)
    c.update(do_stable_layer_norm=stable, feat_extract_norm="layer" if stable else "group", conv_bias=stable,
             mask_time_prob=0.5, vocab_size=12)
    c.update(kw)
    return transformers.Wav2Vec2Config(**c)


def randomize(model):
    """HF inits norms to 1/0 and biases to 0: perturb them so the comparison sees every parameter."""
    with torch.no_grad():
        for n, p in model.named_parameters():
            if "layer_norm" in n or n.endswith("bias"):
                p.add_(torch.randn_like(p) * 0.1)
    return model


def inputs():
    g = torch.Generator().manual_seed(123)
    x = torch.randn(2, L_MAX, generator=g) * 0.3
    x[1, LENS[1]:] = 0
    am = (torch.arange(L_MAX)[None] < LENS[:, None]).long()
    return x, am


CASES = [("tiny", False), ("tiny", True), ("base", False), ("base", True)]


@pytest.fixture(scope="module", params=CASES, ids=[f"{s}-{'layer' if st else 'group'}" for s, st in CASES])
def pretrain_pair(request, tmp_path_factory):
    size, stable = request.param
    torch.manual_seed(1)
    hf = randomize(transformers.Wav2Vec2ForPreTraining(hf_config(stable, size))).eval()
    d = tmp_path_factory.mktemp("hf_pt")
    hf.save_pretrained(d)
    ours = load_hf(d).eval()
    assert isinstance(ours, Wav2Vec2ForPretraining)
    return hf, ours, d


def test_conv_features_and_hidden_states(pretrain_pair):
    hf, ours, _ = pretrain_pair
    x, am = inputs()
    with torch.no_grad():
        conv_diff = (hf.wav2vec2.feature_extractor(x) - ours.wav2vec2.feature_encoder(x)).abs().max().item()
        ho = hf.wav2vec2(x, attention_mask=am, output_hidden_states=True)
        oo = ours.wav2vec2(x, LENS)
    assert conv_diff <= TOL
    valid = ~oo.padding_mask
    assert len(ho.hidden_states) == len(oo.hidden_states) == hf.config.num_hidden_layers + 1
    for n, (a, b) in enumerate(zip(ho.hidden_states, oo.hidden_states)):
        assert (a - b)[valid].abs().max().item() <= TOL, f"hidden_states[{n}]"
    assert (ho.last_hidden_state - oo.last_hidden_state)[valid].abs().max().item() <= TOL
    assert (ho.extract_features - oo.extract_features)[valid].abs().max().item() <= TOL


def test_pretraining_losses_given_masks_and_negatives(pretrain_pair):
    hf, ours, _ = pretrain_pair
    x, am = inputs()
    T = int(ours.wav2vec2.output_lengths(torch.tensor([L_MAX]))[0])
    pm = torch.arange(T)[None] >= ours.wav2vec2.output_lengths(LENS)[:, None]
    g = torch.Generator().manual_seed(7)
    mask = compute_mask_indices((2, T), pm, 0.5, 3, min_masks=2, generator=g)
    neg = sample_negatives(mask, hf.config.num_negatives, generator=g)
    with torch.no_grad():
        ho = hf(x, attention_mask=am, mask_time_indices=mask, sampled_negative_indices=neg)
        oo = ours(x, LENS, mask_indices=mask, negative_indices=neg)
    n = int(mask.sum())
    assert oo.sample_size == n
    # HF returns the projected context / quantized vectors; rebuild its logits for masked frames.
    pos = ho.projected_quantized_states[mask]
    negs = ho.projected_quantized_states.reshape(-1, pos.shape[-1])[neg[mask]]
    tgt = torch.cat([pos[:, None], negs], 1)
    hf_logits = torch.cosine_similarity(ho.projected_states[mask][:, None], tgt, dim=-1) / 0.1
    hf_logits[:, 1:][(negs == pos[:, None]).all(-1)] = float("-inf")
    finite = torch.isfinite(hf_logits)
    assert torch.equal(finite, torch.isfinite(oo.logits))
    assert (hf_logits[finite] - oo.logits[finite]).abs().max().item() <= TOL
    assert abs(ho.contrastive_loss.item() - oo.logs["contrastive_loss"]) <= TOL * max(1.0, n)
    # In eval mode HF's perplexity is computed on hard codes (our code_perplexity); its diversity loss
    # is (GV - ppl) / GV * n.
    GV = hf.config.num_codevectors_per_group * hf.config.num_codevector_groups
    assert abs(ho.codevector_perplexity.item() - oo.logs["code_perplexity"]) <= TOL
    assert abs(ho.diversity_loss.item() - (GV - oo.logs["code_perplexity"]) / GV * n) <= TOL * n


def test_export_back_to_hf_and_reload(pretrain_pair, tmp_path):
    hf, ours, _ = pretrain_pair
    save_hf(ours, tmp_path)
    hf2, info = transformers.Wav2Vec2ForPreTraining.from_pretrained(tmp_path, output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"] and not info["mismatched_keys"]
    hf2.eval()
    x, am = inputs()
    with torch.no_grad():
        a = hf.wav2vec2(x, attention_mask=am, output_hidden_states=True)
        b = hf2.wav2vec2(x, attention_mask=am, output_hidden_states=True)
    for u, v in zip(a.hidden_states, b.hidden_states):
        assert torch.equal(u, v)
    # and back again: lossless config round trip
    again = load_hf(tmp_path)
    assert again.cfg == ours.cfg


@pytest.mark.parametrize("stable", [False, True])
def test_ctc_parity_and_round_trip(stable, tmp_path):
    torch.manual_seed(2)
    hf = randomize(transformers.Wav2Vec2ForCTC(hf_config(stable, "tiny"))).eval()
    hf.save_pretrained(tmp_path / "hf")
    vocab = {"<pad>": 0, "<s>": 1, "</s>": 2, "<unk>": 3, "|": 4, **{c: 5 + i for i, c in enumerate("ABCDEFG")}}
    (tmp_path / "hf" / "vocab.json").write_text(json.dumps(vocab))
    ours = load_hf(tmp_path / "hf").eval()
    assert isinstance(ours, Wav2Vec2ForCTC)
    assert ours.vocab[:5] == ["<s>", "<pad>", "</s>", "<unk>", "|"]  # blank row 0 is fairseq's <s>
    x, am = inputs()
    with torch.no_grad():
        hl = hf(x, attention_mask=am).logits
        o = ours(x, LENS)
        ol, olen = o.logits, o.out_lengths
    valid = torch.arange(ol.shape[1])[None] < olen[:, None]
    assert (hl - ol)[valid].abs().max().item() <= TOL
    # padded frames are forced to blank
    pad_rows = ol[~valid]
    assert pad_rows.numel() and torch.all(pad_rows[:, 0] == 0) and torch.all(torch.isinf(pad_rows[:, 1:]))
    save_hf(ours, tmp_path / "out")
    assert json.loads((tmp_path / "out" / "vocab.json").read_text()) == vocab
    hf2 = transformers.Wav2Vec2ForCTC.from_pretrained(tmp_path / "out").eval()
    with torch.no_grad():
        assert torch.equal(hf2(x, attention_mask=am).logits, hl)


@pytest.mark.parametrize("stable", [False, True])
def test_ctc_bf16_autocast_on_cpu_is_as_accurate_as_hf(stable, tmp_path):
    """Under CPU bf16 autocast (``speech-ssl decode --precision bf16``) our logits are no further from the fp32
    logits than HF's own bf16 logits are; the conv extractor's norms read bf16 directly there."""
    torch.manual_seed(4)
    hf = randomize(transformers.Wav2Vec2ForCTC(hf_config(stable, "tiny"))).eval()
    hf.save_pretrained(tmp_path)
    ours = load_hf(tmp_path).eval()
    x, am = inputs()
    with torch.no_grad():
        ref = hf(x, attention_mask=am).logits
        with torch.autocast("cpu", dtype=torch.bfloat16):
            hl = hf(x, attention_mask=am).logits.float()
            o = ours(x, LENS)
    valid = torch.arange(ref.shape[1])[None] < o.out_lengths[:, None]
    err_hf = (hl - ref)[valid].abs().max().item()
    err_ours = (o.logits.float() - ref)[valid].abs().max().item()
    assert 0 < err_hf < 0.5 and err_ours <= 1.5 * err_hf, (err_ours, err_hf)


def test_weight_g_spelling_and_pad_token_permutation(tmp_path):
    torch.manual_seed(3)
    ours = Wav2Vec2ForCTC(get_preset("tiny"), 6, ["<s>", "<pad>", "</s>", "<unk>", "a", "b"]).eval()
    save_hf(ours, tmp_path / "g", weight_norm_keys="weight_g")
    from safetensors.torch import load_file, save_file

    sd = load_file(str(tmp_path / "g" / "model.safetensors"))
    assert "wav2vec2.encoder.pos_conv_embed.conv.weight_g" in sd
    back = load_hf(tmp_path / "g").eval()
    x = torch.randn(1, 3000)
    with torch.no_grad():
        ref = ours(x).logits
        assert torch.equal(back(x).logits, ref)
    # an HF model whose blank (pad_token_id) is row 2: rows are permuted so the blank becomes row 0
    cfg = json.loads((tmp_path / "g" / "config.json").read_text())
    cfg["pad_token_id"] = 2
    (tmp_path / "g" / "config.json").write_text(json.dumps(cfg))
    perm = [1, 2, 0, 3, 4, 5]  # HF row i holds our row perm[i]; our row 0 sits at HF row 2
    sd["lm_head.weight"] = sd["lm_head.weight"][perm]
    sd["lm_head.bias"] = sd["lm_head.bias"][perm]
    save_file(sd, str(tmp_path / "g" / "model.safetensors"), metadata={"format": "pt"})
    (tmp_path / "g" / "vocab.json").unlink()
    moved = load_hf(tmp_path / "g").eval()
    with torch.no_grad():
        out = moved(x).logits
    assert torch.equal(out[..., 0], ref[..., 0])


def test_key_table_errors_list_everything(tmp_path):
    ours = Wav2Vec2ForPretraining(get_preset("tiny"))
    save_hf(ours, tmp_path)
    from safetensors.torch import load_file, save_file

    sd = load_file(str(tmp_path / "model.safetensors"))
    del sd["wav2vec2.encoder.layers.1.feed_forward.output_dense.bias"]
    sd["wav2vec2.encoder.layers.7.bogus.weight"] = torch.zeros(3)
    sd["project_q.weight"] = torch.zeros(5, 5)
    save_file(sd, str(tmp_path / "model.safetensors"), metadata={"format": "pt"})
    with pytest.raises(DataError) as e:
        load_hf(tmp_path)
    msg = str(e.value)
    assert "1 missing" in msg and "output_dense.bias" in msg
    assert "1 unexpected" in msg and "bogus" in msg
    assert "1 shape mismatches" in msg and "project_q.weight" in msg
    assert str(tmp_path) in msg


def test_config_mapping_both_ways():
    for name in ("base", "large", "xls_r_1b", "tiny"):
        cfg = get_preset(name)
        d = config_to_hf(cfg)
        hf_cfg = transformers.Wav2Vec2Config(**d)  # HF accepts every field
        assert hf_cfg.do_stable_layer_norm == cfg.layer_norm_first
        assert config_from_hf(d) == cfg
        # without our embedded copy, HF's own fields still give the architecture
        d.pop("speech_ssl_config")
        c2 = config_from_hf(d)
        for f in ("encoder_layers", "encoder_embed_dim", "extractor_mode", "conv_feature_layers", "final_dim",
                  "latent_vars", "layer_norm_first", "conv_bias"):
            assert getattr(c2, f) == getattr(cfg, f), f
    assert len(key_table(get_preset("base"), "Wav2Vec2ForPretraining")) == len(
        Wav2Vec2ForPretraining(get_preset("tiny", encoder_layers=12, extractor_mode="default", conv_bias=False))
        .state_dict())
    with pytest.raises(DataError, match="model_type"):
        config_from_hf({"model_type": "hubert"}, "x/config.json")
