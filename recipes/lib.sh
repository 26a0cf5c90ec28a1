# recipes/lib.sh: the functions the four recipes' run.sh share (librispeech, commonvoice, babel, synth).
# Sourced (not run) by each run.sh after it has set its knobs; the functions read the run.sh's variables
# (recipe, repo, exp, stage, stop_stage, tiny, ngpu, device, precision, seed, threads, decode_workers,
# pretrained, pretrained_format, pretrain_updates, ft_updates, pretrain_overrides, ft_overrides; synth sets
# only those of parse_options, setup_env, log, run_stage and finalize).
# The run.sh hold no Python: every step is a `speech-ssl` command (ssl ...), apart from one-line look-ups
# (and update_freq below, which reads a config).

# --name value flags (icefall's parse_options): --stop-stage 3 sets stop_stage=3; only names the run.sh set
parse_options() {  # "$@"
  local _opt
  while [ $# -gt 0 ]; do
    case "$1" in
      -h|--help)  # the run.sh's header comment: its stages and knobs
        sed -n '2,/^[^#]/{/^#/s/^# \{0,1\}//p}' "$0"; exit 0 ;;
      --*)
        _opt=${1#--}; _opt=${_opt//-/_}
        if [ $# -lt 2 ]; then echo "run.sh: $1 needs a value" >&2; exit 2; fi
        if [ "$_opt" = _opt ] || ! declare -p "$_opt" >/dev/null 2>&1; then
          echo "run.sh: unknown option $1" >&2; exit 2
        fi
        printf -v "$_opt" '%s' "$2"; shift 2 ;;
      *) echo "run.sh: unexpected argument $1 (options are --name value)" >&2; exit 2 ;;
    esac
  done
}

# py / ssl: the installed speech-ssl's Python, else SPEECH_SSL_PYTHON or python3 with this checkout on
# PYTHONPATH; threads; ngpu (default: the visible GPUs, 0 with DEVICE=cpu) -> device (cuda | cpu, fp32 on CPU).
# threads, ngpu and precision may be unset (synth has no NGPU / PRECISION knobs).
setup_env() {
  local v
  for v in stage stop_stage; do
    [[ "${!v}" =~ ^[0-9]+$ ]] || { echo "run.sh: --${v//_/-} is a stage number, not '${!v}'" >&2; exit 2; }
  done
  if [ "$stop_stage" -lt "$stage" ]; then
    echo "run.sh: --stop-stage $stop_stage is before --stage $stage: nothing would run" >&2; exit 2
  fi
  case "${tiny:-0}" in 0|1) ;; *) echo "run.sh: TINY is 0 or 1, not '$tiny'" >&2; exit 2 ;; esac
  case "${device:-auto}" in auto|cpu|cuda) ;; *) echo "run.sh: DEVICE is auto, cpu or cuda, not '$device'" >&2; exit 2 ;; esac
  if [ -n "${threads:-}" ]; then export OMP_NUM_THREADS=$threads MKL_NUM_THREADS=$threads; fi
  export SPEECH_SSL_NO_BAR=1
  if command -v speech-ssl >/dev/null 2>&1 && [ -z "${SPEECH_SSL_PYTHON:-}" ]; then
    py=$(head -1 "$(command -v speech-ssl)" | sed 's/^#!//')
    [ -x "$py" ] || py=python3
  else
    py=${SPEECH_SSL_PYTHON:-python3}
    export PYTHONPATH="$repo${PYTHONPATH:+:$PYTHONPATH}"
  fi
  if [ -z "${ngpu:-}" ]; then
    if [ "$device" = cpu ]; then ngpu=0
    else ngpu=$("$py" -c 'import torch; print(torch.cuda.device_count())' 2>/dev/null || echo 0); fi
  fi
  if [ "$ngpu" -gt 0 ]; then device=cuda; else device=cpu; precision=${precision:-fp32}; fi
}
ssl() { "$py" -m speech_ssl "$@"; }

log() { echo "$(date -u +%H:%M:%S) [$recipe stage $1] ${*:2}" >&2; }
hw() {
  local per; if [ "$ngpu" -gt 0 ]; then per="$ngpu GPU(s)"; else per="CPU (1 process)"; fi
  if [ "$nnodes" -gt 1 ]; then echo "$nnodes nodes x $per"; else echo "$per"; fi
}
run_stage() { [ "$stage" -le "$1" ] && [ "$stop_stage" -ge "$1" ]; }
join() { local IFS=,; echo "$*"; }

