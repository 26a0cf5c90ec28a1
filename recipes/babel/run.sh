#!/usr/bin/env bash
# recipes/babel: per-language WER fine-tuning of a multilingual (XLSR-style) model on IARPA BABEL, in
# numbered, idempotent, resumable stages.
#
#   recipes/babel/run.sh [--stage N] [--stop-stage M] [--name value ...]
#
#   1 prepare each pack of --packs (`speech-ssl prepare babel`: utterances cut by the transcript timestamps,
#     8 -> 16 kHz, words, letters) and hold out every 10th training conversation as the validation set
#     (train-ft / valid, `speech-ssl manifest split`); BABEL's dev set is the test set (TINY=1 first
#     generates an embedded corpus in the LDC BABEL layout with `speech-ssl prepare synth`)
#   2 multilingual model: --pretrained CK (ours, an HF folder such as XLSR-53, or a fairseq .pt; converted),
#     else XLSR pretraining (recipes/commonvoice/conf/pretrain_xlsr.yaml) on the training audio of every
#     pack with alpha sampling
#   3 fine-tune each language of --ft-languages on letters with conf/finetune_xlsr.yaml (26k updates);
#     update_freq = ceil(4 x 5 / your GPU count)
#   4 word n-gram LM per language on its train-ft transcripts (`speech-ssl lm build`), or --lm-dir DIR
#     holding LANG.arpa (+ LANG.lexicon.txt)
#   5 decode valid and dev: greedy, and LM beam search with weights tuned on valid
#   6 score (WER, CER) -> EXP/results.md (`speech-ssl results table`)
#
# Every option is an environment variable or a flag (--packs ... == PACKS=...). A finished step is skipped
# when its output exists; training stages continue with --resume.
#
#   PACKS=tr:/data/IARPA-babel105b-v0.5,sw:/data/IARPA-babel202b-v1.0d recipes/babel/run.sh \
#     --pretrained wav2vec2-large-xlsr-53
#   TINY=1 recipes/babel/run.sh                # embedded corpus, tiny model, a few updates (CI)
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
recipe=babel
# parse_options, setup_env (py, ssl, ngpu, device), log, run_stage, train_run, decode_set, score_dir, ...
# train_run keeps the BEST checkpoint of each run as RUN/final (finalize RUN best)
. "$here/../lib.sh"

stage=1
stop_stage=6
tiny=${TINY:-0}
exp=${EXP:-$repo/exp/babel}
packs=${PACKS:-}                              # LANG:PACK_DIR,... (PACK_DIR holds conversational/{training,dev})
ft_languages=${FT_LANGUAGES:-}                # default: every language of --packs
segments=${SEGMENTS:-0}                       # 1: no cut audio, segment rows read from the .sph (prepare --segments)
valid_every=${VALID_EVERY:-10}                # every Nth training conversation is held out for validation
pretrained=${PRETRAINED:-}
pretrained_format=${PRETRAINED_FORMAT:-auto}  # auto | speech_ssl | hf | fairseq
ngpu=${NGPU:-}                                # default: all visible GPUs (0 = CPU)
device=${DEVICE:-auto}
precision=${PRECISION:-}                      # default: the config's on GPU, fp32 on CPU
nj=${NJ:-$(nproc 2>/dev/null || echo 2)}
seed=${SEED:-1}
pretrain_updates=${PRETRAIN_UPDATES:-}
ft_updates=${FT_UPDATES:-}                    # default: the config's (26k)
lm_dir=${LM_DIR:-}                            # LANG.arpa (+ LANG.lexicon.txt) per language instead of our own
lm_order=${LM_ORDER:-3}
beam=${BEAM:-500}
tune_lm_weights=${TUNE_LM_WEIGHTS:-0,0.5,1,1.5,2,2.5,3}
tune_word_scores=${TUNE_WORD_SCORES:--2,-1,0,1}
threads=${THREADS:-}
decode_workers=${DECODE_WORKERS:-2}          # audio-loading processes per decode
pretrain_overrides=${PRETRAIN_OVERRIDES:-}   # extra key=value overrides for pretraining (space-separated)
ft_overrides=${FT_OVERRIDES:-}               # ... for fine-tuning, e.g. "finetune.new_head=true data.max_tokens=1600000"

