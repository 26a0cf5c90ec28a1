"""Pretraining-step timing for a preset (forward + backward), optionally against HF transformers.

    OMP_NUM_THREADS=1 python bench/bench_model.py --preset base --batch 1 --seconds 5 --threads 1 --hf
    python bench/bench_model.py --preset base --batch 8 --seconds 15 --device cuda --dtype bf16

Prints one line per implementation: median step time over --steps steps after one warm-up, peak memory
(CUDA) and the thread count (timings on CPU depend heavily on it).
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch


def sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def time_steps(step, steps: int, device: str) -> list[float]:
    step()
    sync(device)
    out = []
    for _ in range(steps):
        t0 = time.perf_counter()
        step()
        sync(device)
        out.append(time.perf_counter() - t0)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", default="base")
    ap.add_argument("--layers", type=int, default=None, help="override encoder_layers")
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--seconds", type=float, default=5.0)
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--dtype", choices=["fp32", "bf16"], default="fp32")
    ap.add_argument("--hf", action="store_true", help="also time HF transformers Wav2Vec2ForPreTraining")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    from speech_ssl.interop.hf import config_to_hf
    from speech_ssl.models import Wav2Vec2ForPretraining, get_preset
    from speech_ssl.models.masking import compute_mask_indices, sample_negatives

    over = {"encoder_layers": args.layers} if args.layers else {}
    cfg = get_preset(args.preset, **over)
    dev = args.device
    L = int(args.seconds * 16000)
    x = torch.randn(args.batch, L, device=dev) * 0.1
    model = Wav2Vec2ForPretraining(cfg).to(dev).train()
    T = int(model.wav2vec2.output_lengths(torch.tensor([L]))[0])
    g = torch.Generator().manual_seed(0)
    mask = compute_mask_indices((args.batch, T), None, cfg.mask_prob, cfg.mask_length, min_masks=2, generator=g)
    neg = sample_negatives(mask, cfg.num_negatives, generator=g)
    mask, neg = mask.to(dev), neg.to(dev)
    amp = torch.autocast(dev.split(":")[0], dtype=torch.bfloat16, enabled=args.dtype == "bf16")
    n_params = sum(p.numel() for p in model.parameters())
    head = (f"preset={args.preset} layers={cfg.encoder_layers} params={n_params / 1e6:.1f}M batch={args.batch}x"
            f"{args.seconds:g}s device={dev} dtype={args.dtype} threads={torch.get_num_threads()}")
    print(head)

    def ours_step():
        model.zero_grad(set_to_none=True)
        with amp:
            out = model(x, mask_indices=mask, negative_indices=neg)
        out.loss.backward()

    def report(name, times):
        mem = ""
        if dev.startswith("cuda"):
            mem = f" peak_mem={torch.cuda.max_memory_allocated() / 2**30:.2f}GiB"
            torch.cuda.reset_peak_memory_stats()
        print(f"  {name:10s} median {statistics.median(times):.3f}s/step (min {min(times):.3f}){mem}")

    report("speech_ssl", time_steps(ours_step, args.steps, dev))
    if args.hf:
        import transformers

        hcfg = transformers.Wav2Vec2Config(**config_to_hf(cfg))
        hf = transformers.Wav2Vec2ForPreTraining(hcfg).to(dev).train()

        def hf_step():
            hf.zero_grad(set_to_none=True)
            with amp:
                out = hf(x, mask_time_indices=mask, sampled_negative_indices=neg)
            out.loss.backward()

        report("hf", time_steps(hf_step, args.steps, dev))


if __name__ == "__main__":
    main()
