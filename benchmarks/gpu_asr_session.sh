#!/usr/bin/env bash
# The ASR GPU session (issue 4): what ran on the lent H100, phase by phase, one phase per device call.
#   bash benchmarks/gpu_asr_session.sh bench    # openai-whisper vs audiokit decoding speed, float16 and bfloat16
#   bash benchmarks/gpu_asr_session.sh start    # corpus (recipe stages 0-1), a step-rate probe, then training in the background
#   bash benchmarks/gpu_asr_session.sh wait S   # up to S seconds for the training to end; prints its progress
#   bash benchmarks/gpu_asr_session.sh finish   # export + held-out evaluation (recipe stages 7-8), results to $OUT
# On the device machine (Python 3.12, torch, lightning, tokenizers, tiktoken; no registry) the packages it lacks
# travel as wheels in .whl/ (soundfile+cffi, espeakng-loader trimmed to English, jsonargparse and its needs, jiwer,
# openai-whisper). TRAIN_SECONDS sizes the run: the probe's steps/s x TRAIN_SECONDS = max_steps, so the learning
# rate schedule ends when the time does. Elsewhere (a GPU machine with the extras installed) the phases run as they are.
set -uo pipefail
phase=${1:?phase: bench, start, wait, finish}
OUT=${OUT:-/tmp/gpu_asr_out}
mkdir -p "$OUT"
if [ -d .whl ] && [ ! -f /tmp/site/.done ]; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
  touch /tmp/site/.done
fi
export PYTHONPATH=$PWD:/tmp/site${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1
if ! command -v audiokit >/dev/null; then
  mkdir -p /tmp/bin && printf '#!/bin/sh\nexec python3 -m audiokit.cli "$@"\n' >/tmp/bin/audiokit && chmod +x /tmp/bin/audiokit
  export PATH=/tmp/bin:$PATH
fi
corpus=data/synth/small
exp=exp/synth-small
TRAIN_SECONDS=${TRAIN_SECONDS:-750}
HOURS=${HOURS:-20}
PROBE_STEPS=${PROBE_STEPS:-160}
CONFIG=${CONFIG:-configs/asr/small.yaml}
DEVICE=${DEVICE:-cuda}
train_args=(--config "$CONFIG" --model.tokenizer "$corpus/bpe.json"
  --data.train_manifest "$corpus/train.jsonl" --data.val_manifest "$corpus/valid.jsonl" --trainer.enable_progress_bar false)

case "$phase" in
  bench)
    nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.sm --format=csv | tee "$OUT/gpu.txt"
    for dt in float16 bfloat16; do
      extra=(); [ "$dt" = bfloat16 ] && extra=(--ref-dtype float16 --skip longform)  # openai-whisper: its own GPU mode
      python3 benchmarks/asr_decode_random.py --device "$DEVICE" --dtype "$dt" --repeats 3 --tokens 200 --draft-tokens 8 "${extra[@]}" 2>&1 \
        | tee -a "$OUT/bench.log"
    done
    ;;
  start)
    python3 -c "import torch, soundfile, jiwer, espeakng_loader, jsonargparse; print(torch.__version__, torch.cuda.get_device_name(0) if torch.cuda.is_available() else 'no GPU')" || exit 1
    t0=$(date +%s)
    bash recipes/synth/run.sh --size small --hours "$HOURS" --stage 0 --stop-stage 1 2>&1 | tail -5 | tee "$OUT/corpus.log"
    echo "corpus: $(( $(date +%s) - t0 )) s" | tee -a "$OUT/corpus.log"
    python3 -c "import json; d=json.load(open('$corpus/corpus.json')); print({k: v for k, v in d.items() if not isinstance(v, (list, dict))})" | tee -a "$OUT/corpus.log"
    # the probe: the same run for PROBE_STEPS steps, with a validation pass (greedy decoding on the GPU) on the way
    rm -rf /tmp/probe
    audiokit train asr "${train_args[@]}" --trainer.max_steps "$PROBE_STEPS" --trainer.val_check_interval 100 \
      --trainer.limit_val_batches 2 --trainer.default_root_dir /tmp/probe \
      --trainer.callbacks.init_args.dirpath /tmp/probe/checkpoints >"$OUT/probe.log" 2>&1 || { tail -30 "$OUT/probe.log"; exit 1; }
    rate=$(grep -oE '^step [0-9/]+: [0-9.]+ steps/s' "$OUT/probe.log" | tail -1 | awk '{print $3}')
    [ -n "$rate" ] || { tail -30 "$OUT/probe.log"; echo "no step rate in the probe"; exit 1; }
    steps=$(python3 -c "print(max(200, int($rate * $TRAIN_SECONDS * 0.97 // 100 * 100)))")
    warmup=$(( steps / 8 < 1000 ? steps / 8 : 1000 ))
    echo "probe: $rate steps/s -> max_steps $steps, warmup $warmup" | tee "$OUT/plan.txt"
    rm -rf "$exp/asr"
    setsid nohup bash -c "audiokit train asr ${train_args[*]} --trainer.max_steps $steps --model.warmup_steps $warmup \
      --trainer.max_time $(printf 00:00:%02d:00 $(( TRAIN_SECONDS / 60 + 2 ))) --trainer.default_root_dir $exp/asr \
      --trainer.callbacks.init_args.dirpath $exp/asr/checkpoints >/tmp/train.log 2>&1; echo \$? >/tmp/train.rc" \
      >/dev/null 2>&1 </dev/null &
    sleep 45
    tail -3 /tmp/train.log
    ;;
  wait)
    limit=${2:-540}
    for _ in $(seq "$limit"); do [ -f /tmp/train.rc ] && break; sleep 1; done
    grep -E '^step ' /tmp/train.log | tail -3
    [ -f /tmp/train.rc ] && echo "training ended: rc $(cat /tmp/train.rc)" || echo "training still running"
    ;;
  finish)
    cp /tmp/train.log "$OUT/train.log"
    bash recipes/synth/run.sh --size small --stage 7 --stop-stage 7 2>&1 | tail -3
    for dt in float32 bfloat16; do
      audiokit eval asr --manifest "$corpus/test.jsonl" --model "$exp/asr-export" --device "$DEVICE" --dtype "$dt" \
        --batch-size 64 --json "$OUT/asr_eval_$dt.json" $([ "$dt" = float32 ] && echo --card) 2>&1 | tail -2
    done
    tar -czf "$OUT/results.tgz" "$exp/asr-export"/{model.json,README.md,config.json} "$exp/asr/lightning_logs" \
      "$corpus/corpus.json" 2>/dev/null
    # the exported model (float16) in parts under 16 MB: reassemble with cat model.part* > model.safetensors
    split -b 15M -d "$exp/asr-export/model.safetensors" "$OUT/model.part"
    ls -la "$OUT"
    ;;
  *) echo "unknown phase $phase" >&2; exit 2 ;;
esac
