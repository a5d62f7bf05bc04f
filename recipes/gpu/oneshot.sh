#!/usr/bin/env bash
# Ten minutes on one GPU -> a trained, evaluated, compact bundle, in ONE command.
#
#   bash recipes/gpu/oneshot.sh                       # 9 minutes on one GPU (H100/H200 class): the default
#   bash recipes/gpu/oneshot.sh --budget-minutes 600 --hours 40 --size small    # a longer run (larger bundle)
#   bash recipes/gpu/oneshot.sh --dry-run             # the rehearsal: every step at tiny size on the CPU, in minutes
#
# Options: --budget-minutes M (wall clock for the whole run [9]), --hours H (synthetic corpus [8]), --size S
#   (oneshot | small | tiny [oneshot]: the recipe's configs/*/S*.yaml), --out DIR (what comes back [$OUT, else
#   WORK/out]), --work DIR (corpus, runs, exports [exp/oneshot]), --device DEV (GPU to use [cuda]), --dry-run.
#
# Steps (recipes/synth/run.sh stages, each a process of its own, so one family's failure leaves the others running;
# the log names each step with its start, its end, its exit status and its last lines when it failed):
#   setup     the carried wheels (.whl/*.whl, fetched by recipes/gpu/fetch_wheels.sh) into a private site folder
#   check     `audiokit check`: two training steps, an export, an inference call and an evaluation of every family on
#             the GPU in bf16 (a tensor left on the CPU or a dtype autocast breaks shows in the first minute) ...
#   corpus    ... while the synthetic corpus is made on every core, then its BPE (stages 0-1); training starts when
#             the corpus is there, the check going on beside it
#   codec     the codec (stage 2)                     || asr: the ASR (stage 6, the longest budget)
#   tokens    codec export + tokenize on the GPU (3-4) || codec-eval (5)
#   tts       VALL-E AR, NAR, Tortoise AR, CLVP, diffusion (9, 10, 13, 14, 15), all at once on the one GPU; then the
#             diffusion decoder on AR latents (16) while VALL-E trains on
#   final     exports in int8 (7, 11, 17), evaluations on the GPU (8, 12, 18), the bundle (19, each model once),
#             codec and ASR throughput in bf16/fp16 against float32 (recipes/gpu/throughput.py)
# Every training stage gets a wall-clock budget (Lightning's max_time, which ends the learning-rate schedule too),
# sized from the time left, so the whole run ends inside --budget-minutes.
#
# Results, written to the out folder as each stage ends (a run cut off still returns what it finished):
#   oneshot.log      everything, each line prefixed with its step
#   figures.json     every figure: check, corpus, per-stage steps and steps/s, codec/ASR/TTS evals, throughput, sizes
#   logs.tgz         each step's full log and the training metrics
#   bundle.tgz.NN    the bundle (pretrained/{codec,valle,tortoise}) in parts of at most 15 MiB; the ASR trained
#                    here is measured but not bundled (the default ASR, Whisper tiny.en, is better)
# At most 8 files of at most 16 MiB (64 MiB in all), names of letters, digits, '.', '_' and '-' (the return limits of
# a lent machine; recipes/gpu/check_out.py checks them). `bash recipes/gpu/adopt.sh OUT` installs the bundle into
# pretrained/ and puts the figures into benchmarks/RESULTS.md.
set -uo pipefail
cd "$(dirname "$0")/../.."

COMMAND="bash recipes/gpu/oneshot.sh${*:+ $*}"
budget_minutes=9
budget_given=""
hours=""
size=oneshot
work=exp/oneshot
out=${OUT:-}
device=cuda
dry=""
while [ $# -gt 0 ]; do
  case "$1" in
    --budget-minutes) budget_minutes=$2; budget_given=1; shift 2 ;;
    --hours) hours=$2; shift 2 ;;
    --size) size=$2; shift 2 ;;
    --work) work=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    --device) device=$2; shift 2 ;;
    --dry-run) dry=1; shift ;;
    -h|--help) sed -n '2,40p' "$0"; exit 0 ;;
    *) echo "oneshot: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
done
case "$size" in tiny|oneshot|small) ;; *) echo "oneshot: --size must be tiny, oneshot or small" >&2; exit 2 ;; esac
if [ -n "$dry" ]; then  # the rehearsal: the same steps, tiny configs, a few optimizer steps each, on the CPU
  size=tiny; device=cpu; hours=${hours:-0.03}
  [ -z "$budget_given" ] && budget_minutes=30  # max_steps ends the stages here; the clock only keeps its code path
  export CUDA_VISIBLE_DEVICES=""
