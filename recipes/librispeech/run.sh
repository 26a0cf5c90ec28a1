#!/usr/bin/env bash
# recipes/librispeech: wav2vec 2.0 on LibriSpeech + Libri-light, in numbered, idempotent, resumable stages.
#
#   recipes/librispeech/run.sh [--stage N] [--stop-stage M] [--name value ...]
#
#   1 prepare: LibriSpeech subsets + Libri-light limited supervision -> manifests, letters, one dictionary
#     (TINY=1 first generates an embedded corpus in the same layouts with `speech-ssl prepare synth`)
#   2 pretrained model: --pretrained CK (ours, an HF folder or a fairseq .pt, converted), else pretrain
#     conf/pretrain_$MODEL.yaml on train-960
#   3 fine-tune on each of --subsets (10m, 1h, 10h, 100h) with conf/finetune_${MODEL}_<subset>.yaml
#     (fairseq's numbers); update_freq = ceil(paper GPUs x accumulation / your GPU count)
#   4 word n-gram LM: --lm ARPA (+ --lexicon, else one made from the ARPA's unigrams), or
#     `speech-ssl lm build` on the training transcripts
#   5 decode dev/test clean/other: greedy, and LM beam search with weights tuned on the matching dev set
#   6 score (WER, CER) -> EXP/results.md (`speech-ssl results table`)
#
# Every option is an environment variable or a flag (--ngpu 8 == NGPU=8). A finished step is skipped when
# its output exists; training stages continue with --resume.
# Works with the installed `speech-ssl` or, without it, `python3 -m speech_ssl` from this checkout.
#
#   LIBRISPEECH=/data/LibriSpeech LIBRILIGHT=/data/librispeech_finetuning \
#     recipes/librispeech/run.sh --pretrained wav2vec_small.pt --lm 4-gram.arpa
#   TINY=1 recipes/librispeech/run.sh          # embedded corpus, tiny model, a few updates (CI)
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
recipe=librispeech
# parse_options, setup_env (py, ssl, ngpu, device), log, run_stage, train_run, decode_set, score_dir, ...
# train_run keeps the BEST checkpoint of each run as RUN/final (finalize RUN best)
. "$here/../lib.sh"

stage=1
stop_stage=6
tiny=${TINY:-0}
exp=${EXP:-$repo/exp/librispeech}
librispeech=${LIBRISPEECH:-}                 # the LibriSpeech folder (train-clean-100, dev-clean, ...)
librilight=${LIBRILIGHT:-}                   # librispeech_finetuning (1h/0..5, 9h); default: next to LIBRISPEECH
model=${MODEL:-base}                         # base | large: picks conf/pretrain_$MODEL.yaml, conf/finetune_${MODEL}_*.yaml
subsets=${SUBSETS:-10m,1h,10h,100h}
pretrained=${PRETRAINED:-}                   # checkpoint to fine-tune (skips pretraining)
pretrained_format=${PRETRAINED_FORMAT:-auto} # auto | speech_ssl | hf | fairseq
ngpu=${NGPU:-}                               # default: all visible GPUs (0 = CPU)
device=${DEVICE:-auto}
precision=${PRECISION:-}                     # default: the config's on GPU (fp16 as fairseq; bf16 for XLSR pretraining), fp32 on CPU
nj=${NJ:-$(nproc 2>/dev/null || echo 2)}
seed=${SEED:-1}
pretrain_updates=${PRETRAIN_UPDATES:-}       # default: the config's (400k)
ft_updates=${FT_UPDATES:-}                   # default: each config's (13k/13k/20k/80k)
lm=${LM:-}                                   # ARPA / KenLM binary (e.g. the official 4-gram.arpa)
lexicon=${LEXICON:-}                         # WORD W O R D | lines; default: from the LM's unigrams
lm_text=${LM_TEXT:-}                         # text for our own LM (default: the train transcripts)
lm_order=${LM_ORDER:-4}
beam=${BEAM:-500}
tune_lm_weights=${TUNE_LM_WEIGHTS:-0,0.5,1,1.5,2,2.5,3}
tune_word_scores=${TUNE_WORD_SCORES:--2,-1,0,1}
threads=${THREADS:-}
decode_workers=${DECODE_WORKERS:-2}          # audio-loading processes per decode
pretrain_overrides=${PRETRAIN_OVERRIDES:-}   # extra key=value overrides for pretraining (space-separated)
ft_overrides=${FT_OVERRIDES:-}               # ... for fine-tuning, e.g. "finetune.new_head=true data.max_tokens=1600000"

if [ "$tiny" = 1 ]; then
  decode_workers=${DECODE_WORKERS:-0}
  exp=${EXP:-$repo/exp/librispeech-tiny}
  pretrain_updates=${PRETRAIN_UPDATES:-2}
  ft_updates=${FT_UPDATES:-2}
  lm_order=${LM_ORDER:-3}
  beam=${BEAM:-20}
  tune_lm_weights=${TUNE_LM_WEIGHTS:-0,1}
  tune_word_scores=${TUNE_WORD_SCORES:-0}
  device=${DEVICE:-cpu}
