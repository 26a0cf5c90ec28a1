#!/usr/bin/env bash
# recipes/commonvoice: XLSR-style multilingual pretraining and per-language fine-tuning on CommonVoice, in
# numbered, idempotent, resumable stages.
#
#   recipes/commonvoice/run.sh [--stage N] [--stop-stage M] [--name value ...]
#
#   1 prepare each language of --languages and --ft-languages (`speech-ssl prepare commonvoice`: 16 kHz FLAC,
#     words, letters, eSpeak phones) and a ~1 h labelled subset of each fine-tuning language's train set
#     (`speech-ssl manifest subset`)
#     (TINY=1 first generates an embedded corpus in the CommonVoice layout with `speech-ssl prepare synth`)
#   2 multilingual model: --pretrained CK (ours, an HF folder such as XLSR-53, or a fairseq .pt; converted),
#     else pretraining conf/pretrain_xlsr.yaml on the train sets of --languages with alpha sampling
#   3 fine-tune per language on --units: phn (phonemes, the paper's PER setting) and/or ltr (letters, WER)
#     with conf/finetune_xlsr_<unit>.yaml; update_freq = ceil(4 x 5 / your GPU count)
#   4 decode dev and test greedily
#   5 score (PER on phones; WER and CER on letters) -> EXP/results.md (`speech-ssl results table`)
#
# Every option is an environment variable or a flag (--languages fr,de == LANGUAGES=fr,de). A finished
# step is skipped when its output exists; training stages continue with --resume.
#
#   CV_ROOT=/data/cv-corpus-17.0 recipes/commonvoice/run.sh --languages fr,de,es,it --ft-languages ky,tt
#   CV_ROOT=/data/cv-corpus-17.0 recipes/commonvoice/run.sh --pretrained wav2vec2-large-xlsr-53 --ft-languages tr
#   TINY=1 recipes/commonvoice/run.sh          # embedded corpus, tiny model, a few updates (CI)
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
recipe=commonvoice
# parse_options, setup_env (py, ssl, ngpu, device), log, run_stage, train_run, decode_set, score_dir, ...
# train_run keeps the BEST checkpoint of each run as RUN/final (finalize RUN best)
. "$here/../lib.sh"

stage=1
stop_stage=5
tiny=${TINY:-0}
exp=${EXP:-$repo/exp/commonvoice}
cv_root=${CV_ROOT:-}                          # folder holding one folder per language (clips/, train.tsv, ...)
languages=${LANGUAGES:-fr,de,es,it}           # pretraining languages
ft_languages=${FT_LANGUAGES:-}                # fine-tuning languages (default: --languages)
units=${UNITS:-phn,ltr}
ft_seconds=${FT_SECONDS:-3600}                # labelled audio per language (~1 h in the paper)
pretrained=${PRETRAINED:-}
pretrained_format=${PRETRAINED_FORMAT:-auto}  # auto | speech_ssl | hf | fairseq
ngpu=${NGPU:-}                                # default: all visible GPUs (0 = CPU)
device=${DEVICE:-auto}
precision=${PRECISION:-}                      # default: the config's on GPU, fp32 on CPU
nj=${NJ:-$(nproc 2>/dev/null || echo 2)}
seed=${SEED:-1}
pretrain_updates=${PRETRAIN_UPDATES:-}        # default: the config's
ft_updates=${FT_UPDATES:-}                    # default: the config's (13k)
threads=${THREADS:-}
decode_workers=${DECODE_WORKERS:-2}          # audio-loading processes per decode
pretrain_overrides=${PRETRAIN_OVERRIDES:-}   # extra key=value overrides for pretraining (space-separated)
ft_overrides=${FT_OVERRIDES:-}               # ... for fine-tuning, e.g. "finetune.new_head=true data.max_tokens=1600000"

if [ "$tiny" = 1 ]; then
  decode_workers=${DECODE_WORKERS:-0}
  exp=${EXP:-$repo/exp/commonvoice-tiny}
  languages=${LANGUAGES:-de,tr}
  ft_languages=${FT_LANGUAGES:-tr}
  ft_seconds=${FT_SECONDS:-30}
  pretrain_updates=${PRETRAIN_UPDATES:-2}
  ft_updates=${FT_UPDATES:-2}
  device=${DEVICE:-cpu}
fi

parse_options "$@"
ft_languages=${ft_languages:-$languages}

setup_env

conf=$here/conf
data=${DATA:-$exp/data}
IFS=, read -r -a pt_langs <<<"$languages"
IFS=, read -r -a ft_langs <<<"$ft_languages"
IFS=, read -r -a unit_list <<<"$units"
all_langs=$(printf '%s\n' "${pt_langs[@]}" "${ft_langs[@]}" | awk '!seen[$0]++' | paste -sd, -)
IFS=, read -r -a all_list <<<"$all_langs"
mkdir -p "$exp"

