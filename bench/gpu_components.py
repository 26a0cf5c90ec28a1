"""Where one pretraining update's GPU time goes, and what the suspects' alternatives cost (issue 15, target 6).

    python3 bench/gpu_components.py --device cuda --preset base --batch 8 --seconds 15 --dtype bf16 \
        --json OUT/components.json --profile OUT/profile.txt
    python bench/gpu_components.py --device cpu --preset tiny --batch 1 --seconds 2     # checks the script

Each row is forward + backward of one part of our BASE pretraining model on the bench's batch (autocast as
``--dtype``), the median of ``--reps`` timed runs after two warm-ups, the device synchronised around each:
1. the whole update without the optimizer (``step``, as the model runs by default), with ``cudnn.benchmark`` on (``step_bench``) and with the Transformer's pad-to-a-multiple switched
   off (``step_nopad``: with no padded frame the attention needs no mask; results do not depend on the multiple);
2. the conv feature encoder as it is (``fe``), with cudnn.benchmark, and time-major as plain GEMMs
   (``fe_gemm``);
3. the positional conv (grouped, kernel 128) through cuDNN (``pc_conv``, the default), with cudnn.benchmark,
   and through the FFT (``pc_fft``: ``distributed.pos_conv_impl=fft``);
4. one Transformer layer with the key-padding mask (``layer_mask``) and without (``layer_flash``), times the
   layer count;
5. the whole update with the FFT positional conv, then also with ``fe_gemm``, then that without the padding.
Measured on one H200 (2026-12-04, BASE 8 x 15 s bf16; bench/results/h200_2026-12-04b/): the update 57.8 ms,
of which the cuDNN positional conv 16.4 ms and the conv encoder 13.7 ms; time-major channels-last conv2d
(16.2 ms), unfold + matmul (20.8 ms), a bf16 group norm, unfold + matmul for the positional conv (23.8 ms) and
cudnn.benchmark (no change) were slower or equal and are gone from this script.
``--profile FILE``: torch.profiler's table of one ``step`` (kernels by self device time) goes to FILE; its top
rows are printed. Alternatives compute the same function (checked against the module, max abs difference
printed), so a faster one can replace the module without changing results beyond rounding.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import statistics
import time

import torch
import torch.nn.functional as F


def timer(device: str):
    def sync():
        if device == "cuda":
            torch.cuda.synchronize()

    def run(fn, reps: int) -> float:
        for _ in range(2):
            fn()
        sync()
        times = []
        for _ in range(reps):
            t0 = time.perf_counter()
            fn()
            sync()
            times.append(time.perf_counter() - t0)
        return statistics.median(times) * 1000

    return run


@contextlib.contextmanager
def cudnn_benchmark(on: bool):
    old = torch.backends.cudnn.benchmark
    torch.backends.cudnn.benchmark = on
    try:
        yield
    finally:
        torch.backends.cudnn.benchmark = old


def norm(block, x: torch.Tensor, low: bool) -> torch.Tensor:
    """A conv block's norm on time-major x (B, T, C): group norm with one group per channel (each channel over
    time) or layer norm over channels; fp32 unless ``low``."""
    n = block.norm
    if n is None:
        return x
    xf = x if low else x.float()
    if isinstance(n, torch.nn.GroupNorm):
        var, mean = torch.var_mean(xf, dim=1, keepdim=True, correction=0)
        xf = (xf - mean) * torch.rsqrt(var + n.eps) * n.weight + n.bias
    else:
        xf = F.layer_norm(xf, n.normalized_shape, n.weight, n.bias, n.eps)
    return xf.to(x.dtype)


def fe_gemm(fe, wave: torch.Tensor) -> torch.Tensor:
    """The conv feature encoder's function time-major, (B, T, C), as plain GEMMs with no layout copies: block 0
    (C_in = 1) as a GEMM over the unfolded waveform (K = k); a block of kernel k and stride s as
    ceil(k / s) GEMMs over the input viewed as frames of s steps (B*T/s, s*C), each tap group's output shifted
    by its frame offset and summed. Returns (B, C, T) like the module (a transposed view)."""
    blocks = list(fe.blocks)
    b0 = blocks[0]
    x = wave.unfold(1, b0.kernel, b0.stride).contiguous()  # (B, T0, k): the waveform needs no gradient
    x = torch.matmul(x, b0.conv.weight.view(b0.conv.out_channels, b0.kernel).t())  # (B, T0, C)
    if b0.conv.bias is not None:
        x = x + b0.conv.bias
    x = F.gelu(norm(b0, x, False))
    for b in blocks[1:]:
        k, st = b.kernel, b.stride
        B, T, C = x.shape
        t_out = (T - k) // st + 1
        A = -(-k // st)  # tap groups
        rows = t_out + A - 1
        x = x[:, : rows * st] if T >= rows * st else F.pad(x, (0, 0, 0, rows * st - T))
        xs = x.reshape(B * rows, st * C)  # frame r = steps r*st .. r*st+st-1
        w = b.conv.weight  # (C_out, C_in, k)
        y = None
        for a in range(A):
            taps = min(st, k - a * st)
            wa = w[:, :, a * st: a * st + taps].permute(0, 2, 1).reshape(w.shape[0], taps * C)  # (C_out, taps*C)
            ya = torch.matmul(xs[:, : taps * C], wa.t()).view(B, rows, -1)[:, a: a + t_out]
            y = ya if y is None else y + ya
        if b.conv.bias is not None:
            y = y + b.conv.bias
        x = F.gelu(norm(b, y, False))
    return x.transpose(1, 2)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--preset", default="base")
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--seconds", type=float, default=15.0)
    ap.add_argument("--dtype", choices=["fp32", "bf16"], default="bf16")
    ap.add_argument("--reps", type=int, default=10)
    ap.add_argument("--json")
    ap.add_argument("--profile")
    args = ap.parse_args()

    from speech_ssl.models import Wav2Vec2ForPretraining, get_preset
    from speech_ssl.models.masking import compute_mask_indices, sample_negatives

    dev = args.device
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    cfg = get_preset(args.preset)
    torch.manual_seed(0)
    model = Wav2Vec2ForPretraining(cfg).to(dev).train()
    bb = model.wav2vec2
    B, L = args.batch, int(args.seconds * 16000)
    wave = torch.randn(B, L, device=dev) * 0.1
    T = cfg.output_length(L)
    g = torch.Generator().manual_seed(2)
    mask = compute_mask_indices((B, T), None, cfg.mask_prob, cfg.mask_length, min_masks=2, generator=g)
    neg = sample_negatives(mask, cfg.num_negatives, generator=g)
    mask, neg = mask.to(dev), neg.to(dev)
    amp = dict(device_type=dev, dtype=torch.bfloat16, enabled=args.dtype == "bf16")
    run = timer(dev)
    rows: list[dict] = []

    def add(part: str, variant: str, ms: float, diff: float | None = None) -> None:
        rows.append({"part": part, "variant": variant, "ms": round(ms, 3),
                     **({} if diff is None else {"max_abs_diff": diff})})
        print(f"{part:10s} {variant:24s} {ms:9.3f} ms" + ("" if diff is None else f"   max|diff| {diff:.2e}"),
              flush=True)

    def fwd_bwd(f, *inputs):
        def go():
            model.zero_grad(set_to_none=True)
            with torch.autocast(**amp):
                y = f(*inputs)
            y.float().square().mean().backward()
        return go

    # 1. the whole update's forward + backward
    def step():
        model.zero_grad(set_to_none=True)
        with torch.autocast(**amp):
            out = model(wave, mask_indices=mask, negative_indices=neg)
        out.loss.backward()

    add("step", "as_is", run(step, args.reps))
    with cudnn_benchmark(True):
        add("step", "step_bench", run(step, args.reps))
    multiple = bb.encoder.multiple
    bb.encoder.multiple = 1
    add("step", "step_nopad", run(step, args.reps))
    bb.encoder.multiple = multiple

    # 2. the conv feature encoder
    fe = bb.feature_encoder
    with torch.no_grad(), torch.autocast(**amp):
        d = (fe_gemm(fe, wave).float() - fe(wave).float()).abs().max().item()
    add("fe", "as_is", run(fwd_bwd(fe, wave), args.reps))
    with cudnn_benchmark(True):
        add("fe", "fe_bench", run(fwd_bwd(fe, wave), args.reps))
    add("fe", "fe_gemm", run(fwd_bwd(lambda w: fe_gemm(fe, w), wave), args.reps), d)

    # 3. the positional conv: the cuDNN convolution (the default) against the FFT
    D = cfg.encoder_embed_dim
    x = torch.randn(B, T, D, device=dev, requires_grad=True)
    pc = bb.encoder.pos_conv
    with torch.no_grad(), torch.autocast(**amp):
        pc.impl = "conv"
        ref = pc(x).float()
        pc.impl = "fft"
        d = (pc(x).float() - ref).abs().max().item()
    pc.impl = "conv"
    add("pos_conv", "pc_conv", run(fwd_bwd(pc, x), args.reps))
    with cudnn_benchmark(True):
        add("pos_conv", "pc_conv_bench", run(fwd_bwd(pc, x), args.reps))
    pc.impl = "fft"
    add("pos_conv", "pc_fft", run(fwd_bwd(pc, x), args.reps), d)
    pc.impl = "conv"

    # 4. Transformer layers, with and without the key-padding mask (x12 for the stack)
    layer = bb.encoder.layers[0]
    n = len(bb.encoder.layers)
    Tp = T + (-T) % multiple
    xl = torch.randn(B, Tp, D, device=dev, requires_grad=True)
    kpm = torch.zeros(B, Tp, dtype=torch.bool, device=dev)
    kpm[:, T:] = True
    add("layers", f"layer_mask_x{n}", n * run(fwd_bwd(lambda t: layer(t, kpm), xl), args.reps))
    add("layers", f"layer_flash_x{n}", n * run(fwd_bwd(lambda t: layer(t, None), xl), args.reps))

    # 5. the whole update with the alternatives swapped in (an instance attribute shadows the module's forward)
    pc.impl = "fft"
    add("step", "step_pc_fft", run(step, args.reps))
    fe.forward = lambda w: fe_gemm(fe, w)
    add("step", "step_pc_fft_fe_gemm", run(step, args.reps))
    bb.encoder.multiple = 1
    add("step", "step_pc_fft_fe_gemm_nopad", run(step, args.reps))
    del fe.forward
    bb.encoder.multiple = multiple
    pc.impl = "conv"

    if args.profile:
        from torch.profiler import ProfilerActivity, profile

        acts = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if dev == "cuda" else [])
        step()
        with profile(activities=acts) as prof:
            step()
            if dev == "cuda":
                torch.cuda.synchronize()
        key = "self_cuda_time_total" if dev == "cuda" else "self_cpu_time_total"
        table = prof.key_averages().table(sort_by=key, row_limit=40, max_name_column_width=70)
        with open(args.profile, "w") as f:
            f.write(table)
        print("\n".join(table.splitlines()[:28]))
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"preset": args.preset, "batch": B, "seconds": args.seconds, "dtype": args.dtype,
                       "device": dev, "torch": torch.__version__, "rows": rows}, f, indent=1)


if __name__ == "__main__":
    main()
