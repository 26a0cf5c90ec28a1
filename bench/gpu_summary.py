"""The table of bench/gpu_session.sh: each bare model update (bench_vs_hf.py) next to the full trainer update on
the same batch shape and precision (bench_pretrain.py), read from the folder the session wrote them to.

    python bench/gpu_summary.py WORK_DIR [--out summary.json]

WORK_DIR holds ``bare_NAME.json`` (bench_vs_hf.py --json) and ``trainer_NAME.jsonl`` (bench_pretrain.py --json)
with the same NAME. Printed per NAME: audio-seconds per second of our bare update, HF's, the trainer's;
trainer / bare (issue 15 asks >= 90%); model FLOP utilisation of the bare update and of the trainer (the bare
update's FLOPs per batch over the trainer's time per update, against the peak the bare run used); peak memory.
Then bf16 / fp32 of the trainer and of the bare update where both ran.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def rows(work: Path) -> list[dict]:
    out = []
    for bare_file in sorted(work.glob("bare_*.json")):
        name = bare_file.stem[len("bare_"):]
        bare = json.loads(bare_file.read_text())
        b = bare["rows"][0]
        row = {"name": name, "shape": b["shape"], "bare_ours": b["audio_s_per_s_ours"], "bare_hf": b["audio_s_per_s_hf"],
               "hf_over_ours": b["ratio_median"], "mem_bare_ours_mb": b.get("mem_ours_mb"),
               "mem_bare_hf_mb": b.get("mem_hf_mb"), "peak_flops": bare.get("gemm_flops_per_s")}
        if "mfu_ours" in b:
            row["mfu_bare_ours"], row["mfu_bare_hf"] = b["mfu_ours"], b["mfu_hf"]
        tr_file = work / f"trainer_{name}.jsonl"
        if tr_file.is_file():
            t = [json.loads(x) for x in tr_file.read_text().splitlines() if x.strip()][-1]
            row["trainer"] = t["audio_s_per_s"]
            row["trainer_over_bare"] = t["audio_s_per_s"] / b["audio_s_per_s_ours"]
            row["mem_trainer_gb"] = t["peak_mem_gb"]
            row["trainer_audio_s_per_update"] = t["audio_s_per_update"]
            if "gflop_ours" in b and row["peak_flops"]:
                row["mfu_trainer"] = b["gflop_ours"] * 1e9 / t["s_per_update"] / row["peak_flops"]
        out.append(row)
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("work")
    ap.add_argument("--out")
    args = ap.parse_args()
    table = rows(Path(args.work))
    if not table:
        print(f"no bare_*.json in {args.work}", file=sys.stderr)
        return 1

    def f(v, fmt):  # "-" in the same width when there is no value
        width = "".join(ch for ch in fmt.split(".")[0] if ch.isdigit())
        return format(v, fmt) if isinstance(v, (int, float)) else "-".rjust(int(width or 1))

    print(f"{'run':>18s} {'shape':>6s} {'bare ours':>10s} {'bare HF':>8s} {'trainer':>8s} {'tr/bare':>8s} "
          f"{'MFU bare':>9s} {'MFU tr':>7s} {'HF/ours':>8s} {'mem ours/HF MB':>15s} {'tr GB':>6s}")
    for r in table:
        print(f"{r['name']:>18s} {r['shape']:>6s} {f(r['bare_ours'], '10.0f')} {f(r['bare_hf'], '8.0f')} "
              f"{f(r.get('trainer'), '8.0f')} {f(r.get('trainer_over_bare'), '8.0%')} {f(r.get('mfu_bare_ours'), '9.1%')} "
              f"{f(r.get('mfu_trainer'), '7.1%')} {f(r['hf_over_ours'], '8.2f')} "
              f"{f(r['mem_bare_ours_mb'], '7.0f')}/{f(r['mem_bare_hf_mb'], '<7.0f')} {f(r.get('mem_trainer_gb'), '6.2f')}")
    by = {r["name"]: r for r in table}
    for a, b in (("base_bf16", "base_fp32"), ("base_bf16_fft", "base_bf16"), ("base_bf16_compile", "base_bf16")):
        if a in by and b in by:
            tr = (f"{by[a]['trainer'] / by[b]['trainer']:.2f}x" if by[a].get("trainer") and by[b].get("trainer")
                  else "-")
            print(f"{a} / {b}: bare {by[a]['bare_ours'] / by[b]['bare_ours']:.2f}x, trainer {tr}")
    if args.out:
        Path(args.out).write_text(json.dumps(table, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