# Scale-out knobs, the same in every recipe (flags too: --nnodes 2 == NNODES=2). Run the recipe on every node
# with the same knobs and its own NODE_RANK (static), or with RDZV_ENDPOINT (c10d rendezvous: torchrun assigns
# the ranks, and with MAX_RESTARTS restarts the whole group after a worker or node dies; the runs pass
# --resume, so they continue from the newest checkpoint). recipes/slurm.sbatch sets them from the allocation.
nnodes=${NNODES:-1}                   # machines in the job
node_rank=${NODE_RANK:-0}             # this machine's rank, 0..NNODES-1 (static rendezvous with MASTER)
master=${MASTER:-}                    # HOST:PORT of node 0 (static rendezvous)
rdzv_endpoint=${RDZV_ENDPOINT:-}      # HOST:PORT of a c10d rendezvous (elastic; instead of MASTER/NODE_RANK)
rdzv_id=${RDZV_ID:-speech_ssl}        # the job's rendezvous id (SLURM: the job id)
max_restarts=${MAX_RESTARTS:-0}       # torchrun --max-restarts (3 is a good start: a restart round can fail once)

# processes per node (one per GPU, one on CPU) and in the whole job
per_node() { echo $(( ngpu > 0 ? ngpu : 1 )); }
world() { echo $(( nnodes * $(per_node) )); }

# train: one process on CPU / one GPU; torchrun for several GPUs, several nodes or elastic restarts
train() {  # pretrain|finetune CONFIG overrides...
  if [ "$nnodes" -gt 1 ] || [ "$ngpu" -gt 1 ] || [ "$max_restarts" -gt 0 ]; then
    local launch=("$py" -m torch.distributed.run --nproc-per-node "$(per_node)"
                  --max-restarts "$max_restarts")
    if [ -n "$rdzv_endpoint" ]; then
      launch+=(--nnodes "$nnodes" --rdzv-backend c10d --rdzv-endpoint "$rdzv_endpoint" --rdzv-id "$rdzv_id")
    elif [ "$nnodes" -gt 1 ]; then
      if [ -z "$master" ]; then echo "run.sh: NNODES=$nnodes needs MASTER=HOST:PORT (or RDZV_ENDPOINT)" >&2; exit 2; fi
      launch+=(--nnodes "$nnodes" --node-rank "$node_rank" --master-addr "${master%:*}" --master-port "${master##*:}")
    else
      launch+=(--standalone)
    fi
    "${launch[@]}" -m speech_ssl "$@"
  else
    ssl "$@"
  fi
}

# update_freq that gives the config's reference batch (reference_gpus x reference_update_freq) on the job's
# NNODES x NGPU processes;
# 1 in tiny mode
update_freq() {  # CONFIG
  if [ "$tiny" = 1 ]; then echo 1; return; fi
  ssl plan "$1" --gpus "$(world)" --print update_freq
}

# RUN/final = a weights-only copy of a checkpoint (`speech-ssl convert`, speech_ssl -> speech_ssl): WHICH=best
# keeps the best checkpoint (the validation metric's; the last one when there is no best/), WHICH=last the last one
finalize() {  # RUN best|last
  local src
  case "$2" in
    best) src=$1/checkpoints/best
          [ -f "$src/model.safetensors" ] || src=$(ls -d "$1"/checkpoints/checkpoint_* | sort | tail -1) ;;
    last) src=$(ls -d "$1"/checkpoints/checkpoint_* | sort | tail -1) ;;
    *) echo "finalize: WHICH is best or last, not '$2'" >&2; exit 2 ;;
  esac
  # verified against its meta.json, copied without train_state.pt, with a meta.json of its own files (atomic)
  ssl convert --from speech_ssl "$src" --to speech_ssl "$1/final" >/dev/null
}

# final_unchecked RUN: RUN/final exists but its checkpoints are gone, so the trainer cannot check a new
# invocation's settings against the run (nor continue it): said, and the caller keeps RUN/final as it is
final_unchecked() {  # RUN
  [ -f "$1/final/model.safetensors" ] && ! compgen -G "$1/checkpoints/checkpoint_*" >/dev/null || return 1
  echo "$1/final is done; its checkpoints are gone, so this invocation's settings are not checked against it" >&2
}

