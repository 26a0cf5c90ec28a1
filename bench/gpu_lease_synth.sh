#!/usr/bin/env bash
# One GPU lease (~9.5 minutes on one H200) for two jobs that each need the GPU:
#   1. issue 12: recipes/synth stages 1-3 with DEVICE=cuda: corpus v2 and its manifests (NJ workers), then the two
#      shipped checkpoints, multilingual (pretrained/) and English-only (pretrained_mono/), pretrained side by side
#      for the same budget (PRETRAIN_UPDATES, cut by SIGTERM after PRETRAIN_SECONDS: the trainer saves, then
#      stops), published into speech_ssl/demo/assets/ and packed into OUT/stage3.tgz.part_* (12 MB pieces: the
#      device tool returns files of at most 16 MiB)
#   2. issue 15: bench/gpu_session.sh's core steps (BASE bf16 and fp32: the bare update ours vs HF, the full
#      trainer update) in the time left before BUDGET seconds: OUT/session.log (every table), OUT/summary.json
#      and OUT/gpu.tgz (the step JSON files)
# Seven files come back (the tool returns at most 8): three parts, recipe.log, session.log, summary.json, gpu.tgz.
#
#   device run (carry .whl: bench/gpu_wheels.sh): bash bench/gpu_lease_synth.sh      (timeout_s ~590)
#   DRY=1 bash bench/gpu_lease_synth.sh   # on CPU: TINY recipe and tiny bench sizes, checks the script (~5 min)
#   Then here: cat OUT/stage3.tgz.part_* | tar xz -C speech_ssl/demo/assets; tar xzf OUT/gpu.tgz -C /tmp
set -uo pipefail

out=${OUT:-/tmp/gpu_lease}
budget=${BUDGET:-560}
updates=${PRETRAIN_UPDATES:-3000}
seconds=${PRETRAIN_SECONDS:-240}
workers=${PRETRAIN_WORKERS:-7}
exp=${EXP_DIR:-/tmp/synth_gpu}
start=$(date +%s)
mkdir -p "$out"
gpu=$(mktemp -d)/gpu
mkdir -p "$gpu"
. bench/gpu_env.sh
if [ "${DRY:-0}" = 1 ]; then
  export TINY=1 DEVICE=cpu
  updates=${PRETRAIN_UPDATES:-5}; seconds=${PRETRAIN_SECONDS:-60}; workers=${PRETRAIN_WORKERS:-0}
else
  export DEVICE=cuda
fi
log=$out/recipe.log
el() { echo $(( $(date +%s) - start )); }
note() { echo "== $* ($(el)s)" | tee -a "$log"; }

note "stages 1-2"
EXP=$exp NJ=${NJ:-16} recipes/synth/run.sh --stop-stage 2 >>"$log" 2>&1 || note "stages 1-2 failed: exit $?"
du -sh "$exp/corpus" >>"$log" 2>&1
note "stage 3: multilingual and English-only side by side, $updates updates or ${seconds}s each"
for m in 0 only; do
  EXP=$exp MONO=$m PRETRAIN_UPDATES=$updates PRETRAIN_SECONDS=$seconds PRETRAIN_WORKERS=$workers \
    recipes/synth/run.sh --stage 3 --stop-stage 3 >"$out/stage3_$m.tmp" 2>&1 &
done
wait
for m in 0 only; do echo "-- MONO=$m" >>"$log"; cat "$out/stage3_$m.tmp" >>"$log"; rm -f "$out/stage3_$m.tmp"; done
# publish both (runs that stopped on the time budget count as done: PRETRAIN_UPDATES=1 only checks they exist)
EXP=$exp MONO=1 PUBLISH=1 PRETRAIN_UPDATES=1 recipes/synth/run.sh --stage 3 --stop-stage 3 >>"$log" 2>&1 \
  || note "publish failed: exit $?"
tar cz -C speech_ssl/demo/assets pretrained pretrained_mono | split -b 12m - "$out/stage3.tgz.part_" \
  && note "stage3.tgz.part_* written"
for f in "$exp"/pretrain*/log.jsonl; do tail -n 3 "$f" >>"$log" 2>&1; done

left=$(( budget - $(el) ))
note "bench: ${left}s left"
if [ "$left" -gt 60 ]; then
  OUT=$out WORK=$gpu DEADLINE=$(( left - 75 )) \
    STEPS="bare_base_bf16 trainer_base_bf16 bare_base_fp32 trainer_base_fp32" \
    timeout $(( left - 5 )) bash bench/gpu_session.sh >/dev/null 2>&1
  note "bench exit $?"
  tar czf "$out/gpu.tgz" -C "$(dirname "$gpu")" gpu
fi
note "done"