fi
out=${out:-$work/out}
mkdir -p "$work/logs" "$work/status" "$out" || exit 1
work=$(cd "$work" && pwd); out=$(cd "$out" && pwd)
T0=$(date +%s)
BUDGET=$(python3 -c "print(int(float('$budget_minutes') * 60))") || { echo "oneshot: --budget-minutes must be a number" >&2; exit 2; }
LOG=$out/oneshot.log
: >"$LOG"
RECIPE_ARGS=(--size "$size" --out "$work/data" --exp "$work/exp" --tag oneshot --device "$device" --int8)
[ -n "$hours" ] && RECIPE_ARGS+=(--hours "$hours")
[ -n "$dry" ] && RECIPE_ARGS+=(--max-steps 4)
# the TTS evaluations' judge: the default ASR (Whisper tiny.en) where installed — not on a lent GPU, whose 64 MiB
# of carried files cannot hold its 75 MB — else the ASR this run trained; the rehearsal judges as the GPU run will
[ -n "$dry" ] && RECIPE_ARGS+=(--judge "$work/exp/oneshot-$size/asr-export")
# a four-step ASR writes to the length cap: the rehearsal evaluates it at one temperature, not through the fallback
[ -n "$dry" ] && RECIPE_ARGS+=(--asr-temperature 0)
TTS_ITEMS=24; [ -n "$dry" ] && TTS_ITEMS=1  # held-out utterances each TTS evaluation speaks
TTS_PRESET=fast; [ -n "$dry" ] && TTS_PRESET=ultra_fast  # Tortoise's evaluation preset
export RECIPE_NOTE="recipes/gpu/oneshot.sh --budget-minutes $budget_minutes${hours:+ --hours $hours}${dry:+ --dry-run}"
export PYTHONUNBUFFERED=1

say() { echo "[oneshot +$(( $(date +%s) - T0 ))s] $*" | tee -a "$LOG"; }
left() { echo $(( BUDGET - ($(date +%s) - T0) )); }

# ---------------------------------------------------------------------------------------------- setup
if compgen -G ".whl/*.whl" >/dev/null; then
  site=$work/site
  # the wheels are for one Python (recipes/gpu/fetch_wheels.sh: 3.12); they are used only where it is that one
  wheel_py=$(ls .whl/*-cp3*-*.whl 2>/dev/null | head -1 | sed -E 's/.*-cp3([0-9]+)-.*/3.\1/')
  here_py=$(python3 -c 'import sys; print(f"{sys.version_info[0]}.{sys.version_info[1]}")')
  if python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$site" \
      ${wheel_py:+--python-version "$wheel_py"} .whl/*.whl >"$work/logs/wheels.log" 2>&1; then
    if [ -z "$wheel_py" ] || [ "$wheel_py" = "$here_py" ]; then
      export PYTHONPATH=$site${PYTHONPATH:+:$PYTHONPATH}
      say "setup: $(ls .whl/*.whl | wc -l) carried wheels installed into $site"
    else
      say "setup: $(ls .whl/*.whl | wc -l) carried wheels installed into $site for Python $wheel_py; this is $here_py, which uses its own packages"
    fi
  else
    say "setup: FAILED to install the carried wheels: $(tail -2 "$work/logs/wheels.log" | tr '\n' ' ')"
  fi
fi
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH}
if ! command -v audiokit >/dev/null 2>&1; then  # audiokit not installed: run it from this source tree
  mkdir -p "$work/bin" && printf '#!/bin/sh\nexec python3 -m audiokit.cli "$@"\n' >"$work/bin/audiokit" && chmod +x "$work/bin/audiokit"
  export PATH=$work/bin:$PATH
fi
python3 - <<'EOF' 2>&1 | tee -a "$LOG"
import importlib, platform
have = []
for m in ("torch", "lightning", "jsonargparse", "soundfile", "espeakng_loader", "phonemizer", "tokenizers", "jiwer", "pesq", "pystoi"):
    try:
        have.append(f"{m} {getattr(importlib.import_module(m), '__version__', 'ok')}")
    except Exception as e:
        have.append(f"{m} MISSING ({type(e).__name__})")
import torch
gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
print(f"[oneshot] python {platform.python_version()}, {gpu}; " + ", ".join(have))
EOF
say "budget ${BUDGET} s, size $size, device $device, work $work, out $out${dry:+ (dry run)}"