if [ "$tiny" = 1 ]; then
  decode_workers=${DECODE_WORKERS:-0}
  exp=${EXP:-$repo/exp/babel-tiny}
  ft_languages=${FT_LANGUAGES:-tr}
  pretrain_updates=${PRETRAIN_UPDATES:-2}
  ft_updates=${FT_UPDATES:-2}
  beam=${BEAM:-20}
  tune_lm_weights=${TUNE_LM_WEIGHTS:-0,1}
  tune_word_scores=${TUNE_WORD_SCORES:-0}
  device=${DEVICE:-cpu}
fi

parse_options "$@"

setup_env

conf=$here/conf
data=${DATA:-$exp/data}
mkdir -p "$exp"

if [ "$tiny" = 1 ]; then
  corpus=$exp/corpus
  if run_stage 1 && [ ! -f "$corpus/synth_info.json" ]; then
    log 1 "generating the embedded corpus (tr, fi in the BABEL layout) into $corpus"
    ssl prepare synth --out "$corpus" --languages tr,fi --babel-languages tr,fi --minutes-per-language 0.2 \
      --babel-minutes "${TINY_MINUTES:-0.8}" --librilight-scale 0 --seed "$seed" --workers "$nj" --no-progress \
      --overwrite
  fi
  if [ -z "$packs" ] && [ -f "$corpus/synth_info.json" ]; then
    packs=$("$py" -c 'import json,sys; c=json.load(open(sys.argv[1]+"/synth_info.json"))["babel_codes"]; print(",".join(f"{l}:{sys.argv[1]}/IARPA-babel{n}b-v0.5" for l,n in sorted(c.items())))' "$corpus")
  fi
