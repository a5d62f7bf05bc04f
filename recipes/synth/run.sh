#!/usr/bin/env bash
# The synthetic-corpus recipe. Numbered stages; run a range with --stage N --stop-stage M.
#   bash recipes/synth/run.sh --size tiny            # minutes on 2 CPU cores
#   bash recipes/synth/run.sh --size small           # the real run, on a GPU machine
# Stages that exist today:
#   0  make the multi-speaker corpus (espeak-ng voices, plus flite/festival where installed)
#   1  train the BPE text tokenizer on the training transcripts
# Model-family stages (codec, tokenize, VALL-E, Tortoise, ASR, eval, export) are added as the families land.
set -euo pipefail

stage=0
stop_stage=1
size=tiny
out=data/synth
while [ $# -gt 0 ]; do
  case "$1" in
    --stage) stage=$2; shift 2 ;;
    --stop-stage) stop_stage=$2; shift 2 ;;
    --size) size=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
done

case "$size" in
  tiny) hours=0.1; speakers=12; test_speakers=2 ;;
  small) hours=20; speakers=60; test_speakers=6 ;;
  *) echo "--size must be tiny or small" >&2; exit 2 ;;
esac
corpus=$out/$size

if [ "$stage" -le 0 ] && [ "$stop_stage" -ge 0 ]; then
  echo "stage 0: synthetic corpus -> $corpus"
  if [ -f "$corpus/corpus.json" ]; then
    echo "  already made ($corpus/corpus.json); skipping"
  else
    audiokit data synth --out "$corpus" --hours "$hours" --speakers "$speakers" --test-speakers "$test_speakers" --sample-rate 24000
  fi
fi

if [ "$stage" -le 1 ] && [ "$stop_stage" -ge 1 ]; then
  echo "stage 1: BPE tokenizer -> $corpus/bpe.json"
  audiokit data bpe --manifest "$corpus/train.jsonl" --vocab-size 1000 --out "$corpus/bpe.json"
fi