# ---------------------------------------------------------------------------------------------- helpers
# launch NAME CMD...: run CMD in the background, its output in logs/NAME.log and, prefixed, in the main log;
# status/NAME gets "RC SECONDS" when it ends. finish NAME...: wait for them and report each.
declare -A PIDS
launch() {
  local name=$1; shift
  say "$name: start"
  (
    t=$(date +%s)
    echo "\$ $*" >"$work/logs/$name.log"
    "$@" >>"$work/logs/$name.log" 2>&1
    rc=$?
    echo "$rc $(( $(date +%s) - t ))" >"$work/status/$name"
  ) &
  PIDS[$name]=$!
}
finish() {
  local name rc secs
  for name in "$@"; do
    [ -n "${PIDS[$name]:-}" ] && wait "${PIDS[$name]}" 2>/dev/null
    read -r rc secs <"$work/status/$name" 2>/dev/null || { rc=99; secs=0; }
    grep -E '^(step [0-9]+|trained to step|check |shared:|stage [0-9]+:)' "$work/logs/$name.log" 2>/dev/null | tail -4 \
      | sed "s/^/[$name] /" >>"$LOG"
    if [ "$rc" = 0 ]; then
      say "$name: ok in ${secs} s"
    else
      say "$name: FAILED (exit $rc after ${secs} s); its last lines:"
      tail -15 "$work/logs/$name.log" | sed "s/^/[$name] /" | tee -a "$LOG"
    fi
  done
  collect
}
ok() { local rc; read -r rc _ <"$work/status/$1" 2>/dev/null && [ "$rc" = 0 ]; }
collect() {  # figures.json and logs.tgz, rewritten after every step
  python3 recipes/gpu/figures.py --work "$work" --out "$out/figures.json" --budget "$BUDGET" --elapsed $(( $(date +%s) - T0 )) \
    --command "$COMMAND" \
    >>"$LOG" 2>&1
  tar -czf "$out/.logs.tgz" -C "$work" logs status $(cd "$work" && ls -d exp/*/*/lightning_logs exp/*/*/config.yaml 2>/dev/null) \
    2>/dev/null && mv "$out/.logs.tgz" "$out/logs.tgz"
}
maxtime() {  # maxtime END_SECONDS_FROM_T0: Lightning's DD:HH:MM:SS for a stage that must end by then
  local secs=$(( $1 - ($(date +%s) - T0) - STARTUP ))
  [ "$secs" -lt 20 ] && secs=20
  printf '00:%02d:%02d:%02d' $(( secs / 3600 )) $(( secs % 3600 / 60 )) $(( secs % 60 ))
}
RECIPE=(bash recipes/synth/run.sh "${RECIPE_ARGS[@]}")
recipe() { "${RECIPE[@]}" "$@"; }
STARTUP=25  # seconds a training process spends before its clock starts (imports, data, CUDA) and after it ends

# ---------------------------------------------------------------------------------------------- check + corpus
launch check audiokit check --device "$device" --precision bf16-mixed --work "$work/check" --json "$work/check.json"
launch corpus recipe --stage 0 --stop-stage 1
finish corpus  # training starts with the corpus; the check goes on beside it and is reported when it ends
if ! ok corpus; then
  say "the corpus failed: nothing can train; stopping"
  exit 1
fi

# ---------------------------------------------------------------------------------------------- training
# The time after this point: training budgets in proportion, and a reserve for exports, evaluations and packing.
now=$(( $(date +%s) - T0 ))
reserve=$(( BUDGET * 18 / 100 )); [ "$reserve" -lt 60 ] && reserve=60
avail=$(( BUDGET - now - reserve )); [ "$avail" -lt 60 ] && avail=60
end_codec=$(( now + avail * 32 / 100 ))
end_tts1=$(( now + avail * 82 / 100 ))
end_train=$(( now + avail ))
say "training: ${avail} s from +${now}s (codec to +${end_codec}s, TTS to +${end_train}s, reserve ${reserve} s)"
launch asr recipe --stage 6 --stop-stage 6 --max-time "$(maxtime "$end_train")"
launch codec recipe --stage 2 --stop-stage 2 --max-time "$(maxtime "$end_codec")"
finish check
finish codec
if ok codec; then
  launch tokens recipe --stage 3 --stop-stage 4
  finish tokens
  ok tokens && launch codec-eval recipe --stage 5 --stop-stage 5