fi

parse_options "$@"

setup_env

conf=$here/conf
data=${DATA:-$exp/data}                      # manifests (shareable between experiments)
IFS=, read -r -a subset_list <<<"$subsets"
mkdir -p "$exp"

if run_stage 1; then
  if [ "$tiny" = 1 ]; then
    corpus=$exp/corpus
    if [ -f "$corpus/synth_info.json" ]; then
      log 1 "embedded corpus exists: $corpus"
    else
      log 1 "generating the embedded corpus (LibriSpeech + Libri-light layouts) into $corpus"
      ssl prepare synth --out "$corpus" --languages en --english-minutes "${TINY_MINUTES:-1}" \
        --librilight-scale "${TINY_LIBRILIGHT_SCALE:-0.002}" --babel-languages "" --seed "$seed" \
        --workers "$nj" --no-progress --overwrite
    fi
    librispeech=$corpus/LibriSpeech
    librilight=$corpus/librispeech_finetuning
  fi
  [ -n "$librispeech" ] || { log 1 "set LIBRISPEECH=/path/to/LibriSpeech (or TINY=1)"; exit 2; }
  [ -n "$librilight" ] || librilight=$(dirname "$librispeech")/librispeech_finetuning
  pw=$(( nj < 8 ? nj : 8 ))
  if [ -f "$data/librispeech/.done" ]; then log 1 "LibriSpeech manifests exist"; else
    log 1 "LibriSpeech manifests from $librispeech"
    ssl prepare librispeech --root "$librispeech" --out "$data/librispeech" --workers "$pw"
    touch "$data/librispeech/.done"
  fi
  if [ -f "$data/librilight/.done" ]; then log 1 "Libri-light manifests exist"
  elif [ -d "$librilight" ]; then
    log 1 "Libri-light manifests from $librilight"
    ssl prepare librilight --root "$librilight" --out "$data/librilight" --workers "$pw"
    touch "$data/librilight/.done"
  else
    log 1 "no Libri-light folder at $librilight: only the 100h subset (train-clean-100) can be fine-tuned"
  fi
  if [ ! -f "$data/dict.ltr.txt" ]; then
    # fairseq's letter dictionary order for every subset (so models and heads are interchangeable), with the
    # counts of the training letters; a letter never seen keeps count 0.
    tr_ltr=()
    for f in "$data"/librispeech/train-*.ltr "$data"/librilight/train-10h.ltr; do
      [ -f "$f" ] && [ "${f##*/}" != train-960.ltr ] && tr_ltr+=("$f")
    done
    ssl manifest dict --symbols "| E T A O N I H S R D L U M W C F G Y P B V K ' X J Q Z" \
      --out "$data/dict.ltr.txt" "${tr_ltr[@]}" >/dev/null
  fi
fi

# the fine-tuning sets: 10m/1h/10h from Libri-light, 100h = train-clean-100
subset_manifest() {
  case "$1" in
    100h) echo "$data/librispeech/train-clean-100.tsv" ;;
    *) echo "$data/librilight/train-$1.tsv" ;;
  esac
}
dev_set() { [ -f "$data/librispeech/dev-other.tsv" ] && echo "$data/librispeech/dev-other.tsv" || echo "$data/librispeech/dev-clean.tsv"; }

# the checkpoint fine-tuning starts from: --pretrained as is (ours) or converted (HF, fairseq), else ours
resolve_start

if run_stage 2; then
  if [ -n "$pretrained" ]; then
    convert_pretrained
    log 2 "pretrained model: $start"
  else
    cfg=$conf/pretrain_$model.yaml
    tr=$data/librispeech/train-960.tsv
    [ -f "$tr" ] || tr=$(ls "$data"/librispeech/train-*.tsv | paste -sd, -)
    uf=$(update_freq "$cfg")
    if [ -f "$exp/pretrain/final/model.safetensors" ]; then log 2 "pretraining done: $exp/pretrain/final"
    else log 2 "pretraining $model on $tr: $(hw) x update_freq $uf"; fi
    train_run pretrain "$exp/pretrain" "$uf" "$cfg" "data.train=[$tr]" "data.valid=[$(dev_set)]"
  fi
fi

