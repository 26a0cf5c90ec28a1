#!/usr/bin/env bash
# One GPU session for issue 15's target 6, prepared to run inside ~9 minutes on one H200:
#   1. bench/gpu_model_check.py: CUDA forward/backward, HF parity on the GPU, the BASE step against HF
#   2. bench/bench_vs_hf.py --device cuda: the bare model update (forward + backward + fused AdamW), ours vs HF on
#      the same weights and inputs, BASE 8 x 15 s in fp32 and bf16 and LARGE 4 x 15 s in bf16: time, audio-s/s,
#      peak memory (one process per side), model FLOPs and MFU against the spec sheet's dense peak
#   3. bench/bench_pretrain.py --device cuda: the full trainer update on the same batch shape (8 x 15 s, 6 data
#      loader workers) in fp32 and bf16, and LARGE bf16
#   4. BASE bf16 again with the positional conv through the FFT (distributed.pos_conv_impl=fft), then all of it
#      with distributed.compile (torch.compile of the conv encoder, positional conv and layers), last
#   5. bench/gpu_components.py: where the BASE bf16 update's device time goes (forward + backward per part, a
#      profiler table of one update) and what the suspects' alternatives cost; the trainer's BASE bf16 step
#      is profiled too (bench_pretrain.py --profile: ops by device and host time, how busy the device was)
#   6. the host's CPU (2 threads), CTC inference ours vs HF in fp32 and bf16 (bench_vs_hf.py --task ctc-infer):
#      issue 15's target 3 (bf16 inference at least as fast as HF's, BASE RTF <= 0.04) where the CPU has bf16
#      units (the log's first lines say whether it has AMX / AVX512-BF16); cpu_infer_*.json in OUT
#   7. bench/gpu_summary.py: trainer / bare step (the target: >= 90%), bf16 / fp32, MFU, ours vs HF
# Every step has its own time limit and the session stops starting steps after DEADLINE seconds, so what ran
# comes back. Everything lands in OUT (default /tmp/gpu_session): session.log and summary.json.
#
#   device run (carry .whl: bench/gpu_wheels.sh fetches soundfile and its needs for the GPU machine's Python):
#     bash bench/gpu_session.sh
#   DRY=1 bash bench/gpu_session.sh     # on CPU with tiny sizes: checks the script itself (~3 min, 2 cores)
#   STEPS="bare_base_bf16 trainer_base_bf16" bash bench/gpu_session.sh   # only these steps (and the summary)
#   WORK=DIR keeps the per-step JSON files there (default: a temporary folder, removed at the end)
set -uo pipefail

out=${OUT:-/tmp/gpu_session}
work=${WORK:-$(mktemp -d)}
keep_work=${WORK:+1}
steps=" ${STEPS:-} "
mkdir -p "$work"
mkdir -p "$out"
. bench/gpu_env.sh
py=${PYTHON:-python3}
deadline=${DEADLINE:-500}
if [ "${DRY:-0}" = 1 ]; then
  dev=cpu; base=tiny; large=tiny; shape=1x2; lshape=1x2; tokens=32000; utt=2; pairs=2; workers=0; ishapes=1x2
  peak32=(); peak16=()
else
  dev=cuda; base=base; large=large; shape=8x15; lshape=4x15; tokens=1920000; utt=15; pairs=6; workers=6
  ishapes=1x10,4x10
  peak32=(--peak-tflops 67); peak16=(--peak-tflops 989)  # H200 SXM spec sheet: fp32 67, dense bf16 989 TFLOP/s
fi
start=$(date +%s)
log=$out/session.log
: >"$log"

step() {  # NAME SECONDS CMD...: run CMD with a time limit unless the session is past its deadline
  local name=$1 secs=$2 rc
  shift 2
  if [ "$steps" != "  " ] && [ "$name" != summary ] && [[ "$steps" != *" $name "* ]]; then
    return 0
  fi
  if [ $(( $(date +%s) - start )) -gt "$deadline" ]; then
    echo "== $name: skipped (past ${deadline}s)" | tee -a "$log"
    return 0
  fi
  echo "== $name ($(( $(date +%s) - start ))s): $*" | tee -a "$log"
  timeout "$secs" "$@" 2>&1 | tee -a "$log"
  rc=${PIPESTATUS[0]}
  [ "$rc" = 0 ] || echo "== $name: exit $rc" | tee -a "$log"
}

{ nvidia-smi --query-gpu=name,memory.total,clocks.max.sm --format=csv 2>/dev/null || echo "no nvidia-smi"
  $py -c 'import torch, transformers; print("torch", torch.__version__, "transformers", transformers.__version__)'
  echo "host CPU: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2-), $(nproc) cores, bf16 units:" \
    "$(grep -o -w -E 'amx_bf16|avx512_bf16' /proc/cpuinfo | sort -u | tr '\n' ' ')"
} 2>&1 | tee -a "$log"
[ "${DRY:-0}" = 1 ] && export DRY
step model_check 150 $py bench/gpu_model_check.py
step components 150 $py bench/gpu_components.py --device "$dev" --preset "$base" --batch "${shape%x*}" \
  --seconds "${shape#*x}" --dtype bf16 --json "$work/components.json" --profile "$out/profile_step_bf16.txt"
vs_hf() {  # NAME PRESET SHAPE DTYPE [extra...]
  local name=$1 preset=$2 shp=$3 dt=$4
  shift 4
  step "$name" 200 $py bench/bench_vs_hf.py --device "$dev" --preset "$preset" --shapes "$shp" --pairs "$pairs" \
    --dtype "$dt" --flops --memory --json "$work/$name.json" "$@"
}
trainer() {  # NAME PRESET PRECISION [extra...]
  local name=$1 preset=$2 prec=$3
  shift 3
  step "$name" 200 $py bench/bench_pretrain.py --presets "$preset" --device "$dev" --precision "$prec" \
    --max-tokens "$tokens" --utt-seconds "$utt" --updates 10 --warmup 3 --workers "$workers" \
    --json "$work/$name.jsonl" "$@"
}
vs_hf bare_base_fp32 "$base" "$shape" fp32 "${peak32[@]}"
vs_hf bare_base_bf16 "$base" "$shape" bf16 "${peak16[@]}"
trainer trainer_base_fp32 "$base" fp32
trainer trainer_base_bf16 "$base" bf16 --profile "$out/profile_trainer_base_bf16.txt"
vs_hf bare_large_bf16 "$large" "$lshape" bf16 "${peak16[@]}"
trainer trainer_large_bf16 "$large" bf16 --max-tokens $(( tokens / 2 ))
vs_hf bare_base_bf16_fft "$base" "$shape" bf16 "${peak16[@]}" --pos-conv-impl fft
trainer trainer_base_bf16_fft "$base" bf16 --pos-conv-impl fft
cpu_infer() {  # NAME DTYPE: CTC inference on the host's CPU, 2 threads (the README's CPU setting)
  step "$1" 120 $py bench/bench_vs_hf.py --task ctc-infer --device cpu --threads 2 --preset "$base" \
    --shapes "$ishapes" --pairs 4 --dtype "$2" --json "$out/$1.json"
}
cpu_infer cpu_infer_fp32 fp32
cpu_infer cpu_infer_bf16 bf16
vs_hf bare_base_bf16_compile "$base" "$shape" bf16 "${peak16[@]}" --compile
trainer trainer_base_bf16_compile "$base" bf16 --compile
step summary 60 $py bench/gpu_summary.py "$work" --out "$out/summary.json"
echo "== done in $(( $(date +%s) - start ))s" | tee -a "$log"
[ -n "$keep_work" ] || rm -rf "$work"
