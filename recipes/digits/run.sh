#!/usr/bin/env bash
# The digits recipe (issue 22): does each TTS recipe learn? Spoken digit strings ("four seven oh nine", 2-8
# digits) in many synthetic voices, small enough to converge on 2 CPU cores, judged on held-out digit strings in
# held-out voices the judge understands. Kaldi's yesno / ESPnet's mini_an4 for audiokit.
#   bash recipes/digits/run.sh                       # everything, on the bundled codec's tokens
#   bash recipes/digits/run.sh --stage 9 --stop-stage 12   # VALL-E only
# Options: --out DIR (corpus [data/digits]), --utterances N (stage 0's size [6000]), --codec DIR (the codec whose
#   tokens the models learn [pretrained/codec]); every other option (--stage, --stop-stage, --exp, --max-steps,
#   --max-time, --judge, --tts-items, --device ...) goes to recipes/synth/run.sh, whose stages 1-18 this runs
#   with the configs of size "digits" (configs/*/digits*.yaml); the codec's stages 2-3 are skipped.
# Stages:
#   0  the corpus: audiokit data synth --sentences digits; every installed engine's voices, with flite rms and
#      festival ked held out (the judge, Whisper tiny.en, reads flite and festival digit strings at 0-2 % WER);
#      and $out-voices, as many strings again in 48 more espeak voices (none of the held-out ones), that the
#      ASR trains on as well (session 20: the held-out espeak voices 6.5 / 0.0 -> 0.0 / 0.0 % WER)
#   1, 4-18  recipes/synth/run.sh's: BPE, tokens, ASR (evaluated with beam 5, ranked jointly with its CTC head),
#      VALL-E AR + NAR, Tortoise AR, CLVP, diffusion, their evals
# Digit strings are scored digit by digit (WER: "4719" = "four seven one nine", "oh" = "zero").
set -euo pipefail

stage=0
stop_stage=18
out=data/digits
utterances=6000
codec=pretrained/codec
pass=()
while [ $# -gt 0 ]; do
  case "$1" in
    --stage) stage=$2; shift 2 ;;
    --stop-stage) stop_stage=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    --utterances) utterances=$2; shift 2 ;;
    --codec) codec=$2; shift 2 ;;
    *) pass+=("$1" "$2"); shift 2 ;;
  esac
done

if [ "$stage" -le 0 ] && [ "$stop_stage" -ge 0 ]; then
  echo "stage 0: spoken digit strings -> $out   [this run: stages $stage-$stop_stage; ${SECONDS}s in]"
  if [ -f "$out/corpus.json" ]; then
    echo "  already made ($out/corpus.json); skipping"
  else
    audiokit data synth --sentences digits --max-sentences 1 --utterances "$utterances" --speakers 24 \
      --test-speakers 2 --hold-out flite-rms,festival-ked_diphone --sample-rate 16000 --seed 22 --out "$out"
  fi
  if [ -f "$out-voices/corpus.json" ]; then
    echo "  more voices for the ASR already made ($out-voices/corpus.json); skipping"
  else
    audiokit data synth --sentences digits --max-sentences 1 --utterances "$utterances" --speakers 48 \
      --test-speakers 0 --engines espeak --exclude "$out" --id-prefix v2- --sample-rate 16000 --seed 23 --out "$out-voices"
  fi
fi

if [ "$stop_stage" -ge 1 ]; then
  first=$(( stage > 1 ? stage : 1 ))
  extra=()
  if [ -f "$out-voices/train.jsonl" ]; then
    extra=(--asr-extra "$out-voices/train.jsonl")
  elif [ "$first" -le 6 ] && [ "$stop_stage" -ge 6 ]; then
    echo "  note: $out-voices is missing (a corpus from before session 20): the ASR trains on $out alone; stage 0 makes it"
  fi
  RECIPE_NOTE="recipes/digits/run.sh" bash "$(dirname "$0")/../synth/run.sh" --size digits --corpus "$out" \
    --codec "$codec" --stage "$first" --stop-stage "$(( stop_stage < 18 ? stop_stage : 18 ))" \
    "${extra[@]}" --asr-beam 5 "${pass[@]}"
fi
