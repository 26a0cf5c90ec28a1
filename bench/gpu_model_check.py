"""One short GPU check of the model: CUDA forward/backward (fp32, bf16 autocast, CPU generator driving
CUDA draws), HF parity on the GPU (also with the FFT positional conv), and a BASE pretraining-step timing
against HF.

    PYTHONPATH=. python3 bench/gpu_model_check.py
"""

from __future__ import annotations

import math
import statistics
import tempfile
import time

import torch


def main() -> None:
    import os

    dry = os.environ.get("DRY") == "1"  # a CPU dry run with small sizes, to check the script itself
    dev = "cpu" if dry else "cuda"
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    if not dry:
        print(torch.cuda.get_device_name(), torch.__version__)
    from speech_ssl.interop.hf import config_to_hf, load_hf
    from speech_ssl.models import Wav2Vec2ForCTC, Wav2Vec2ForPretraining, get_preset
    from speech_ssl.models.masking import compute_mask_indices, sample_negatives

    # 1. training steps on CUDA with a CPU generator, fp32 and bf16
    cfg = get_preset("base", encoder_layers=1) if dry else get_preset("base")
    model = Wav2Vec2ForPretraining(cfg).to(dev).train()
    x = torch.randn(4, 80000, device=dev) * 0.1
    lens = torch.tensor([80000, 70000, 60000, 50000], device=dev)
    for amp in (False, True):
        g = torch.Generator().manual_seed(0)
        model.zero_grad()
        with torch.autocast(dev, dtype=torch.bfloat16, enabled=amp):
            out = model(x, lens, generator=g)
        out.loss.backward()
        ok = all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters() if p.requires_grad)
        print(f"train step amp={amp}: loss_bits={out.logs['loss_bits']:.3f} acc={out.logs['accuracy']:.3f} "
              f"logits {out.logits.dtype} grads_ok={ok} finite={math.isfinite(out.loss.item())}")
    ctc = Wav2Vec2ForCTC.from_pretraining(model, 32, mask_channel_prob=0.25, mask_channel_length=64).to(dev).train()
    out = ctc(x, lens, generator=torch.Generator().manual_seed(1))
    logits, olen = out.logits, out.out_lengths
    logits.float().log_softmax(-1).clamp(min=-1e4).sum().backward()
    print("ctc step:", tuple(logits.shape), olen.tolist())

    # 2. HF parity on the GPU, BASE architecture (12 layers), fp32 without TF32
    import transformers

    torch.manual_seed(0)
    hcfg = transformers.Wav2Vec2Config(**config_to_hf(cfg))
    hf = transformers.Wav2Vec2ForPreTraining(hcfg).eval()
    d = tempfile.mkdtemp()
    hf.save_pretrained(d)
    ours = load_hf(d).to(dev).eval()
    hf = hf.to(dev)
    am = (torch.arange(80000, device=dev)[None] < lens[:, None]).long()
    with torch.no_grad():
        ho = hf.wav2vec2(x, attention_mask=am, output_hidden_states=True)
        oo = ours.wav2vec2(x, lens)
    valid = ~oo.padding_mask
    diffs = [(a - b)[valid].abs().max().item() for a, b in zip(ho.hidden_states, oo.hidden_states)]
    print(f"GPU parity base 12 layers: max |diff| over hidden_states = {max(diffs):.2e}")
    ours.wav2vec2.encoder.pos_conv.impl = "fft"  # distributed.pos_conv_impl=fft: the same function on the GPU
    with torch.no_grad():
        of = ours.wav2vec2(x, lens)
    diffs = [(a - b)[valid].abs().max().item() for a, b in zip(ho.hidden_states, of.hidden_states)]
    print(f"GPU parity base 12 layers, FFT positional conv: max |diff| over hidden_states = {max(diffs):.2e}")

    # 3. timing: BASE pretraining step, batch 8 x 15 s, bf16 autocast
    B, L = (1, 16000) if dry else (8, 240000)
    x = torch.randn(B, L, device=dev) * 0.1
    T = int(model.wav2vec2.output_lengths(torch.tensor([L]))[0])
    g = torch.Generator().manual_seed(0)
    mask = compute_mask_indices((B, T), None, 0.65, 10, min_masks=2, generator=g)
    neg = sample_negatives(mask, 100, generator=g)
    mask, neg = mask.to(dev), neg.to(dev)
    hf.train()

    def step(m, is_hf):
        m.zero_grad(set_to_none=True)
        with torch.autocast(dev, dtype=torch.bfloat16):
            out = m(x, mask_time_indices=mask, sampled_negative_indices=neg) if is_hf else \
                m(x, mask_indices=mask, negative_indices=neg)
        out.loss.backward()

    sync = (lambda: None) if dry else torch.cuda.synchronize
    for name, m, is_hf in (("speech_ssl", model, False), ("hf", hf, True)):
        if not dry:
            torch.cuda.reset_peak_memory_stats()
        for _ in range(2):
            step(m, is_hf)
        sync()
        ts = []
        for _ in range(1 if dry else 5):
            t0 = time.perf_counter()
            step(m, is_hf)
            sync()
            ts.append(time.perf_counter() - t0)
        peak = 0.0 if dry else torch.cuda.max_memory_allocated() / 2**30
        print(f"BASE step {B}x{L / 16000:g}s bf16 {name:10s}: median {statistics.median(ts) * 1000:.0f} ms, "
              f"peak {peak:.1f} GiB")


if __name__ == "__main__":
    main()
