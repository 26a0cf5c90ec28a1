"""Side by side with HF transformers: one pretraining update (forward + backward + AdamW), same weights.
(``--task ctc-infer``: CTC inference, the model's forward to the logits.)

    python bench/bench_vs_hf.py --preset base --shapes 1x5,2x5,4x5 --pairs 6 --threads 2 [--memory]
    python bench/bench_vs_hf.py --preset tiny --shapes 1x5 --pairs 10 --threads 2 --dtype bf16
    python bench/bench_vs_hf.py --preset base --shapes 1x5,4x5 --pairs 6 --threads 2 --flops   # MFU, ceiling
    python bench/bench_vs_hf.py --device cuda --preset base --shapes 8x15 --dtype bf16 --flops --memory \
        --peak-tflops 989 [--compile]                                                    # one GPU (H200 bf16)
    python bench/bench_vs_hf.py --task ctc-infer --preset base --shapes 1x10,4x10 --pairs 6 --threads 2 \
        [--dtype bf16]                                                                   # decoding: RTF

For each shape (batch x seconds):
1. HF's ``Wav2Vec2ForPreTraining`` is built from our preset's config (``config_to_hf``) with a fixed seed and
   saved; ours is loaded from that folder (``load_hf``: the exact key table), so both hold the same weights.
2. One waveform batch, one set of mask indices and one set of negatives (ours, sampled once) feed both.
3. Each side gets its own AdamW (``--optimizer``, default ``fused`` for both: the comparison is of the
   models; ``--hf-optimizer for_loop`` times HF the way torch's CPU default runs it).
4. After one warm-up update each, ``--pairs`` pairs of updates alternate the order (ours-HF, HF-ours, ...),
   and the figure is the *paired* ratio HF time / ours per pair: median, min and max. Paired ratios cancel
   most of the drift of a shared machine (other jobs, frequency); the raw medians are printed too.
5. ``--memory``: the peak resident memory of one process per side (the same imports, model, batch and three
   updates; the process's VmHWM, counted from after the models are built: the model resident plus what the
   updates allocate; until 2026-12-05 building counted too, which our side paid twice), run one after the other,
   so neither side's allocations count against the other.

6. ``--flops``: each side's model FLOPs for one update (forward + backward of the matmuls, convolutions and
   attention, counted by ``torch.utils.flop_counter``; AdamW and element-wise work not counted) and this
   machine's fp32 GEMM throughput at the same thread count (the best of a few square ``torch.mm``), so each
   time reads as model FLOP utilisation (MFU), and ``ceiling`` = HF's time / (FLOPs / GEMM throughput): the
   most any implementation could beat HF by on this machine if every FLOP ran at matmul speed and nothing
   else took time. On CUDA the GEMM is 8192^2 in the run's dtype; ``--peak-tflops`` (the spec sheet's dense
   figure) replaces the measured one, so MFU reads as the published definition.
7. ``--device cuda``: every update ends with a ``torch.cuda.synchronize()`` inside the timing, and memory is
   ``torch.cuda.max_memory_allocated`` of one process per side. ``--compile``: our model's conv encoder,
   positional conv and layers run under ``torch.compile`` as the trainer's ``distributed.compile`` does it
   (compiled in the warm-up update); HF's stays eager. ``--pos-conv-impl fft``: our positional conv through the
   FFT (``distributed.pos_conv_impl``); FLOPs are counted on the convolution either way.

8. ``--task ctc-infer``: HF's ``Wav2Vec2ForCTC`` (32 outputs, a letter vocabulary's size) and ours on the same
   weights, one forward to the logits under ``torch.no_grad`` (the model part of ``speech-ssl decode``;
   bf16 autocast with ``--dtype bf16``; ours with its matmul weights stored in bf16 once, as ``speech-ssl
   decode`` does: ``precision.store_weights_in``, bitwise the same logits), no masks, no optimizer; the rows
   add each side's real-time factor (seconds per audio-second) and the largest difference of the two sides'
   logits (a parity check).

The thread count and the 1-minute load are printed with the table: on a shared machine they decide the times.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

import torch


def parse_shape(s: str) -> tuple[int, float]:
    b, sec = s.lower().split("x")
    return int(b), float(sec)


CTC_VOCAB = 32  # --task ctc-infer: the output layer's size (a letter vocabulary's)


def twins(preset: str, which: str, task: str, compile: bool = False, pos_conv_impl: str = "conv"):
    """(our preset's config, HF model or None, our model or None): HF's ``Wav2Vec2ForPreTraining`` (``task``
    ``pretrain``) or ``Wav2Vec2ForCTC`` (``ctc-infer``) built from the preset with a fixed seed, and ours loaded
    from its saved folder through the exact key table (``load_hf``), so both hold the same weights. ``which``
    ``ours`` / ``hf`` keeps only that side (a memory worker holds one model)."""
    import transformers

    from speech_ssl.interop.hf import config_to_hf, load_hf
    from speech_ssl.models import get_preset

    transformers.utils.logging.disable_progress_bar()
    cfg = get_preset(preset)
    torch.manual_seed(0)
    if task == "ctc-infer":
        hf = transformers.Wav2Vec2ForCTC(transformers.Wav2Vec2Config(
            **config_to_hf(cfg, "Wav2Vec2ForCTC", vocab_size=CTC_VOCAB)))
    else:
        hf = transformers.Wav2Vec2ForPreTraining(transformers.Wav2Vec2Config(**config_to_hf(cfg)))
    ours = None
    if which != "hf":
        with tempfile.TemporaryDirectory(prefix="bench-vs-hf-") as d:
            hf.save_pretrained(d)
            if which == "ours":
                hf = None
            ours = load_hf(d)
    if ours is not None:  # as the trainer's distributed.pos_conv_impl does it
        from speech_ssl.train.distributed import set_pos_conv_impl

        set_pos_conv_impl(ours, pos_conv_impl)
    if compile and ours is not None:  # as the trainer's distributed.compile does it; HF stays eager
        from speech_ssl.train.distributed import compile_model

        compile_model(ours)
    return cfg, hf, ours


def waveforms(shape: tuple[int, float], device: str) -> torch.Tensor:
    """(B, L) the same noise-like waveforms for both sides."""
    B, sec = shape
    return (torch.randn(B, int(sec * 16000), generator=torch.Generator().manual_seed(1)) * 0.1).to(device)


def build(preset: str, shape: tuple[int, float], which: str, optimizer: str, hf_optimizer: str, dtype: str,
          device: str = "cpu", compile: bool = False, pos_conv_impl: str = "conv", task: str = "pretrain"):
    """{"ours"|"hf": step function}, the parameter count; both models hold the same weights and see the same
    inputs. ``pretrain``: one update; ``ctc-infer``: one inference forward (its ``.logits()`` reads the last
    output)."""
    from speech_ssl.models.feature_encoder import conv_output_length
    from speech_ssl.models.masking import compute_mask_indices, sample_negatives

    cfg, hf, ours = twins(preset, which, task, compile, pos_conv_impl)
    x = waveforms(shape, device)
    amp = dict(device_type=device, dtype=torch.bfloat16, enabled=dtype == "bf16")
    n_params = sum(p.numel() for p in (ours if ours is not None else hf).parameters())
    if task == "ctc-infer":
        if ours is not None and dtype == "bf16":  # as speech-ssl decode runs it
            from speech_ssl.precision import store_weights_in

            store_weights_in(ours, torch.bfloat16)
        return {k: infer(m.to(device).eval(), x, amp, device) for k, m in (("ours", ours), ("hf", hf))
                if m is not None}, n_params
    B, L = x.shape
    T = conv_output_length(L, cfg.conv_feature_layers)
    g = torch.Generator().manual_seed(2)
    mask = compute_mask_indices((B, T), None, cfg.mask_prob, cfg.mask_length, min_masks=2, generator=g)
    neg = sample_negatives(mask, cfg.num_negatives, generator=g)
    mask, neg = mask.to(device), neg.to(device)

    def update(model, impl: str, **inputs):
        """One update of ``model`` on the shared inputs with its own AdamW (``impl``)."""
        kw = {"fused": True} if impl == "fused" else {"foreach": impl == "foreach"}
        model = model.to(device).train()
        opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-6, **kw)

        def step():
            opt.zero_grad(set_to_none=True)
            with torch.autocast(**amp):
                out = model(x, **inputs)
            out.loss.backward()
            opt.step()
            if device == "cuda":
                torch.cuda.synchronize()  # the update is timed to its end on the GPU

        return step

    steps = {}
    if ours is not None:
        steps["ours"] = update(ours, optimizer, mask_indices=mask, negative_indices=neg)
    if hf is not None:
        steps["hf"] = update(hf, hf_optimizer, mask_time_indices=mask, sampled_negative_indices=neg)
    return steps, n_params


def infer(model, x: torch.Tensor, amp: dict, device: str):
    """One CTC inference forward of ``model`` on ``x`` (logits, as ``speech-ssl decode`` runs the model)."""
    last = {}

    @torch.no_grad()  # as speech-ssl decode runs it
    def step():
        with torch.autocast(**amp):
            last["logits"] = model(x).logits
        if device == "cuda":
            torch.cuda.synchronize()

    step.logits = lambda: last["logits"].float()
    return step


def timed(step) -> float:
    t0 = time.perf_counter()
    step()
    return time.perf_counter() - t0


def paired(steps: dict, pairs: int) -> dict:
    for s in steps.values():  # warm-up: allocator, optimizer state, oneDNN primitives
        s()
    t_ours, t_hf, ratios = [], [], []
    for i in range(pairs):
        if i % 2 == 0:
            a = timed(steps["ours"])
            b = timed(steps["hf"])
        else:
            b = timed(steps["hf"])
            a = timed(steps["ours"])
        t_ours.append(a)
        t_hf.append(b)
        ratios.append(b / a)
    return {"ours_s": statistics.median(t_ours), "hf_s": statistics.median(t_hf),
            "ratio_median": statistics.median(ratios), "ratio_min": min(ratios), "ratio_max": max(ratios)}


def update_flops(step) -> int:
    """FLOPs of one update as ``torch.utils.flop_counter`` counts them (matmul, conv, attention; fwd + bwd)."""
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    with counter:
        step()
    return counter.get_total_flops()


def gemm_flops_per_s(n: int = 2048, repeats: int = 5, device: str = "cpu", dtype: str = "fp32") -> float:
    """This machine's matmul throughput (fp32 on CPU at the current thread count; the run's dtype on CUDA):
    the best of ``repeats`` n x n mm."""
    dt = torch.bfloat16 if dtype == "bf16" and device == "cuda" else torch.float32
    a, b = torch.randn(n, n, device=device, dtype=dt), torch.randn(n, n, device=device, dtype=dt)

    def mm():
        torch.mm(a, b)
        if device == "cuda":
            torch.cuda.synchronize()

    mm()
    best = min(timed(mm) for _ in range(repeats))
    return 2 * n**3 / best


def reset_peak_rss() -> None:
    """Start this process's peak resident memory (Linux VmHWM) over from what it holds now (``clear_refs`` 5),
    so that building the models does not count (ours is loaded from HF's saved folder, so its worker held both
    for a moment); elsewhere the peak keeps it."""
    try:
        with open("/proc/self/clear_refs", "w", encoding="ascii") as f:
            f.write("5")
    except OSError:
        pass


def memory_worker(args) -> None:
    import gc

    torch.set_num_threads(args.threads)
    steps, _ = build(args.preset, parse_shape(args.shapes), args.memory_worker, args.optimizer,
                     args.hf_optimizer, args.dtype, args.device, args.compile, args.pos_conv_impl, args.task)
    step = steps[args.memory_worker]
    gc.collect()
    reset_peak_rss()
    for _ in range(3):
        step()
    if args.device == "cuda":
        print(json.dumps({"peak_mb": torch.cuda.max_memory_allocated() / 2**20}))
        return
    from speech_ssl.train.report import peak_rss_bytes

    print(json.dumps({"peak_mb": peak_rss_bytes() / 2**20}))


def peak_memory(args, shape: str, which: str) -> float:
    cmd = [sys.executable, __file__, "--preset", args.preset, "--shapes", shape, "--threads", str(args.threads),
           "--optimizer", args.optimizer, "--hf-optimizer", args.hf_optimizer, "--dtype", args.dtype,
           "--device", args.device, "--memory-worker", which, "--pos-conv-impl", args.pos_conv_impl,
           "--task", args.task] \
        + (["--compile"] if args.compile else [])
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])["peak_mb"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--task", choices=["pretrain", "ctc-infer"], default="pretrain",
                    help="pretrain: one update (forward + backward + AdamW); ctc-infer: one CTC inference forward")
    ap.add_argument("--preset", default="base")
    ap.add_argument("--shapes", default="1x5,4x5", help="comma list of BATCHxSECONDS")
    ap.add_argument("--pairs", type=int, default=6)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--optimizer", choices=["fused", "foreach", "for_loop"], default="fused")
    ap.add_argument("--hf-optimizer", choices=["fused", "foreach", "for_loop"], default=None,
                    help="HF's AdamW (default: the same as --optimizer)")
    ap.add_argument("--dtype", choices=["fp32", "bf16"], default="fp32", help="bf16: autocast for both")
    ap.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    ap.add_argument("--compile", action="store_true",
                    help="our model's parts under torch.compile (distributed.compile); HF's eager")
    ap.add_argument("--pos-conv-impl", choices=["conv", "fft", "auto"], default="conv",
                    help="our positional conv as the convolution or through the FFT (distributed.pos_conv_impl)")
    ap.add_argument("--peak-tflops", type=float, default=None,
                    help="MFU against this peak (the spec sheet's) instead of the measured GEMM throughput")
    ap.add_argument("--memory", action="store_true",
                    help="also the peak memory of one process per side (RSS on CPU, max_memory_allocated on CUDA)")
    ap.add_argument("--flops", action="store_true", help="also model FLOPs, MFU against this machine's GEMM "
                    "throughput and the ceiling of any speed-up over HF")
    ap.add_argument("--json", help="also write the rows here")
    ap.add_argument("--memory-worker", choices=["ours", "hf"], help=argparse.SUPPRESS)
    args = ap.parse_args()
    args.hf_optimizer = args.hf_optimizer or args.optimizer
    if args.memory_worker:
        return memory_worker(args)
    import transformers

    torch.set_num_threads(args.threads)
    where = (torch.cuda.get_device_name() if args.device == "cuda"
             else f"{args.threads} threads, 1-min load {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores")
    what = ("CTC inference (forward to the logits)" if args.task == "ctc-infer"
            else f"pretraining update, AdamW ours={args.optimizer} hf={args.hf_optimizer}")
    print(f"preset {args.preset}, {args.dtype}{' + torch.compile (ours)' if args.compile else ''}"
          f"{', positional conv ' + args.pos_conv_impl + ' (ours)' if args.pos_conv_impl != 'conv' else ''}, "
          f"{what}, {where}; "
          f"torch {torch.__version__}, transformers {transformers.__version__}")
    peak = None
    if args.flops:
        n = 8192 if args.device == "cuda" else 2048
        peak = gemm_flops_per_s(n, device=args.device, dtype=args.dtype)
        print(f"GEMM throughput here: {peak / 1e9:.1f} GFLOP/s ({n}^2 torch.mm, "
              f"{args.dtype if args.device == 'cuda' else 'fp32'}, {where})")
        if args.peak_tflops:
            peak = args.peak_tflops * 1e12
            print(f"MFU against the given peak: {args.peak_tflops:g} TFLOP/s")
    rows = []
    mem_kind = "GPU" if args.device == "cuda" else "RSS"
    print(f"{'shape':>8s} {'ours s':>8s} {'HF s':>8s} {'HF/ours (min-max)':>22s} {mem_kind + ' ours MB':>12s} "
          f"{mem_kind + ' HF MB':>10s}"
          + (f" {'GFLOP ours/HF':>14s} {'MFU ours/HF':>12s} {'ceiling':>8s}" if peak else "")
          + (f" {'RTF ours/HF':>14s} {'max |dlogit|':>12s}" if args.task == "ctc-infer" else ""))
    for shape in args.shapes.split(","):
        b, sec = parse_shape(shape)
        steps, n_params = build(args.preset, (b, sec), "both", args.optimizer, args.hf_optimizer, args.dtype,
                                args.device, args.compile, args.pos_conv_impl, args.task)
        row = {"shape": shape, "params_m": round(n_params / 1e6, 2), **paired(steps, args.pairs)}
        row["audio_s_per_s_ours"], row["audio_s_per_s_hf"] = b * sec / row["ours_s"], b * sec / row["hf_s"]
        if args.task == "ctc-infer":  # real-time factor; the two sides' logits of the last timed forward
            row["rtf_ours"], row["rtf_hf"] = row["ours_s"] / (b * sec), row["hf_s"] / (b * sec)
            row["max_abs_logit_diff"] = (steps["ours"].logits() - steps["hf"].logits()).abs().max().item()
        if peak:  # counted on the eager convolution models: the model's FLOPs whatever computes them (the counter
            # does not see into compiled graphs, and the FFT does other arithmetic for the same function)
            plain = args.compile or args.pos_conv_impl != "conv"
            eager = build(args.preset, (b, sec), "both", args.optimizer, args.hf_optimizer, args.dtype,
                          args.device, task=args.task)[0] if plain else steps
            row["gflop_ours"], row["gflop_hf"] = (update_flops(eager[k]) / 1e9 for k in ("ours", "hf"))
            del eager
            row["mfu_ours"] = row["gflop_ours"] * 1e9 / row["ours_s"] / peak
            row["mfu_hf"] = row["gflop_hf"] * 1e9 / row["hf_s"] / peak
            row["ceiling"] = row["hf_s"] / (row["gflop_hf"] * 1e9 / peak)
        del steps
        if args.memory:
            row["mem_ours_mb"] = peak_memory(args, shape, "ours")
            row["mem_hf_mb"] = peak_memory(args, shape, "hf")
        rows.append(row)
        mem = (f"{row['mem_ours_mb']:12.0f} {row['mem_hf_mb']:10.0f}" if args.memory else " " * 23)
        fl = (f" {row['gflop_ours']:6.1f}/{row['gflop_hf']:<7.1f} {row['mfu_ours']:5.0%}/{row['mfu_hf']:<6.0%}"
              f" {row['ceiling']:7.2f}x" if peak else "")
        rtf = (f" {row['rtf_ours']:6.3f}/{row['rtf_hf']:<7.3f} {row['max_abs_logit_diff']:12.2e}"
               if args.task == "ctc-infer" else "")
        print(f"{shape:>8s} {row['ours_s']:8.3f} {row['hf_s']:8.3f} "
              f"{row['ratio_median']:8.2f} ({row['ratio_min']:.2f}-{row['ratio_max']:.2f})     {mem}{fl}{rtf}",
              flush=True)
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump({"args": vars(args), "load": os.getloadavg()[0], "gemm_flops_per_s": peak, "rows": rows},
                      f, indent=1)


if __name__ == "__main__":
    main()
