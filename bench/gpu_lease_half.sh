#!/usr/bin/env bash
# One GPU lease (~9.5 minutes on one H200) for issue 12's last target: pretrained + 10 min of labels at most half
# the WER + LM of scratch + 10 min, at equal updates. The lever left is pretraining compute and model size
# (0.82x -> 0.79x -> 0.69x for 12 / 20 / 80 h of audio seen by the 3.65M-parameter model), and fine-tuning a larger
# model takes too long on the 2-core box, so everything runs here:
#   1. recipes/synth stages 1-2 (corpus v2, manifests; NJ workers) and, beside stage 3, stage 5 (the word LM)
#   2. stage 3 with PRETRAIN_OVERRIDES (default: 8 layers x 384, 4.5x the Transformer of the shipped model) for
#      PRETRAIN_UPDATES updates or PRETRAIN_SECONDS seconds (SIGTERM: the trainer saves, then stops)
#   3. stages 4-7 for en-10m-pretrained-convtrain and en-10m-scratch (the same larger architecture, random
#      init) over SEEDS, every run side by side on the GPU (THREADS each for decoding), one EXP per run linking
#      the corpus, data and LM; runs still going at BUDGET - 30 s are stopped
#      (stage 4 gives the pretrained runs the recipe's fine-tuning dropout, FT_PRETRAINED_DROPOUT=0.1; scratch keeps 0)
#   4. `speech-ssl results seeds` over the runs -> OUT/results.md
# Files back (the device tool returns at most 8, each at most 16 MiB): half.log, results.md, pretrain_info.json,
# runs.tgz (each run's results, scores and logs), pretrained.tgz.part_* (the larger checkpoint, ~60 MB, in 15 MB pieces).
#
#   device run (carry .whl, from bench/gpu_wheels.sh; move recipes/synth/pretrained_multi_cpu aside so that the
#   tree and .whl stay under 64 MiB): bash bench/gpu_lease_half.sh        (timeout_s ~590)
#   DRY=1 bash bench/gpu_lease_half.sh   # on CPU: the TINY recipe, a few updates, one seed: checks the script
#   Then here: cat OUT/pretrained.tgz.part_* | tar xz -C DIR (DIR/pretrain_final: config, weights, pretrain_info)
set -uo pipefail

out=${OUT:-/tmp/gpu_half}
budget=${BUDGET:-560}
updates=${PRETRAIN_UPDATES:-6000}
seconds=${PRETRAIN_SECONDS:-210}
overrides=${PRETRAIN_OVERRIDES:-model.overrides.encoder_layers=8 model.overrides.encoder_embed_dim=384 model.overrides.encoder_ffn_embed_dim=1536 model.overrides.encoder_attention_heads=6}
seeds=${SEEDS:-1 2 3}
conditions=${HALF_CONDITIONS:-en-10m-pretrained-convtrain en-10m-scratch}
threads=${THREADS:-2}
exp=${EXP_DIR:-/tmp/synth_half}
start=$(date +%s)
mkdir -p "$out"
. bench/gpu_env.sh
if [ "${DRY:-0}" = 1 ]; then
  export TINY=1 DEVICE=cpu
  updates=${PRETRAIN_UPDATES:-5}; seconds=${PRETRAIN_SECONDS:-120}; seeds=${SEEDS:-1}; threads=${THREADS:-1}
else
  export DEVICE=cuda
fi
log=$out/half.log
: >"$log"
el() { echo $(( $(date +%s) - start )); }
note() { echo "== $* ($(el)s)" | tee -a "$log"; }

note "stages 1-2"
EXP=$exp NJ=${NJ:-16} recipes/synth/run.sh --stop-stage 2 >>"$log" 2>&1 || { note "stages 1-2 failed: exit $?"; exit 1; }
note "stage 3 ($updates updates or ${seconds}s; $overrides) beside stage 5"
EXP=$exp recipes/synth/run.sh --stage 5 --stop-stage 5 >"$out/stage5.tmp" 2>&1 &
lm=$!
EXP=$exp MONO=0 PRETRAIN_UPDATES=$updates PRETRAIN_SECONDS=$seconds PRETRAIN_OVERRIDES="$overrides" \
  recipes/synth/run.sh --stage 3 --stop-stage 3 >>"$log" 2>&1 || note "stage 3 failed: exit $?"
wait "$lm" || note "stage 5 failed"
cat "$out/stage5.tmp" >>"$log"
rm -f "$out/stage5.tmp"  # OUT holds exactly the 8 files that come back
final=$exp/pretrain/final
[ -f "$final/model.safetensors" ] || { note "no pretrained model"; exit 1; }
cp "$final/pretrain_info.json" "$out/" 2>/dev/null
tail -n 2 "$exp/pretrain/log.jsonl" >>"$log" 2>&1

note "stages 4-7: $conditions x seeds $seeds, side by side"
pids=()
runs=()
for s in $seeds; do
  for c in $conditions; do
    e=$exp/runs/${c}_s$s
    mkdir -p "$e"
    for d in corpus data lm; do ln -sfn "$exp/$d" "$e/$d"; done
    EXP=$e SEED=$s THREADS=$threads PRETRAINED=$final CONDITIONS=$c \
      recipes/synth/run.sh --stage 4 --stop-stage 7 >"$e/run.log" 2>&1 &
    pids+=($!)
    runs+=("$e")
  done
done
any_alive() { local p; for p in "${pids[@]}"; do kill -0 "$p" 2>/dev/null && return 0; done; return 1; }
while any_alive; do  # wait for the runs, stopping any still going near the budget's end
  if [ "$(el)" -gt $(( budget - 30 )) ]; then
    note "budget: stopping the runs still going (SIGTERM: they save and stop)"
    for p in "${pids[@]}"; do pkill -TERM -P "$p" 2>/dev/null; kill -TERM "$p" 2>/dev/null; done
    for _ in $(seq 20); do  # the trainers save on SIGTERM: up to 20 s for them to finish
      any_alive || break
      sleep 1
    done
    break
  fi
  sleep 2
done
for e in "${runs[@]}"; do echo "-- $e" >>"$log"; tail -n 5 "$e/run.log" >>"$log"; done

note "summary"
${PYTHON:-python3} -m speech_ssl results seeds "${runs[@]}" --out "$out/results.md" >>"$log" 2>&1 || note "results failed: exit $?"
cat "$out/results.md" 2>/dev/null | tee -a "$log"
(cd "$exp/runs" && tar czf "$out/runs.tgz" --exclude='*.safetensors' --exclude='*.pt' --exclude='corpus' \
  --exclude='data' --exclude='lm' --exclude='random_init' .) 2>>"$log"
tar cz -C "$exp/pretrain" --transform 's,^final,pretrain_final,' final | split -b 15m - "$out/pretrained.tgz.part_"
note "done"
