#!/usr/bin/env bash
# recipes/synth: wav2vec 2.0 / XLSR on the embedded eSpeak corpus, in numbered, idempotent, resumable stages.
#
#   recipes/synth/run.sh [--stage N] [--stop-stage M] [--name value ...]
#
#   1 generate the corpus (speech-ssl prepare synth)          5 word n-gram LM (speech-ssl lm build)
#   2 manifests: LibriSpeech, Libri-light, CommonVoice;        6 decode test: greedy, and LM beam search
#     the 10-minute / 1-hour English labelled subsets            with weights tuned on dev
#   3 multilingual pretraining (all languages but LEFT_OUT;     7 score (WER/CER, PER) -> EXP/results.md
#     MONO=1 also English only, MONO=only just that one)       8 LEFT_OUT over SEEDS: every init, escape rate,
#                                                                test PER mean and spread -> EXP/seeds_LEFT_OUT/
#   4 fine-tuning: English letters on 10 min (pretrained with the conv encoder frozen and trained, scratch,
#     random-frozen control) and 1 h (scratch);
#     LEFT_OUT on phones (pretrained, scratch, random-frozen); after MONO=1 also English-only pretrained for both
#     CONDITIONS=en-1h-scratch,fi-pretrained runs only those
#
# Every option is an environment variable or a flag (--pretrain-updates 3000 == PRETRAIN_UPDATES=3000).
# A finished step is skipped when its output exists; training stages continue with --resume.
# Works with the installed `speech-ssl` or, without it, `python3 -m speech_ssl` from this checkout.
#
# CI / a quick look: TINY=1 recipes/synth/run.sh (minimum sizes, ~1-2 min on 2 cores).
# GPU box (stage 3 for the shipped checkpoint): DEVICE=cuda PUBLISH=1 recipes/synth/run.sh --stop-stage 3
set -euo pipefail

orig_args="$0 $*"
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
recipe=synth
# parse_options, setup_env (py, ssl, device), log, run_stage, finalize, tuned_weights, score_dir. Unlike the
# other recipes (best checkpoint, train_run), synth keeps the LAST checkpoint of each run as RUN/final
# (finalize RUN last): its runs are fixed budgets compared at their end.
. "$here/../lib.sh"

stage=1
stop_stage=8
tiny=${TINY:-0}
exp=${EXP:-$repo/exp/synth}
nj=${NJ:-$(nproc 2>/dev/null || echo 2)}
device=${DEVICE:-auto}                       # cpu | cuda | auto
seed=${SEED:-1}
languages=${LANGUAGES:-en,de,fr,es,it,nl,pt,ru,sv,tr,et,fi}
left_out=${LEFT_OUT:-fi}                     # never seen in pretraining (et, its neighbour, is); fine-tuned on phones
left_out_eval_minutes=${LEFT_OUT_EVAL_MINUTES:-2}  # its dev and test audio, each (a seed spread needs ~35 utterances)
english_minutes=${ENGLISH_MINUTES:-80}       # LibriSpeech part (train ~80%): holds the 10 min and 1 h subsets
minutes_per_language=${MINUTES_PER_LANGUAGE:-10}
librilight_scale=${LIBRILIGHT_SCALE:-0.05}   # Libri-light layout (1h x 0.05 = 3 min ...): extra unlabelled English
ten_min=${TEN_MIN_SECONDS:-600}
one_hour=${ONE_HOUR_SECONDS:-3600}
pretrain_updates=${PRETRAIN_UPDATES:-3000}
pretrain_seconds=${PRETRAIN_SECONDS:-0}      # > 0: SIGTERM after this many seconds (the trainer saves, then stops)
pretrain_max_tokens=${PRETRAIN_MAX_TOKENS:-} # default: 192000 (8 x 1.5 s crops) on CPU, 1536000 (64 x 1.5 s) on CUDA
pretrain_lr=${PRETRAIN_LR:-2e-3}
pretrain_overrides=${PRETRAIN_OVERRIDES:-}   # stage 3: extra overrides, space-separated (e.g. a larger model:
                                             # "model.overrides.encoder_layers=8 model.overrides.encoder_embed_dim=384")