fi
[ -n "$packs" ] || { echo "run.sh: set PACKS=LANG:/path/to/IARPA-babelNNN...,... (or TINY=1)" >&2; exit 2; }
langs=(); declare -A pack_of=()
IFS=, read -r -a pairs <<<"$packs"
for p in "${pairs[@]}"; do
  case "$p" in *:*) ;; *) echo "run.sh: --packs entry '$p' is not LANG:PACK_DIR" >&2; exit 2 ;; esac
  langs+=("${p%%:*}"); pack_of[${p%%:*}]=${p#*:}
done
[ -n "$ft_languages" ] || ft_languages=$(join "${langs[@]}")
IFS=, read -r -a ft_langs <<<"$ft_languages"
for l in "${ft_langs[@]}"; do
  [ -n "${pack_of[$l]:-}" ] || { echo "run.sh: fine-tuning language $l has no pack in --packs" >&2; exit 2; }
done

if run_stage 1; then
  pw=$(( nj < 8 ? nj : 8 ))
  for l in "${langs[@]}"; do
    d=$data/$l
    if [ -f "$d/.done" ]; then log 1 "$l prepared"; else
      log 1 "preparing $l from ${pack_of[$l]}"
      extra=(); [ "$segments" = 1 ] && extra=(--segments)
      ssl prepare babel --root "${pack_of[$l]}" --out "$d" --lang "$l" --workers "$pw" "${extra[@]}"
      touch "$d/.done"
    fi
    [ -f "$d/valid.tsv" ] && continue
    # Hold out every Nth training conversation (both sides of a call together) for validation; with fewer
    # than N conversations, every Nth utterance.
    ssl manifest split "$d/train.tsv" --rest "$d/train-ft.tsv" --held "$d/valid.tsv" --every "$valid_every" \
      --by conversation
  done
fi

resolve_start

if run_stage 2; then
  if [ -n "$pretrained" ]; then
    convert_pretrained
    log 2 "multilingual model: $start"
  else
    cfg=$repo/recipes/commonvoice/conf/pretrain_xlsr.yaml
    tr=(); va=()
    for l in "${langs[@]}"; do tr+=("$data/$l/train-ft.tsv"); va+=("$data/$l/valid.tsv"); done
    uf=$(update_freq "$cfg")
    if [ -f "$start/model.safetensors" ]; then log 2 "pretraining done: $start"
    else log 2 "XLSR pretraining on the BABEL audio of ${#langs[@]} languages (alpha sampling): $(hw) x update_freq $uf"; fi
    train_run pretrain "$exp/pretrain" "$uf" "$cfg" "data.train=[$(join "${tr[@]}")]" "data.valid=[$(join "${va[@]}")]"
  fi
fi

if run_stage 3; then
  [ -f "$start/model.safetensors" ] || [ -f "$start" ] || {
    log 3 "no multilingual model at $start (run stage 2 or pass --pretrained)"; exit 1; }
  cfg=$conf/finetune_xlsr.yaml
  for l in "${ft_langs[@]}"; do
    run=$exp/finetune/$l
    uf=$(update_freq "$cfg")
    if [ -f "$run/final/model.safetensors" ]; then log 3 "$l done"
    else log 3 "fine-tuning $l on $data/$l/train-ft.tsv: $(hw) x update_freq $uf"; fi
    train_run finetune "$run" "$uf" "$cfg" "data.train=[$data/$l/train-ft.tsv]" "data.valid=[$data/$l/valid.tsv]" \
      "finetune.dictionary=$data/$l/dict.ltr.txt" "finetune.pretrained=$start"
  done
fi

lm_of() { if [ -n "$lm_dir" ]; then echo "$lm_dir/$1.arpa"; else echo "$exp/lm/$1.arpa"; fi; }
lexicon_of() { if [ -n "$lm_dir" ] && [ -f "$lm_dir/$1.lexicon.txt" ]; then echo "$lm_dir/$1.lexicon.txt"; else echo "$exp/lm/$1.lexicon.txt"; fi; }

if run_stage 4; then
  mkdir -p "$exp/lm"
  for l in "${ft_langs[@]}"; do
    lm=$(lm_of "$l"); lex=$(lexicon_of "$l")
    if [ -n "$lm_dir" ]; then
      [ -f "$lm" ] || { log 4 "no $lm"; exit 2; }
      if [ ! -f "$lex" ]; then  # letter lexicon of the training words
        log 4 "$l: letter lexicon of the train-ft words -> $lex"
        ssl lm lexicon --text "$data/$l/train-ft.wrd" --dict "$data/$l/dict.ltr.txt" --out "$lex"
      fi
    elif [ -f "$lm" ]; then
      log 4 "$l LM exists: $lm"
    else
      log 4 "$l: word $lm_order-gram on $data/$l/train-ft.wrd"
      ssl lm build --text "$data/$l/train-ft.wrd" --order "$lm_order" --out "$lm" --lexicon-out "$lex"
    fi
  done
fi

if run_stage 5; then
  for l in "${ft_langs[@]}"; do
    ck=$exp/finetune/$l/final
    [ -f "$ck/model.safetensors" ] || { log 5 "no fine-tuned $l"; continue; }
    for t in valid dev; do
      out=$exp/decode/$l/greedy/$t
      [ -f "$out/summary.json" ] && continue
      log 5 "$l greedy $t"
      decode_set "$ck" "$data/$l/$t.tsv" "$out" wrd
    done
    lm=$(lm_of "$l"); lex=$(lexicon_of "$l")
    [ -f "$lm" ] || continue
    out=$exp/decode/$l/lm/valid
    if [ ! -f "$out/summary.json" ]; then
      log 5 "$l LM beam search on valid, tuning lm_weight x word_score"
      decode_set "$ck" "$data/$l/valid.tsv" "$out" wrd --lm "$lm" --lexicon "$lex" --beam "$beam" --tune \
        --tune-lm-weights="$tune_lm_weights" --tune-word-scores="$tune_word_scores"
    fi
    out=$exp/decode/$l/lm/dev
    if [ ! -f "$out/summary.json" ]; then
      read -r lw ws < <(tuned_weights "$exp/decode/$l/lm/valid/summary.json")
      log 5 "$l LM beam search on dev (lm_weight $lw, word_score $ws)"
      decode_set "$ck" "$data/$l/dev.tsv" "$out" wrd --lm "$lm" --lexicon "$lex" --beam "$beam" --lm-weight "$lw" \
        --word-score "$ws"
    fi
  done
fi

if run_stage 6; then
  log 6 "scoring into $exp/results.md"
  for d in "$exp"/decode/*/*/*/; do score_dir "$d" word char; done
  ssl results table "$exp" --recipe babel
fi