if run_stage 3; then
  [ -f "$start/model.safetensors" ] || [ -f "$start" ] || {
    log 3 "no pretrained model at $start (run stage 2 or pass --pretrained)"; exit 1; }
  for s in "${subset_list[@]}"; do
    run=$exp/finetune/$model-$s
    tr=$(subset_manifest "$s")
    cfg=$conf/finetune_${model}_$s.yaml
    [ -f "$cfg" ] || { log 3 "no config $cfg (subsets: 10m, 1h, 10h, 100h)"; exit 2; }
    [ -f "$tr" ] || { log 3 "no $tr: skipping $s (prepare Libri-light / LibriSpeech first)"; continue; }
    uf=$(update_freq "$cfg")
    if [ -f "$run/final/model.safetensors" ]; then log 3 "$model-$s done"
    else log 3 "fine-tuning $model-$s on $tr: $(hw) x update_freq $uf"; fi
    tiny_ft=(); [ "$tiny" = 1 ] && tiny_ft=("finetune.all_blank_grace_updates=1000")
    train_run finetune "$run" "$uf" "$cfg" "data.train=[$tr]" "data.valid=[$(dev_set)]" "finetune.pretrained=$start" \
      "finetune.dictionary=$data/dict.ltr.txt" "${tiny_ft[@]}"
  done
fi

if run_stage 4; then
  mkdir -p "$exp/lm"
  if [ -n "$lm" ]; then
    if [ -n "$lexicon" ]; then
      log 4 "LM $lm with lexicon $lexicon"
    elif [ -f "$exp/lm/lexicon.txt" ]; then
      log 4 "LM $lm, lexicon exists: $exp/lm/lexicon.txt"
    else
      log 4 "letter lexicon of the unigrams of $lm -> $exp/lm/lexicon.txt"
      ssl lm lexicon --arpa "$lm" --dict "$data/dict.ltr.txt" --out "$exp/lm/lexicon.txt" || {
        log 4 "no lexicon from $lm (an ARPA text file is needed): pass --lexicon"; exit 1; }
    fi
  elif [ -f "$exp/lm/lm.arpa" ]; then
    log 4 "LM exists: $exp/lm/lm.arpa"
  else
    text=$lm_text
    if [ -z "$text" ]; then
      text=$exp/lm/train.txt
      # the transcripts of every training subset, never dev/test
      cat $(ls "$data"/librispeech/train-*.wrd | grep -v '/train-960.wrd$') > "$text.tmp" && mv "$text.tmp" "$text"
    fi
    log 4 "word $lm_order-gram on $text"
    ssl lm build --text "$text" --order "$lm_order" --out "$exp/lm/lm.arpa" --lexicon-out "$exp/lm/lexicon.txt" --upper
  fi
fi
if [ -n "$lm" ]; then
  lexicon=${lexicon:-$exp/lm/lexicon.txt}
elif [ -f "$exp/lm/lm.arpa" ]; then
  lm=$exp/lm/lm.arpa; lexicon=$exp/lm/lexicon.txt
fi

if run_stage 5; then
  tests=()
  for t in dev-clean dev-other test-clean test-other; do [ -f "$data/librispeech/$t.tsv" ] && tests+=("$t"); done
  for s in "${subset_list[@]}"; do
    name=$model-$s; ck=$exp/finetune/$name/final
    [ -f "$ck/model.safetensors" ] || { log 5 "no fine-tuned $name"; continue; }
    for t in "${tests[@]}"; do
      out=$exp/decode/$name/greedy/$t
      [ -f "$out/summary.json" ] && continue
      log 5 "$name greedy $t"
      decode_set "$ck" "$data/librispeech/$t.tsv" "$out" wrd
    done
    [ -n "$lm" ] || continue
    for t in "${tests[@]}"; do
      [ "${t%%-*}" = dev ] || continue
      out=$exp/decode/$name/lm/$t
      [ -f "$out/summary.json" ] && continue
      log 5 "$name LM beam search on $t, tuning lm_weight x word_score"
      decode_set "$ck" "$data/librispeech/$t.tsv" "$out" wrd --lm "$lm" --lexicon "$lexicon" --beam "$beam" --tune \
        --tune-lm-weights="$tune_lm_weights" --tune-word-scores="$tune_word_scores"
    done
    for t in "${tests[@]}"; do
      [ "${t%%-*}" = test ] || continue
      out=$exp/decode/$name/lm/$t
      [ -f "$out/summary.json" ] && continue
      dev=$exp/decode/$name/lm/dev-${t#test-}/summary.json
      [ -f "$dev" ] || dev=$(ls "$exp"/decode/"$name"/lm/dev-*/summary.json | head -1)
      read -r lw ws < <(tuned_weights "$dev")
      log 5 "$name LM beam search on $t (lm_weight $lw, word_score $ws from $(basename "$(dirname "$dev")"))"
      decode_set "$ck" "$data/librispeech/$t.tsv" "$out" wrd --lm "$lm" --lexicon "$lexicon" --beam "$beam" \
        --lm-weight "$lw" --word-score "$ws"
    done
  done
fi

if run_stage 6; then
  log 6 "scoring into $exp/results.md"
  for d in "$exp"/decode/*/*/*/; do score_dir "$d" word char; done
  ssl results table "$exp" --recipe librispeech
fi