pretrain_workers=${PRETRAIN_WORKERS:-}       # data loader processes (default: 0 on CPU, 6 on CUDA)
ft_updates=${FT_UPDATES:-1500}
ft_left_out_updates=${FT_LEFT_OUT_UPDATES:-800}
lm_order=${LM_ORDER:-3}
# stage 6's (lm_weight, word_score) grid, searched on dev-clean. Up to 3 the best weight was always the largest
# (decode --tune warns about that); 4-6 let the search find the turn, and scratch models wanted word scores up to 2+
tune_lm_weights=${TUNE_LM_WEIGHTS:-0,1,2,3,4,5,6}
tune_word_scores=${TUNE_WORD_SCORES:--2,-1,0,1,2,3,4}
publish=${PUBLISH:-0}                        # 1: ship the pretrained model: speech_ssl/demo/assets/pretrained/
mono=${MONO:-0}                              # 1: also pretrain on English only (-> pretrained_mono/); only: just that
                                             # one (run MONO=0 and MONO=only side by side with THREADS=1 each)
case "$mono" in 0|1|only) ;; *) echo "run.sh: MONO is 0, 1 or only, not '$mono'" >&2; exit 2 ;; esac
threads=${THREADS:-}                         # OMP threads for CPU training (default: torch's choice)
conditions=${CONDITIONS:-all}                # stage 4: all, or a comma list of run names (en-10m-pretrained,...)
ft_overrides=${FT_OVERRIDES:-}               # stage 4: extra overrides for every run, space-separated (last word wins)
# stage 4: dropout in the Transformer (residual, attention and FFN activations) when English letters are fine-tuned
# from a pretrained model (and its random-frozen control, which follows that recipe). At 1,500 updates on 10 min the
# pretrained model overfits without it (dev loss rising from update ~700); 0.1 gave 43.0 +- 0.2 WER + LM vs 46.2 +- 1.6
# (seeds 1-3). From scratch it changed nothing on dev (seeds 1-3), nor on the left-out fi (test PER 44.6 vs 44.1), so
# both keep 0 (recipes/synth/README.md, "Dropout when fine-tuning a pretrained model")
ft_pretrained_dropout=${FT_PRETRAINED_DROPOUT:-0.1}
seeds=${SEEDS:-1-5}                          # stage 8: fine-tuning seeds per init (e.g. 1-10)
sweep_jobs=${SWEEP_JOBS:-2}                  # stage 8: runs side by side (1 torch thread each)

if [ "$tiny" = 1 ]; then
  languages=${LANGUAGES:-en,de,fi}
  english_minutes=${ENGLISH_MINUTES:-2.5}
  minutes_per_language=${MINUTES_PER_LANGUAGE:-0.6}
  librilight_scale=${LIBRILIGHT_SCALE:-0.002}
  ten_min=${TEN_MIN_SECONDS:-40}
  one_hour=${ONE_HOUR_SECONDS:-80}
  pretrain_updates=${PRETRAIN_UPDATES:-3}
  pretrain_max_tokens=${PRETRAIN_MAX_TOKENS:-96000}
  ft_updates=${FT_UPDATES:-3}
  ft_left_out_updates=${FT_LEFT_OUT_UPDATES:-3}
  left_out_eval_minutes=${LEFT_OUT_EVAL_MINUTES:-0.2}
  seeds=${SEEDS:-1}
  tune_lm_weights=${TUNE_LM_WEIGHTS:-0,1}
  tune_word_scores=${TUNE_WORD_SCORES:--1,0}
  exp=${EXP:-$repo/exp/synth-tiny}
fi

parse_options "$@"

setup_env  # device auto|cpu|cuda -> cuda when a GPU is visible, else cpu
if [ "$device" = cuda ]; then
  pretrain_max_tokens=${pretrain_max_tokens:-1536000}
  pretrain_workers=${pretrain_workers:-6}
else
  pretrain_max_tokens=${pretrain_max_tokens:-192000}
  pretrain_workers=${pretrain_workers:-0}
fi

conf=$here/conf
corpus=$exp/corpus
data=$exp/data
IFS=, read -r -a langs <<<"$languages"
mkdir -p "$exp"

