#!/usr/bin/env bash
# The digits recipe (issue 22): does each TTS recipe learn? Spoken digit strings ("four seven oh nine", 2-8
# digits) in many synthetic voices, small enough to converge on 2 CPU cores, judged on held-out digit strings in
# held-out voices the judge understands. Kaldi's yesno / ESPnet's mini_an4 for audiokit.
#   bash recipes/digits/run.sh                       # everything, on the bundled codec's tokens
#   bash recipes/digits/run.sh --stage 9 --stop-stage 12   # VALL-E on the codec's tokens only
#   bash recipes/digits/run.sh --stage 19                  # VALL-E and Tortoise on speech units (they say the digits)
# Options: --out DIR (corpus [data/digits]), --utterances N (stage 0's size [6000]), --codec DIR (the codec whose
#   tokens the models learn [pretrained/codec]); every other option (--stage, --stop-stage, --exp, --max-steps,
#   --max-time, --judge, --tts-items, --device ...) goes to recipes/synth/run.sh, whose stages 1-18 this runs
#   with the configs of size "digits" (configs/*/digits*.yaml); the codec's stages 2-3 are skipped. Stages 19-26
#   are this recipe's own, and read --exp, --tag, --max-steps, --max-time, --judge, --tts-items and --device too.
# Stages:
#   0  the corpus: audiokit data synth --sentences digits; every installed engine's voices, with flite rms and
#      festival ked held out (the judge, Whisper tiny.en, reads flite and festival digit strings at 0-2 % WER);
#      and $out-voices, as many strings again in 48 more espeak voices (none of the held-out ones), that the
#      ASR trains on as well (session 20: the held-out espeak voices 6.5 / 0.0 -> 0.0 / 0.0 % WER)
#   1, 4-18  recipes/synth/run.sh's: BPE, tokens, ASR (evaluated with beam 5, ranked jointly with its CTC head),
#      VALL-E AR + NAR, Tortoise AR, CLVP, diffusion, their evals (on the codec's tokens: they babble, see RESULTS)
#   19  speech units from the stage-7 ASR's encoder (audiokit units: k-means, K = 256) -> $exp/units/{tokenizer,
#       frames,runs,stacked}
#   20  VALL-E AR on the units' runs         (configs/valle/digits_units_ar.yaml)      -> $exp/valle-units-ar
#   21  the lengths NAR on the runs          (configs/valle/digits_units_lengths.yaml) -> $exp/valle-units-lengths
#   22  the units decoder: units -> codec latent (configs/valle/digits_units_decoder.yaml) -> $exp/units-decoder
#   23  export VALL-E on units ($exp/valle-units-export, one folder: audiokit tts / TTS.load read it) and evaluate it
#       on held-out strings in held-out voices, voice-only prompts, greedy ($exp/valle_units_eval.json, its card)
#   24  Tortoise AR on the units' runs        (configs/tortoise/digits_units_ar.yaml)   -> $exp/tortoise-units-ar
#   25  CLVP on the units' runs               (configs/tortoise/digits_units_clvp.yaml) -> $exp/clvp-units
#   26  export Tortoise on units (AR + CLVP + stage 21's lengths NAR + stage 22's decoder: $exp/tortoise-units-export)
#       and evaluate it: CLVP's pick of 16 samples against a random one of them ($exp/tortoise_units_eval.json; and
#       sampled at temperature 1.5, where the candidates differ: $exp/tortoise_units_eval_t15.json)
# Digit strings are scored digit by digit (WER: "4719" = "four seven one nine", "oh" = "zero").
set -euo pipefail

stage=0
stop_stage=26
out=data/digits
utterances=6000
codec=pretrained/codec
exp_root=exp
tag=synth
device=cpu
judge=""
tts_items=40
steps=()
pass=()
while [ $# -gt 0 ]; do
  case "$1" in
    --stage) stage=$2; shift 2 ;;
    --stop-stage) stop_stage=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    --utterances) utterances=$2; shift 2 ;;
    --codec) codec=$2; shift 2 ;;
    --exp) exp_root=$2; pass+=("$1" "$2"); shift 2 ;;
    --tag) tag=$2; pass+=("$1" "$2"); shift 2 ;;
    --device) device=$2; pass+=("$1" "$2"); shift 2 ;;
    --judge) judge=$2; pass+=("$1" "$2"); shift 2 ;;
    --tts-items) tts_items=$2; pass+=("$1" "$2"); shift 2 ;;
    --max-steps) steps+=(--trainer.max_steps "$2"); pass+=("$1" "$2"); shift 2 ;;
    --max-time) steps+=(--trainer.max_time "$2"); pass+=("$1" "$2"); shift 2 ;;
    *) pass+=("$1" "$2"); shift 2 ;;
  esac