fi
if ok tokens; then
  launch valle-ar recipe --stage 9 --stop-stage 9 --max-time "$(maxtime "$end_train")"
  launch valle-nar recipe --stage 10 --stop-stage 10 --max-time "$(maxtime "$end_train")"
  launch tortoise-ar recipe --stage 13 --stop-stage 13 --max-time "$(maxtime "$end_tts1")"
  launch clvp recipe --stage 14 --stop-stage 14 --max-time "$(maxtime "$end_tts1")"
  launch diffusion recipe --stage 15 --stop-stage 15 --max-time "$(maxtime "$end_tts1")"
  finish tortoise-ar clvp diffusion
  if ok tortoise-ar && ok diffusion; then
    launch diffusion-ar recipe --stage 16 --stop-stage 16 --max-time "$(maxtime "$end_train")"
  fi
else
  say "no tokens: VALL-E and Tortoise cannot train"
fi

# ---------------------------------------------------------------------------------------------- final
# Exports first, and the bundle packed at once (a run cut off during the evaluations still returns the models);
# then the evaluations, each under a timeout that leaves time to pack the bundle again with their tables.
exp_dir=$work/exp/oneshot-$size
pack() {
  local bundle=$work/bundle/pretrained pair
  rm -rf "$work/bundle" && mkdir -p "$bundle"
  for pair in codec:codec-export valle:valle-export tortoise:tortoise-export; do
    [ -f "$exp_dir/${pair#*:}/model.json" ] && cp -r "$exp_dir/${pair#*:}" "$bundle/${pair%%:*}"
  done
  if ! compgen -G "$bundle/*" >/dev/null; then
    say "bundle: nothing was exported"
    return
  fi
  launch bundle audiokit models "$bundle"/* --refresh --share --verify
  finish bundle
  tar -czf "$work/bundle.tgz" -C "$work/bundle" pretrained || return
  rm -f "$out"/bundle.tgz.*
  split -b 15M -d -a 2 "$work/bundle.tgz" "$out/bundle.tgz."
  say "bundle: $(ls "$bundle" | tr '\n' ' ')- $(du -sh "$bundle" | cut -f1) on disk, $(ls "$out"/bundle.tgz.* | wc -l) part(s), $(du -b "$work/bundle.tgz" | cut -f1) bytes"
}
within() {  # within SECONDS CMD...: CMD, interrupted (SIGINT, then SIGKILL) if it runs longer
  local secs=$1; shift
  [ "$secs" -lt 10 ] && secs=10
  timeout --signal=INT --kill-after=15 "$secs" "$@"
}

finish asr
ok asr && launch asr-export recipe --stage 7 --stop-stage 7
finish asr-export
if [ -n "${PIDS[valle-ar]:-}" ]; then
  finish valle-ar valle-nar
  ok valle-ar && ok valle-nar && launch valle-export recipe --stage 11 --stop-stage 11
fi
if [ -n "${PIDS[diffusion-ar]:-}" ]; then
  finish diffusion-ar
  ok diffusion-ar && ok clvp && launch tortoise-export recipe --stage 17 --stop-stage 17
fi
for name in valle-export tortoise-export; do
  [ -n "${PIDS[$name]:-}" ] && finish "$name"
done
[ -n "${PIDS[codec-eval]:-}" ] && finish codec-eval
pack
eval_secs=$(( $(left) - 40 ))  # what is left, less the time to pack again
say "evaluations: ${eval_secs} s"
ok asr-export && launch asr-eval within "$eval_secs" "${RECIPE[@]}" --stage 8 --stop-stage 8
ok valle-export && launch valle-eval within "$eval_secs" "${RECIPE[@]}" --stage 12 --stop-stage 12 --tts-items "$TTS_ITEMS"
ok tortoise-export && ok asr-export && \
  launch tortoise-eval within "$eval_secs" "${RECIPE[@]}" --stage 18 --stop-stage 18 --tts-items "$TTS_ITEMS" \
    --tts-preset "$TTS_PRESET"
if ok tokens && ok asr-export; then
  launch throughput within "$eval_secs" python3 recipes/gpu/throughput.py --codec "$exp_dir/codec-export" \
    --asr "$exp_dir/asr-export" --manifest "$work/data/$size/test.jsonl" --device "$device" \
    --json "$work/throughput.json" ${dry:+--quick}
fi
for name in asr-eval valle-eval tortoise-eval throughput; do
  [ -n "${PIDS[$name]:-}" ] && finish "$name"
done
pack  # again: the cards now hold the evaluation tables
collect
python3 recipes/gpu/check_out.py "$out" | tee -a "$LOG"
failed=$(cd "$work/status" && for f in *; do read -r rc _ <"$f"; [ "$rc" = 0 ] || echo "$f"; done | tr '\n' ' ')
say "done in $(( $(date +%s) - T0 )) s of ${BUDGET}${failed:+; failed: $failed}"
collect
[ -z "$failed" ]