if run_stage 1; then
  if [ "$tiny" = 1 ]; then
    corpus=$exp/corpus
    if [ -f "$corpus/synth_info.json" ]; then
      log 1 "embedded corpus exists: $corpus"
    else
      log 1 "generating the embedded corpus ($all_langs, CommonVoice layout) into $corpus"
      ssl prepare synth --out "$corpus" --languages "$all_langs" --minutes-per-language "${TINY_MINUTES:-0.6}" \
        --librilight-scale 0 --babel-languages "" --seed "$seed" --workers "$nj" --no-progress --overwrite
    fi
    cv_root=$(ls -d "$corpus"/cv-corpus-* | head -1)
  fi
  [ -n "$cv_root" ] || { log 1 "set CV_ROOT=/path/to/cv-corpus-X (one folder per language), or TINY=1"; exit 2; }
  pw=$(( nj < 8 ? nj : 8 ))
  for l in "${all_list[@]}"; do
    if [ -f "$data/$l/.done" ]; then log 1 "$l prepared"; continue; fi
    [ -d "$cv_root/$l" ] || { log 1 "no language folder $cv_root/$l"; exit 2; }
    log 1 "preparing $l from $cv_root/$l"
    ssl prepare commonvoice --root "$cv_root/$l" --out "$data/$l" --lang "$l" --workers "$pw"
    touch "$data/$l/.done"
  done
  for l in "${ft_langs[@]}"; do
    [ -f "$data/$l/train-ft.tsv" ] && continue
    log 1 "$l: ${ft_seconds} s labelled subset of train -> $data/$l/train-ft.tsv"
    if ! ssl manifest subset "$data/$l/train.tsv" "$data/$l/.train-ft.tsv" "$ft_seconds" --seed "$seed"; then
      log 1 "$l: train holds less than $ft_seconds s; fine-tuning on all of it"
      for x in tsv wrd ltr phn; do [ -f "$data/$l/train.$x" ] && cp "$data/$l/train.$x" "$data/$l/.train-ft.$x"; done
    fi
    for x in wrd ltr phn tsv; do [ -f "$data/$l/.train-ft.$x" ] && mv "$data/$l/.train-ft.$x" "$data/$l/train-ft.$x"; done
  done
fi

resolve_start

if run_stage 2; then
  if [ -n "$pretrained" ]; then
    convert_pretrained
    log 2 "multilingual model: $start"
  else
    cfg=$conf/pretrain_xlsr.yaml
    tr=(); va=()
    for l in "${pt_langs[@]}"; do tr+=("$data/$l/train.tsv"); va+=("$data/$l/dev.tsv"); done
    uf=$(update_freq "$cfg")
    if [ -f "$start/model.safetensors" ]; then log 2 "pretraining done: $start"
    else log 2 "XLSR pretraining on ${#pt_langs[@]} languages ($languages, alpha sampling): $(hw) x update_freq $uf"; fi
    train_run pretrain "$exp/pretrain" "$uf" "$cfg" "data.train=[$(join "${tr[@]}")]" "data.valid=[$(join "${va[@]}")]"
  fi
fi

if run_stage 3; then
  [ -f "$start/model.safetensors" ] || [ -f "$start" ] || {
    log 3 "no multilingual model at $start (run stage 2 or pass --pretrained)"; exit 1; }
  for l in "${ft_langs[@]}"; do
    for u in "${unit_list[@]}"; do
      run=$exp/finetune/$l-$u
      cfg=$conf/finetune_xlsr_$u.yaml
      [ -f "$cfg" ] || { log 3 "no config $cfg (units: phn, ltr)"; exit 2; }
      uf=$(update_freq "$cfg")
      if [ -f "$run/final/model.safetensors" ]; then log 3 "$l-$u done"
      else log 3 "fine-tuning $l-$u on $data/$l/train-ft.tsv: $(hw) x update_freq $uf"; fi
      train_run finetune "$run" "$uf" "$cfg" "data.train=[$data/$l/train-ft.tsv]" "data.valid=[$data/$l/dev.tsv]" \
        "finetune.pretrained=$start"
    done
  done
fi

if run_stage 4; then
  for l in "${ft_langs[@]}"; do
    for u in "${unit_list[@]}"; do
      ck=$exp/finetune/$l-$u/final
      [ -f "$ck/model.safetensors" ] || { log 4 "no fine-tuned $l-$u"; continue; }
      labels=wrd; [ "$u" = phn ] && labels=phn
      for t in dev test; do
        out=$exp/decode/$l-$u/$t
        [ -f "$out/summary.json" ] && continue
        log 4 "$l-$u greedy $t"
        decode_set "$ck" "$data/$l/$t.tsv" "$out" "$labels"
      done
    done
  done
fi

if run_stage 5; then
  log 5 "scoring into $exp/results.md"
  for d in "$exp"/decode/*/*/; do
    case "$d" in */*-phn/*) score_dir "$d" phone ;; *) score_dir "$d" word char ;; esac
  done
  ssl results table "$exp" --recipe commonvoice
fi
