#!/usr/bin/env bash
# The LibriTTS recipe: the synthetic recipe's stages on a local copy of LibriTTS (24 kHz, 2,456 speakers).
#   bash recipes/libritts/run.sh --root /data/LibriTTS --size small            # one GPU
#   bash recipes/libritts/run.sh --root /data/LibriTTS --train-subsets train-clean-100 train-clean-360
# LibriTTS cannot be downloaded by audiokit: point --root at the unpacked corpus (train-clean-100/, dev-clean/,
# test-clean/, ... each SPEAKER/CHAPTER/*.wav with *.normalized.txt beside it).
# Stages:
#   0     manifests: train = --train-subsets [train-clean-100], valid = dev-clean, test = test-clean (speakers
#         disjoint from training, so every eval is on held-out speakers), in $out (data/libritts)
#   1-19  recipes/synth/run.sh's stages 1-19 on those manifests (BPE, codec, tokens, ASR, VALL-E, Tortoise, evals,
#         the bundle), runs in $exp/libritts-$size; every other option (--stage, --stop-stage, --size,
#         --max-steps, --exp, --pretrained) is passed on.
set -euo pipefail

root=""
out=data/libritts
train_subsets=(train-clean-100)
stage=0
pass=()
while [ $# -gt 0 ]; do
  case "$1" in
    --root) root=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    --train-subsets) shift; train_subsets=(); while [ $# -gt 0 ] && [ "${1#--}" = "$1" ]; do train_subsets+=("$1"); shift; done ;;
    --stage) stage=$2; pass+=(--stage "$2"); shift 2 ;;
    *) pass+=("$1"); shift ;;
  esac
done

if [ "$stage" -le 0 ]; then
  [ -n "$root" ] || { echo "--root: the unpacked LibriTTS folder is needed for stage 0" >&2; exit 2; }
  echo "stage 0: LibriTTS manifests from $root -> $out   [this run: stages $stage-; ${SECONDS}s in]"
  mkdir -p "$out"
  audiokit data manifest libritts "$root" --subsets "${train_subsets[@]}" --out "$out/train.jsonl"
  audiokit data manifest libritts "$root" --subsets dev-clean --out "$out/valid.jsonl"
  audiokit data manifest libritts "$root" --subsets test-clean --out "$out/test.jsonl"
  pass+=(--stage 1)
fi
RECIPE=recipes/libritts/run.sh exec bash "$(dirname "$0")/../synth/run.sh" --corpus "$out" --tag libritts "${pass[@]}"