if run_stage 1; then
  if [ -f "$corpus/synth_info.json" ]; then
    log 1 "corpus exists: $corpus"
  else
    log 1 "generating ${#langs[@]} languages into $corpus ($nj workers)"
    ssl prepare synth --out "$corpus" --languages "$languages" --english-minutes "$english_minutes" \
      --minutes-per-language "$minutes_per_language" --librilight-scale "$librilight_scale" \
      --babel-languages "" --seed "$seed" --workers "$nj" --no-progress --overwrite \
      ${left_out:+--eval-minutes "$left_out=$left_out_eval_minutes"}
  fi
fi

if run_stage 2; then
  log 2 "manifests into $data"
  pw=$(( nj < 8 ? nj : 8 ))
  [ -f "$data/librispeech/test-clean.tsv" ] || \
    ssl prepare librispeech --root "$corpus/LibriSpeech" --out "$data/librispeech" --workers "$pw"
  if [ -d "$corpus/librispeech_finetuning" ] && [ ! -f "$data/librilight/train-1h.tsv" ]; then
    ssl prepare librilight --root "$corpus/librispeech_finetuning" --out "$data/librilight" --workers "$pw"
  fi
  cv_root=$(ls -d "$corpus"/cv-corpus-* 2>/dev/null | head -1 || true)
  for l in "${langs[@]}"; do
    [ "$l" = en ] && continue
    [ -f "$data/cv/$l/test.tsv" ] || ssl prepare commonvoice --root "$cv_root/$l" --out "$data/cv/$l" --workers "$pw"
  done
  for s in "10m:$ten_min" "1h:$one_hour"; do
    name=${s%%:*}; secs=${s#*:}
    [ -f "$data/en/train-$name.tsv" ] && continue
    ssl manifest subset "$data/librispeech/train-clean-100.tsv" "$data/en/train-$name.tsv" "$secs" \
      --seed "$seed" || log 2 "no English $name subset (not enough audio; raise ENGLISH_MINUTES)"
  done
fi

pretrain_train() {
  local tr="$data/librispeech/train-clean-100.tsv"
  [ -f "$data/librilight/train-10h.tsv" ] && tr="$tr,$data/librilight/train-10h.tsv"
  for l in "${langs[@]}"; do
    [ "$l" = en ] || [ "$l" = "$left_out" ] || tr="$tr,$data/cv/$l/train.tsv"
  done
  echo "[$tr]"
}

pretrain_model() {  # run_name train_list publish_dir: stage 3 for one model (skipped when it is done)
  local name=$1 train=$2 dest=$3
  local run=$exp/$name start cmd pid timer rc wall
  cmd=(ssl pretrain "$conf/pretrain.yaml" "data.train=$train"
       "data.valid=[$data/librispeech/dev-clean.tsv]" "device=$device" "seed=$seed"
       "optim.max_update=$pretrain_updates" "optim.lr=$pretrain_lr" "data.max_tokens=$pretrain_max_tokens"
       "data.num_workers=$pretrain_workers")
  if [ "$tiny" = 1 ]; then
    cmd+=("schedule.warmup_updates=1" "logging.log_interval=1" "logging.valid_interval_updates=0"
          "checkpoint.save_interval_updates=0" "data.max_sample_size=16000")
  fi
  local user=()  # last: the user's words win
  read -r -a user <<< "$pretrain_overrides"
  cmd+=("${user[@]}")
  cmd+=(--run-dir "$run" --resume)
  if [ -f "$run/final/pretrain_info.json" ] && "$py" -c 'import json,sys; sys.exit(json.load(open(sys.argv[1]))["updates"] < int(sys.argv[2]))' \
       "$run/final/pretrain_info.json" "$pretrain_updates" 2>/dev/null; then
    # finished: the trainer checks these settings against the run's (done at once, or refused naming the
    # differences: other settings need another EXP)
    final_unchecked "$run" || "${cmd[@]}" || { rc=$?; log 3 "$name: finished with other settings (exit $rc)"; exit "$rc"; }
    log 3 "$name done: $run/final"
    [ "$publish" = 1 ] && publish_model "$run" "$dest"
    return 0
  fi
  log 3 "$name on $device: $pretrain_updates updates, max_tokens $pretrain_max_tokens, train $train"
  start=$(date +%s)
  set +e
  if [ "$pretrain_seconds" != 0 ]; then
    ( "${cmd[@]}" ) & pid=$!
    ( sleep "$pretrain_seconds"; kill -TERM "$pid" 2>/dev/null ) & timer=$!
    wait "$pid"; rc=$?
    # the trainer exits 75 when a signal stopped it; that is the budget's end only if our timer sent it
    if kill -0 "$timer" 2>/dev/null; then kill "$timer" 2>/dev/null; elif [ "$rc" = 75 ]; then rc=0; fi
  else
    "${cmd[@]}"; rc=$?
  fi
  set -e
  [ "$rc" = 0 ] || { log 3 "$name failed (exit $rc)"; exit "$rc"; }
  wall=$(( $(date +%s) - start ))
  finalize "$run" last
  ssl results pretrain-info "$run" --wall "$wall" --device "$device" --train="$train" \
    --command="$orig_args (TINY=$tiny NJ=$nj PRETRAIN_UPDATES=$pretrain_updates PRETRAIN_MAX_TOKENS=$pretrain_max_tokens PRETRAIN_SECONDS=$pretrain_seconds${pretrain_overrides:+ PRETRAIN_OVERRIDES=$pretrain_overrides})"
  [ "$publish" = 1 ] && publish_model "$run" "$dest"
  return 0
}

publish_model() {  # run_dir dest: RUN/final (weights, config, pretrain_info), its run config and log (PUBLISH=1)
  rm -rf "$2.tmp" && cp -r "$1/final" "$2.tmp"
  cp "$1/config.yaml" "$2.tmp/run_config.yaml"
  cp "$1/log.jsonl" "$2.tmp/pretrain_log.jsonl"
  rm -rf "$2" && mv "$2.tmp" "$2"
  log 3 "published $2 (fill in its PROVENANCE.md and recipes/synth/README.md from pretrain_info.json)"
}

# The shipped checkpoints are package data of speech_ssl.demo (recipes/synth/pretrained* link to them).
assets=$(cd "$here/../.." && pwd)/speech_ssl/demo/assets
if run_stage 3; then
  [ "$mono" = only ] || pretrain_model pretrain "$(pretrain_train)" "$assets/pretrained"
  if [ "$mono" = 1 ] || [ "$mono" = only ]; then  # the same budget on English only: the demo's monolingual comparison for $left_out
    en_train="$data/librispeech/train-clean-100.tsv"
    [ -f "$data/librilight/train-10h.tsv" ] && en_train="$en_train,$data/librilight/train-10h.tsv"
    pretrain_model pretrain_mono "[$en_train]" "$assets/pretrained_mono"
  fi
fi

pretrained=${PRETRAINED:-$exp/pretrain/final}
pretrained_mono=${PRETRAINED_MONO:-$exp/pretrain_mono/final}

finetune() {  # name train_tsv labels updates extra-overrides...
  local name=$1 tr=$2 labels=$3 updates=$4; shift 4
  local run=$exp/finetune/$name valid
  valid=$(dirname "$tr")/dev.tsv
  case "$tr" in */en/*) valid=$data/librispeech/dev-clean.tsv ;; esac
  final_unchecked "$run" && return 0
  # a finished run goes through the trainer too: done at once, or refused when these settings differ from its
  if [ -f "$run/final/model.safetensors" ]; then log 4 "$name done"; else log 4 "fine-tuning $name ($updates updates)"; fi
  local extra=() user=()
  [ "$tiny" = 1 ] && extra=("logging.log_interval=1" "logging.valid_interval_updates=0" "checkpoint.save_interval_updates=0")
  read -r -a user <<< "$ft_overrides"
  ssl finetune "$conf/finetune.yaml" "data.train=[$tr]" "data.valid=[$valid]" "finetune.labels=$labels" \
    "optim.max_update=$updates" "device=$device" "seed=$seed" "$@" "${extra[@]}" "${user[@]}" --run-dir "$run" --resume
  finalize "$run" last
}

if run_stage 4; then
  [ -f "$pretrained/model.safetensors" ] || { log 4 "no pretrained model at $pretrained (run stage 3 or set PRETRAINED)"; exit 1; }
  # the runs of this stage (each `want NAME` below must be one): CONDITIONS is checked against them first
  known=(en-10m-pretrained en-10m-pretrained-convtrain en-10m-pretrained-mono-convtrain en-10m-scratch
         en-10m-random-frozen en-1h-scratch "$left_out-pretrained" "$left_out-scratch" "$left_out-random-frozen"
         "$left_out-pretrained-mono")
  if [ "$conditions" != all ]; then  # a mistyped name would run nothing and say nothing
    IFS=, read -r -a asked <<< "$conditions"
    for c in "${asked[@]}"; do
      [[ " ${known[*]} " == *" $c "* ]] || { log 4 "CONDITIONS: no run named '$c' (runs: all, ${known[*]})"; exit 2; }
    done
  fi
  rnd=$exp/random_init/s$seed
  ssl init "$pretrained" "$rnd" --seed "$seed" >/dev/null
  scratch=("finetune.pretrained=$rnd" "model.overrides.feature_grad_mult=1.0" "finetune.freeze_finetune_updates=0")
  want() {
    [[ " ${known[*]} " == *" $1 "* ]] || { log 4 "run $1 is missing from the list of runs (known)"; exit 3; }
    [ "$conditions" = all ] || [[ ",$conditions," == *",$1,"* ]]
  }
  # the English-only model (MONO=1 in stage 3) exists; missing, it is an error when CONDITIONS names a run of it
  have_mono() {
    [ -f "$pretrained_mono/model.safetensors" ] && return 0
    if [ "$conditions" != all ]; then log 4 "no monolingual model at $pretrained_mono (MONO=1 in stage 3)"; exit 1; fi
    return 1
  }
  en10=$data/en/train-10m.tsv; en1h=$data/en/train-1h.tsv; lo=$data/cv/$left_out/train.tsv
  d=$ft_pretrained_dropout
  pt_reg=("model.overrides.dropout=$d" "model.overrides.attention_dropout=$d" "model.overrides.activation_dropout=$d")
  want en-10m-pretrained && finetune en-10m-pretrained "$en10" ltr "$ft_updates" "finetune.pretrained=$pretrained" \
    "${pt_reg[@]}"
  # the same with the conv encoder trained too (fairseq freezes it; at this scale training it halves the WER)
  want en-10m-pretrained-convtrain && finetune en-10m-pretrained-convtrain "$en10" ltr "$ft_updates" \
    "finetune.pretrained=$pretrained" "model.overrides.feature_grad_mult=1.0" "${pt_reg[@]}"
  # the paper's setting: pretrained on English only
  want en-10m-pretrained-mono-convtrain && have_mono && finetune en-10m-pretrained-mono-convtrain "$en10" ltr \
    "$ft_updates" "finetune.pretrained=$pretrained_mono" "model.overrides.feature_grad_mult=1.0" "${pt_reg[@]}"
  want en-10m-scratch && finetune en-10m-scratch "$en10" ltr "$ft_updates" "${scratch[@]}"
  want en-10m-random-frozen && finetune en-10m-random-frozen "$en10" ltr "$ft_updates" "finetune.pretrained=$rnd" "${pt_reg[@]}"
  if want en-1h-scratch; then
    if [ -f "$en1h" ]; then finetune en-1h-scratch "$en1h" ltr "$ft_updates" "${scratch[@]}"
    else log 4 "no $en1h: en-1h-scratch skipped (raise ENGLISH_MINUTES)"; fi
  fi
  want "$left_out-pretrained" && finetune "$left_out-pretrained" "$lo" phn "$ft_left_out_updates" "finetune.pretrained=$pretrained"
  want "$left_out-scratch" && finetune "$left_out-scratch" "$lo" phn "$ft_left_out_updates" "${scratch[@]}"
  want "$left_out-random-frozen" && finetune "$left_out-random-frozen" "$lo" phn "$ft_left_out_updates" "finetune.pretrained=$rnd"
  # English-only pretraining with the same budget
  want "$left_out-pretrained-mono" && have_mono && finetune "$left_out-pretrained-mono" "$lo" phn \
    "$ft_left_out_updates" "finetune.pretrained=$pretrained_mono"
fi

if run_stage 5; then
  mkdir -p "$exp/lm"
  if [ ! -f "$exp/lm/en.arpa" ]; then
    # LM text without any dev or test sentence: the corpus's lm_text (sentences no split reads) + train transcripts
    log 5 "word $lm_order-gram on the corpus's LM text and the English train transcripts"
    cat "$corpus/lm_text/en.txt" "$data/librispeech/train-clean-100.wrd" > "$exp/lm/en.txt.tmp"
    mv "$exp/lm/en.txt.tmp" "$exp/lm/en.txt"
    ssl lm build --text "$exp/lm/en.txt" --order "$lm_order" --out "$exp/lm/en.arpa" \
      --lexicon-out "$exp/lm/en.lexicon.txt" --upper
  fi
  [ -f "$exp/lm/eval_test.json" ] || \
    ssl lm eval --lm "$exp/lm/en.arpa" --text "$data/librispeech/test-clean.wrd" --json "$exp/lm/eval_test.json"
fi

if run_stage 6; then
  for run in "$exp"/finetune/*/; do
    name=$(basename "$run"); ck=$run/final; out=$exp/decode/$name
    [ -f "$ck/model.safetensors" ] || continue
    case "$name" in
      en-*) test=$data/librispeech/test-clean.tsv; dev=$data/librispeech/dev-clean.tsv; labels=wrd ;;
      *) l=${name%%-*}; test=$data/cv/$l/test.tsv; dev=; labels=phn ;;
    esac
    [ -f "$out/greedy/summary.json" ] || \
      ssl decode --checkpoint "$ck" --manifest "$test" --out "$out/greedy" --labels "$labels" --device "$device"
    if [ -n "$dev" ] && [ -f "$exp/lm/en.arpa" ]; then
      [ -f "$out/tune/summary.json" ] || \
        ssl decode --checkpoint "$ck" --manifest "$dev" --out "$out/tune" --labels "$labels" --device "$device" \
          --lm "$exp/lm/en.arpa" --lexicon "$exp/lm/en.lexicon.txt" --tune \
          --tune-lm-weights="$tune_lm_weights" --tune-word-scores="$tune_word_scores"
      read -r lw ws < <(tuned_weights "$out/tune/summary.json")
      [ -f "$out/lm/summary.json" ] || \
        ssl decode --checkpoint "$ck" --manifest "$test" --out "$out/lm" --labels "$labels" --device "$device" \
          --lm "$exp/lm/en.arpa" --lexicon "$exp/lm/en.lexicon.txt" --lm-weight "$lw" --word-score "$ws"
    fi
  done
