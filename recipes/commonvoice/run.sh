#!/usr/bin/env bash
# recipes/commonvoice: XLSR-style multilingual pretraining and per-language fine-tuning on CommonVoice, in
# numbered, idempotent, resumable stages.
#
#   recipes/commonvoice/run.sh [--stage N] [--stop-stage M] [--name value ...]
#
#   1 prepare each language of --languages and --ft-languages (`speech-ssl prepare commonvoice`: 16 kHz FLAC,
#     words, letters, eSpeak phones) and a ~1 h labelled subset of each fine-tuning language's train set
#     (TINY=1 first generates an embedded corpus in the CommonVoice layout with `speech-ssl prepare synth`)
#   2 multilingual model: --pretrained CK (ours, an HF folder such as XLSR-53, or a fairseq .pt; converted),
#     else pretraining conf/pretrain_xlsr.yaml on the train sets of --languages with alpha sampling
#   3 fine-tune per language on --units: phn (phonemes, the paper's PER setting) and/or ltr (letters, WER)
#     with conf/finetune_xlsr_<unit>.yaml; update_freq = ceil(4 x 5 / your GPU count)
#   4 decode dev and test greedily
#   5 score (PER on phones; WER and CER on letters) -> EXP/results.md
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

while [ $# -gt 0 ]; do
  case "$1" in
    --*)
      name=${1#--}; name=${name//-/_}
      if [ $# -lt 2 ]; then echo "run.sh: $1 needs a value" >&2; exit 2; fi
      if ! declare -p "$name" >/dev/null 2>&1; then echo "run.sh: unknown option $1" >&2; exit 2; fi
      printf -v "$name" '%s' "$2"; shift 2 ;;
    *) echo "run.sh: unexpected argument $1 (options are --name value)" >&2; exit 2 ;;
  esac
done
ft_languages=${ft_languages:-$languages}

[ -n "$threads" ] && export OMP_NUM_THREADS=$threads MKL_NUM_THREADS=$threads
export SPEECH_SSL_NO_BAR=1

if command -v speech-ssl >/dev/null 2>&1 && [ -z "${SPEECH_SSL_PYTHON:-}" ]; then
  py=$(head -1 "$(command -v speech-ssl)" | sed 's/^#!//')
  [ -x "$py" ] || py=python3
else
  py=${SPEECH_SSL_PYTHON:-python3}
  export PYTHONPATH="$repo${PYTHONPATH:+:$PYTHONPATH}"
fi
ssl() { "$py" -m speech_ssl "$@"; }

if [ -z "$ngpu" ]; then
  if [ "$device" = cpu ]; then ngpu=0
  else ngpu=$("$py" -c 'import torch; print(torch.cuda.device_count())' 2>/dev/null || echo 0); fi
fi
if [ "$ngpu" -gt 0 ]; then device=cuda; else device=cpu; precision=${precision:-fp32}; fi

conf=$here/conf
data=${DATA:-$exp/data}
log() { echo "$(date -u +%H:%M:%S) [commonvoice stage $1] ${*:2}" >&2; }
hw() { [ "$ngpu" -gt 0 ] && echo "$ngpu GPU(s)" || echo "CPU (1 process)"; }
run_stage() { [ "$stage" -le "$1" ] && [ "$stop_stage" -ge "$1" ]; }
IFS=, read -r -a pt_langs <<<"$languages"
IFS=, read -r -a ft_langs <<<"$ft_languages"
IFS=, read -r -a unit_list <<<"$units"
all_langs=$(printf '%s\n' "${pt_langs[@]}" "${ft_langs[@]}" | awk '!seen[$0]++' | paste -sd, -)
IFS=, read -r -a all_list <<<"$all_langs"
mkdir -p "$exp"

train() {  # pretrain|finetune CONFIG overrides...
  if [ "$ngpu" -gt 1 ]; then
    "$py" -m torch.distributed.run --standalone --nproc-per-node "$ngpu" -m speech_ssl "$@"
  else
    ssl "$@"
  fi
}

update_freq() {  # CONFIG -> update_freq giving the config's reference batch on NGPU GPUs
  "$py" - "$1" "$ngpu" <<'EOF'
import math, sys, yaml
o = yaml.safe_load(open(sys.argv[1]))["optim"]
ref = int(o.get("reference_gpus", 0)) * int(o.get("reference_update_freq", 1))
print(max(1, math.ceil(ref / max(int(sys.argv[2]), 1))) if ref else o.get("update_freq", 1))
EOF
}

finalize() {  # RUN: final/ = the best (else the last) checkpoint without the training state
  local src=$1/checkpoints/best
  [ -f "$src/model.safetensors" ] || src=$(ls -d "$1"/checkpoints/checkpoint_* | sort | tail -1)
  rm -rf "$1/final.tmp" && cp -r "$src" "$1/final.tmp" && rm -f "$1/final.tmp/train_state.pt"
  rm -rf "$1/final" && mv "$1/final.tmp" "$1/final"
}

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
    if ! "$py" -m speech_ssl.demo.manifests "$data/$l/train.tsv" "$data/$l/.train-ft.tsv" "$ft_seconds" --seed "$seed"; then
      log 1 "$l: train holds less than $ft_seconds s; fine-tuning on all of it"
      for x in tsv wrd ltr phn; do [ -f "$data/$l/train.$x" ] && cp "$data/$l/train.$x" "$data/$l/.train-ft.$x"; done
    fi
    for x in wrd ltr phn tsv; do [ -f "$data/$l/.train-ft.$x" ] && mv "$data/$l/.train-ft.$x" "$data/$l/train-ft.$x"; done
  done
fi

join() { local IFS=,; echo "$*"; }

if [ -n "$pretrained" ]; then
  fmt=$pretrained_format
  [ "$fmt" = auto ] && fmt=$("$py" -c 'import sys; from speech_ssl.interop.auto import detect_format as d; print(d(sys.argv[1]))' "$pretrained")
  if [ "$fmt" = speech_ssl ]; then start=$pretrained; else start=$exp/pretrained; fi
else
  start=$exp/pretrain/final
fi

if run_stage 2; then
  if [ -n "$pretrained" ]; then
    if [ "$fmt" != speech_ssl ] && [ ! -f "$start/model.safetensors" ]; then
      log 2 "converting $pretrained ($fmt) -> $start"
      ssl convert --from "$fmt" "$pretrained" --to speech_ssl "$start.tmp"
      rm -rf "$start" && mv "$start.tmp" "$start"
    fi
    log 2 "multilingual model: $start"
  elif [ -f "$start/model.safetensors" ]; then
    log 2 "pretraining done: $start"
  else
    cfg=$conf/pretrain_xlsr.yaml
    tr=(); va=()
    for l in "${pt_langs[@]}"; do tr+=("$data/$l/train.tsv"); va+=("$data/$l/dev.tsv"); done
    uf=$(update_freq "$cfg"); [ "$tiny" = 1 ] && uf=1
    log 2 "XLSR pretraining on ${#pt_langs[@]} languages ($languages, alpha sampling): $(hw) x update_freq $uf"
    cmd=(train pretrain "$cfg" "data.train=[$(join "${tr[@]}")]" "data.valid=[$(join "${va[@]}")]"
         "device=$device" "seed=$seed" "optim.update_freq=$uf")
    [ -n "$precision" ] && cmd+=("precision.mode=$precision")
    [ -n "$pretrain_updates" ] && cmd+=("optim.max_update=$pretrain_updates")
    if [ "$tiny" = 1 ]; then
      cmd+=("model.preset=tiny" "data.max_tokens=64000" "data.max_sample_size=16000" "data.min_sample_size=8000"
            "data.num_workers=0" "schedule.warmup_updates=1" "logging.log_interval=1"
            "logging.valid_interval_updates=0" "checkpoint.save_interval_updates=0" "logging.progress_bar=false"
            "logging.tensorboard=false")
    fi
    read -r -a more <<<"$pretrain_overrides"; cmd+=("${more[@]}")
    "${cmd[@]}" --run-dir "$exp/pretrain" --resume
    finalize "$exp/pretrain"
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
      if [ -f "$run/final/model.safetensors" ]; then log 3 "$l-$u done"; continue; fi
      uf=$(update_freq "$cfg"); [ "$tiny" = 1 ] && uf=1
      log 3 "fine-tuning $l-$u on $data/$l/train-ft.tsv: $(hw) x update_freq $uf"
      cmd=(train finetune "$cfg" "data.train=[$data/$l/train-ft.tsv]" "data.valid=[$data/$l/dev.tsv]"
           "finetune.pretrained=$start" "device=$device" "seed=$seed"
           "optim.update_freq=$uf")
      [ -n "$precision" ] && cmd+=("precision.mode=$precision")
      [ -n "$ft_updates" ] && cmd+=("optim.max_update=$ft_updates")
      if [ "$tiny" = 1 ]; then
        cmd+=("finetune.freeze_finetune_updates=1" "finetune.mask_channel_length=8" "finetune.mask_length=4"
              "data.max_tokens=160000" "data.num_workers=0" "logging.log_interval=1"
              "logging.valid_interval_updates=0" "checkpoint.save_interval_updates=0" "logging.progress_bar=false"
              "logging.tensorboard=false")
      fi
      read -r -a more <<<"$ft_overrides"; cmd+=("${more[@]}")
      "${cmd[@]}" --run-dir "$run" --resume
      finalize "$run"
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
        ssl decode --checkpoint "$ck" --manifest "$data/$l/$t.tsv" --out "$out" --labels "$labels" \
          --device "$device" --num-workers "$decode_workers" >/dev/null
      done
    done
  done
fi

if run_stage 5; then
  log 5 "scoring into $exp/results.md"
  for d in "$exp"/decode/*/*/; do
    [ -f "$d/hyp.txt" ] && [ -f "$d/ref.txt" ] || continue
    case "$d" in */*-phn/*) us="phone" ;; *) us="word char" ;; esac
    for unit in $us; do
      [ -f "$d/score.$unit.json" ] || ssl score --ref "$d/ref.txt" --hyp "$d/hyp.txt" --unit "$unit" \
        --json "$d/score.$unit.json" >/dev/null
    done
  done
  "$py" - "$exp" <<'EOF'
import json, math, os, sys
from pathlib import Path
exp = Path(sys.argv[1])
rows = ["| language | units | dev PER | test PER | dev WER / CER | test WER / CER | updates |", "|---|---|---|---|---|---|---|"]
for run in sorted(p for p in exp.glob("decode/*") if p.is_dir()):
    lang, unit = run.name.rsplit("-", 1)
    cells = {}
    for t in ("dev", "test"):
        s = {u: json.loads((run / t / f"score.{u}.json").read_text())["error_rate"]
             for u in ("phone", "word", "char") if (run / t / f"score.{u}.json").exists()}
        bad = [u for u, v in s.items() if not math.isfinite(v)]
        if bad:
            sys.exit(f"{run / t}: non-finite {bad}")
        cells[t] = s
    per = [f"{100 * cells[t]['phone']:.1f}" if "phone" in cells[t] else "-" for t in ("dev", "test")]
    wer = [f"{100 * cells[t]['word']:.1f} / {100 * cells[t]['char']:.1f}" if "word" in cells[t] else "-"
           for t in ("dev", "test")]
    ups = ""
    log = exp / "finetune" / run.name / "log.jsonl"
    if log.exists():
        tr = [json.loads(x) for x in log.read_text().splitlines() if '"train"' in x]
        ups = str(tr[-1]["update"]) if tr else ""
    rows.append(f"| {lang} | {unit} | {per[0]} | {per[1]} | {wer[0]} | {wer[1]} | {ups} |")
text = "# recipes/commonvoice results (%, greedy decoding)\n\n" + "\n".join(rows) + "\n"
tmp = exp / ".results.md.tmp"
tmp.write_text(text)
os.replace(tmp, exp / "results.md")
print(text)
EOF
fi