# train_run: `train KIND CONFIG OVERRIDES...` plus device, seed, update_freq, PRECISION, the updates knob
# (PRETRAIN_UPDATES / FT_UPDATES), the tiny-mode sizes and the user's PRETRAIN_OVERRIDES / FT_OVERRIDES (last,
# so they win), resumed in RUN_DIR; then RUN_DIR/final = the best checkpoint (finalize RUN_DIR best).
# A finished RUN_DIR goes through the trainer too: done at once with the settings it was trained with, a
# ConfigError naming the differences with other ones (a new EXP or RUN_DIR trains those), never reused silently.
train_run() {  # pretrain|finetune RUN_DIR UPDATE_FREQ CONFIG OVERRIDES...
  local kind=$1 run=$2 uf=$3 updates more
  shift 3
  final_unchecked "$run" && return 0
  local cmd=(train "$kind" "$@" "device=$device" "seed=$seed" "optim.update_freq=$uf")
  if [ "$kind" = pretrain ]; then updates=$pretrain_updates; more=$pretrain_overrides
  else updates=$ft_updates; more=$ft_overrides; fi
  if [ -n "$precision" ]; then cmd+=("precision.mode=$precision"); fi
  if [ -n "$updates" ]; then cmd+=("optim.max_update=$updates"); fi
  if [ "$tiny" = 1 ]; then
    if [ "$kind" = pretrain ]; then
      cmd+=("model.preset=tiny" "data.max_tokens=64000" "data.max_sample_size=16000" "data.min_sample_size=8000"
            "schedule.warmup_updates=1")
    else
      cmd+=("finetune.freeze_finetune_updates=1" "model.overrides.mask_channel_length=8" "model.overrides.mask_length=4"
            "data.max_tokens=240000")  # corpus v2 sentences run to ~11 s
    fi
    cmd+=("data.num_workers=0" "logging.log_interval=1" "logging.valid_interval_updates=0"
          "checkpoint.save_interval_updates=0" "logging.progress_bar=false" "logging.tensorboard=false")
  fi
  local extra
  read -r -a extra <<<"$more"
  cmd+=("${extra[@]}")
  "${cmd[@]}" --run-dir "$run" --resume
  finalize "$run" best
}

# fmt / start: the checkpoint fine-tuning starts from: --pretrained as is (ours) or converted into
# EXP/pretrained (HF, fairseq), else our pretraining's EXP/pretrain/final
resolve_start() {
  if [ -n "$pretrained" ]; then
    fmt=$pretrained_format
    if [ "$fmt" = auto ]; then
      fmt=$(ssl convert --detect "$pretrained")
    fi
    if [ "$fmt" = speech_ssl ]; then start=$pretrained; else start=$exp/pretrained; fi
  else
    start=$exp/pretrain/final
  fi
}

# stage 2 with --pretrained: convert it into $start unless it is ours or converted already
convert_pretrained() {
  if [ "$fmt" != speech_ssl ] && [ ! -f "$start/model.safetensors" ]; then
    log 2 "converting $pretrained ($fmt) -> $start"
    ssl convert --from "$fmt" "$pretrained" --to speech_ssl "$start.tmp"
    rm -rf "$start" && mv "$start.tmp" "$start"
  fi
}

# decode_set: `speech-ssl decode` of MANIFEST into OUT on DEVICE with DECODE_WORKERS audio loaders
decode_set() {  # CHECKPOINT MANIFEST OUT LABELS [decode options...]
  local ck=$1 manifest=$2 out=$3 labels=$4
  shift 4
  ssl decode --checkpoint "$ck" --manifest "$manifest" --out "$out" --labels "$labels" --device "$device" \
    --num-workers "$decode_workers" "$@" >/dev/null
}

# tuned_weights: "LM_WEIGHT WORD_SCORE", the best of a --tune decode's summary.json
tuned_weights() {  # SUMMARY_JSON
  "$py" -c 'import json,sys; b=json.load(open(sys.argv[1]))["tune"]["best"]; print(b["lm_weight"], b["word_score"])' "$1"
}

# score_dir: score.UNIT.json for each UNIT in a decode folder holding hyp.txt and ref.txt (kept when present)
score_dir() {  # DIR UNIT...
  local d=$1 unit
  shift
  [ -f "$d/hyp.txt" ] && [ -f "$d/ref.txt" ] || return 0
  for unit in "$@"; do
    [ -f "$d/score.$unit.json" ] || ssl score --ref "$d/ref.txt" --hyp "$d/hyp.txt" --unit "$unit" \
      --json "$d/score.$unit.json" >/dev/null
  done
}