done
exp=$exp_root/$tag-digits

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

if [ "$stop_stage" -ge 1 ] && [ "$stage" -le 18 ]; then
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

if [ -z "$judge" ]; then  # as recipes/synth/run.sh: the default ASR (Whisper tiny.en) where installed, else the recipe's
  judge=$(python -c "from audiokit.pretrained import default_asr; default_asr()" 2>/dev/null && echo asr || echo "$exp/asr-export")
fi
# shellcheck source=../lib/units.sh
source "$(dirname "$0")/../lib/units.sh"  # in_range, train_units_stage

if in_range 19; then
  echo "stage 19: speech units from the recipe's ASR ($exp/asr-export) -> $exp/units   [${SECONDS}s in]"
  audiokit units --asr "$exp/asr-export" --tokens "$exp/tokens" --out "$exp/units" -k 256
fi
train_units_stage 20 valle-ar configs/valle/digits_units_ar.yaml valle-units-ar "$exp/units/runs"
train_units_stage 21 valle-nar configs/valle/digits_units_lengths.yaml valle-units-lengths "$exp/units/runs"
train_units_stage 22 units-decoder configs/valle/digits_units_decoder.yaml units-decoder "$exp/units/stacked" \
  --model.codec "$codec"
if in_range 23; then
  echo "stage 23: export VALL-E on units -> $exp/valle-units-export; evaluate -> $exp/valle_units_eval.json   [${SECONDS}s in]"
  audiokit export "$exp/valle-units-ar/checkpoints/last.ckpt" "$exp/valle-units-export" \
    --nar "$exp/valle-units-lengths/checkpoints/last.ckpt" --decoder "$exp/units-decoder/checkpoints/last.ckpt" \
    --units "$exp/units/tokenizer" --codec "$codec" --name "$tag-digits-valle-units" \
    --notes "Trained by recipes/digits/run.sh stages 19-22 on $(nproc) CPU cores."
  audiokit eval tts --manifest "$out/test.jsonl" --model "$exp/valle-units-export" --asr "$judge" \
    --max-items "$tts_items" --no-prompt-text --temperature 0 --device "$device" --json "$exp/valle_units_eval.json" --card
fi

train_units_stage 24 tortoise-ar configs/tortoise/digits_units_ar.yaml tortoise-units-ar "$exp/units/runs" \
  --data.tokenizer "$out/bpe.json"
train_units_stage 25 clvp configs/tortoise/digits_units_clvp.yaml clvp-units "$exp/units/runs" \
  --data.tokenizer "$out/bpe.json"
if in_range 26; then
  echo "stage 26: export Tortoise on units -> $exp/tortoise-units-export; evaluate -> $exp/tortoise_units_eval.json   [${SECONDS}s in]"
  audiokit export "$exp/tortoise-units-ar/checkpoints/last.ckpt" "$exp/tortoise-units-export" \
    --clvp "$exp/clvp-units/checkpoints/last.ckpt" --nar "$exp/valle-units-lengths/checkpoints/last.ckpt" \
    --decoder "$exp/units-decoder/checkpoints/last.ckpt" --units "$exp/units/tokenizer" --codec "$codec" \
    --name "$tag-digits-tortoise-units" --notes "Trained by recipes/digits/run.sh stages 19-25 on $(nproc) CPU cores."
  audiokit eval tts --manifest "$out/test.jsonl" --model "$exp/tortoise-units-export" --asr "$judge" \
    --max-items "$tts_items" --device "$device" --json "$exp/tortoise_units_eval.json" --card
  # what CLVP's reranking buys: at the default sampling every candidate is about as good as the decoder lets it
  # be; sampled hotter, the candidates differ and CLVP's pick beats a random one (RESULTS session 27)
  audiokit eval tts --manifest "$out/test.jsonl" --model "$exp/tortoise-units-export" --asr "$judge" \
    --max-items "$tts_items" --device "$device" --temperature 1.5 --json "$exp/tortoise_units_eval_t15.json"
fi
