#!/usr/bin/env bash
# recipes/synth stages 1-3 in one go on a GPU box (how recipes/synth/pretrained was made):
# embedded corpus -> manifests -> multilingual pretraining, stopped by SIGTERM after SECONDS
# (the trainer saves a checkpoint and exits cleanly). ky is left out of pretraining on purpose.
#
#   recipes/synth/pretrain_gpu.sh WORK OUT SECONDS ENGLISH_MIN MIN_PER_LANG WORKERS [overrides...]
#
# CONFIG=... picks the run config (default recipes/synth/conf/pretrain.yaml; the shipped checkpoint used
# recipes/synth/pretrained/run_config.yaml, the resolved config of that run).
# Runs with the installed package or with PYTHON=python3 and PYTHONPATH=<repo>. The newest checkpoint's
# weights are copied to OUT/ck every 15 s, so a run cut short still leaves one.
set -euo pipefail
WORK=$1; OUT=$2; SECS=$3; EN=$4; PL=$5; W=$6; shift 6
PY=${PYTHON:-python3}
LANGS=${LANGS:-en,de,fr,es,it,nl,pt,ru,sv,tr,tt}
SEED=${SEED:-7}
mkdir -p "$OUT/ck"
t0=$(date +%s)
$PY -m speech_ssl prepare synth --out "$WORK/corpus" --languages "$LANGS" --english-minutes "$EN" \
  --minutes-per-language "$PL" --workers "$W" --seed "$SEED" --no-progress --babel-languages '' \
  > "$OUT/synth.log" 2>&1
echo "corpus: $(( $(date +%s) - t0 )) s"; tail -2 "$OUT/synth.log"
$PY -m speech_ssl prepare librispeech --root "$WORK/corpus/LibriSpeech" --out "$WORK/data/en" --workers "$W" \
  > "$OUT/prep.log" 2>&1
TRAIN="$WORK/data/en/train-clean-100.tsv"
VALID="$WORK/data/en/dev-clean.tsv"
for l in ${LANGS//,/ }; do
  [ "$l" = en ] && continue
  $PY -m speech_ssl prepare commonvoice --root "$WORK/corpus/cv-corpus-1.0-synth/$l" --out "$WORK/data/$l" \
    --workers "$W" --no-phones >> "$OUT/prep.log" 2>&1
  TRAIN="$TRAIN,$WORK/data/$l/train.tsv"
done
echo "manifests: $(( $(date +%s) - t0 )) s"
copy_latest() {
  local ck
  ck=$(ls -d "$WORK"/run/checkpoints/checkpoint_* 2>/dev/null | sort | tail -1) || return 0
  [ -n "$ck" ] && [ -f "$ck/model.safetensors" ] || return 0
  cp "$ck/model.safetensors" "$OUT/ck/model.safetensors.tmp" && cp "$ck/config.json" "$OUT/ck/config.json" \
    && mv "$OUT/ck/model.safetensors.tmp" "$OUT/ck/model.safetensors" && basename "$ck" > "$OUT/ck/FROM"
  cp "$WORK/run/log.jsonl" "$OUT/log.jsonl" 2>/dev/null || true
}
( while sleep 15; do copy_latest; done ) &
loop=$!
set +e
timeout -s TERM "$SECS" $PY -m speech_ssl pretrain "${CONFIG:-recipes/synth/conf/pretrain.yaml}" "data.train=[$TRAIN]" \
  "data.valid=[$VALID]" "$@" --run-dir "$WORK/run" > "$OUT/pretrain.log" 2>&1
rc=$?
set -e
kill $loop 2>/dev/null || true
copy_latest
cp "$WORK/run/config.yaml" "$OUT/config.yaml" 2>/dev/null || true
echo "pretrain: rc=$rc, $(( $(date +%s) - t0 )) s total"
grep -E "^\[valid\]" "$OUT/pretrain.log" | tail -3
tail -4 "$OUT/pretrain.log"