fi

if run_stage 7; then
  log 7 "scoring into $exp/results.md"
  for d in "$exp"/decode/*/*/; do
    case "$d" in */en-*) score_dir "$d" char ;; *) score_dir "$d" phone ;; esac
  done
  ssl results table "$exp" --recipe synth
  rc=0
  [ ! -d "$exp/finetune" ] || ssl results curves "$exp/finetune" --out "$exp/finetune_curves.png" || rc=$?
  [ "$rc" = 0 ] || [ "$rc" = 3 ] || exit "$rc"  # 3: no matplotlib (the optional [plot] extra), no curves
fi

if run_stage 8; then  # the left-out language over seeds: escape rate and spread of every init (escape_sweep.py)
  lo_dir=$data/cv/$left_out
  [ -f "$pretrained/model.safetensors" ] || { log 8 "no pretrained model at $pretrained (run stage 3 or set PRETRAINED)"; exit 1; }
  sweep=(--train "$lo_dir/train.tsv" --valid "$lo_dir/dev.tsv" --test "$lo_dir/test.tsv" --labels phn
         --pretrained "$pretrained" --updates "$ft_left_out_updates" --seeds "$seeds" --jobs "$sweep_jobs"
         --out "$exp/seeds_$left_out" --common "device=$device" --setting "multilingual:")
  [ -f "$pretrained_mono/model.safetensors" ] && sweep+=(--setting "english-only:finetune.pretrained=$pretrained_mono")
  sweep+=(--setting "scratch:finetune.pretrained={random},model.overrides.feature_grad_mult=1.0,finetune.freeze_finetune_updates=0"
          --setting "random-frozen:finetune.pretrained={random}")
  log 8 "$left_out over seeds $seeds, every init (escape_sweep.py)"
  "$py" "$here/escape_sweep.py" "${sweep[@]}" >/dev/null
  log 8 "wrote $exp/seeds_$left_out/summary.md"
fi
