#!/usr/bin/env bash
# The digits recipe (issue 22): does each TTS recipe learn? Spoken digit strings ("four seven oh nine", 2-8
# digits) in many synthetic voices, small enough to converge on 2 CPU cores, judged on held-out digit strings in
# held-out voices the judge understands. Kaldi's yesno / ESPnet's mini_an4 for audiokit.
#   bash recipes/digits/run.sh                       # corpus, ASR (0-8), then VALL-E and Tortoise on phone units (20-28)
#   bash recipes/digits/run.sh --stage 20 --units-asr ASR  # the phone-unit TTS stages only, on another ASR's encoder
#   bash recipes/digits/run.sh --stage 9 --stop-stage 18   # VALL-E and Tortoise on the codec's tokens (opt-in: they babble)
# Options: --out DIR (corpus [data/digits]), --utterances N (stage 0's size [6000]), --codec DIR (the codec whose
#   tokens the models learn [pretrained/codec]), --judged-items N (stage 28's strings [120]); every other option
#   (--stage, --stop-stage, --exp, --max-steps, --max-time, --judge, --tts-items, --device, --units-asr ...) goes
#   to recipes/synth/run.sh, whose stages 1-18 this runs with the configs of size "digits" (configs/*/digits*.yaml)
#   and whose phone stages 20-27 it runs with its cpu_phones configs, 2,000 steps each unless --max-steps; the
#   codec's stages 2-3 and the bundle (19) are skipped. Stage 28 is this recipe's own.
# Stages:
#   0  the corpus: audiokit data synth --sentences digits; every installed engine's voices, with flite rms and
#      festival ked held out (the judge, Whisper tiny.en, reads flite and festival digit strings at 0-2 % WER);
#      and $out-voices, as many strings again in 48 more espeak voices (none of the held-out ones), that the
#      ASR trains on as well (session 20: the held-out espeak voices 6.5 / 0.0 -> 0.0 / 0.0 % WER)
#   1, 4-8  recipes/synth/run.sh's: BPE, tokens, codec eval, ASR (evaluated with beam 5, ranked jointly with its CTC head)
#   9-18  its VALL-E AR + NAR, Tortoise AR, CLVP, diffusion and their evals on the codec's tokens: they babble (RESULTS
#      sessions 21-28), so they run only when --stage starts within 9-18; a run from stage 0 goes from 8 to 20
#   20-27  recipes/synth/run.sh's phone units: a CTC head on the ASR's encoder (--units-asr ASR, else stage 7's
#      $exp/asr-export) force-aligns every utterance's phones (20, $exp/phunits), the units decoder (21), VALL-E's AR
#      and lengths NAR (22-23), its export and evaluation on 40 held-out strings in the four held-out voices (24,
#      $exp/valle_phones_eval.json), Tortoise's AR and CLVP (25-26), its export and evaluation: CLVP's pick of 16
#      against a random candidate (27, $exp/tortoise_phones_eval.json). Both decode monotonically along the text's
#      phones (VALL-E R): the AR chooses the pauses, the lengths NAR each phone's frames.
#   28  both exports on the held-out voices the judge reads (flite rms, festival ked: $out/test-judged.jsonl;
#       tiny.en reads the two espeak voices' recordings at 20-23 % WER), the judge decoding with beam 5 (greedy, it
#       cuts some outputs off after their first digit: RESULTS session 32), on --judged-items strings [120: on 40,
#       one misheard string moves a voice by 5 points, RESULTS session 33] -> $exp/{valle,tortoise}_phones_judged.json;
#       and CLVP's ranking on what it ranks: the phone error of its pick, a random and the best of 16 candidates
#       decoded freely at temperatures 0.8, 1.5 and 2.5 (benchmarks/clvp_rank.py -> $exp/clvp_rank.json)
# Digit strings are scored digit by digit (WER: "4719" = "four seven one nine", "oh" = "zero").
set -euo pipefail

stage=0
stop_stage=28
out=data/digits
utterances=6000
codec=pretrained/codec
exp_root=exp
tag=synth
device=cpu
judge=""
tts_items=40
judged_items=120
pass=()
phone_steps=(--max-steps 2000)  # the phone stages' length unless --max-steps
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
    --judged-items) judged_items=$2; shift 2 ;;
    --max-steps) pass+=("$1" "$2"); phone_steps=(); shift 2 ;;
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
  last=$(( stop_stage < 18 ? stop_stage : 18 ))
  if [ "$first" -le 8 ] && [ "$last" -ge 9 ]; then  # the codec-token TTS stages (hours; they babble) only when asked
    echo "  stages 9-18 (VALL-E and Tortoise on the codec's tokens) run only when --stage starts there; skipping them"
    last=8
  fi
  extra=()
  if [ -f "$out-voices/train.jsonl" ]; then
    extra=(--asr-extra "$out-voices/train.jsonl")
  elif [ "$first" -le 6 ] && [ "$stop_stage" -ge 6 ]; then
    echo "  note: $out-voices is missing (a corpus from before session 20): the ASR trains on $out alone; stage 0 makes it"
  fi
  RECIPE_NOTE="recipes/digits/run.sh" bash "$(dirname "$0")/../synth/run.sh" --size digits --corpus "$out" \
    --codec "$codec" --stage "$first" --stop-stage "$last" \
    "${extra[@]}" --asr-beam 5 "${pass[@]}"
fi

if [ "$stop_stage" -ge 20 ] && [ "$stage" -le 27 ]; then  # the phone units and the TTS models on them
  RECIPE_NOTE="recipes/digits/run.sh" bash "$(dirname "$0")/../synth/run.sh" --size digits --corpus "$out" \
    --codec "$codec" --stage "$(( stage > 20 ? stage : 20 ))" --stop-stage "$(( stop_stage < 27 ? stop_stage : 27 ))" \
    "${pass[@]}" "${phone_steps[@]}"
fi

if [ "$stage" -le 28 ] && [ "$stop_stage" -ge 28 ]; then
  echo "stage 28: VALL-E and Tortoise on the held-out voices the judge reads -> $exp/{valle,tortoise}_phones_judged.json   [${SECONDS}s in]"
  if [ -z "$judge" ]; then  # as recipes/synth/run.sh: the default ASR (Whisper tiny.en) where installed, else the recipe's
    judge=$(python -c "from audiokit.pretrained import default_asr; default_asr()" 2>/dev/null && echo asr || echo "$exp/asr-export")
  fi
  grep -E '"speaker": "(flite|festival)' "$out/test.jsonl" > "$out/test-judged.jsonl" || true
  if [ ! -s "$out/test-judged.jsonl" ]; then
    rm -f "$out/test-judged.jsonl"
    echo "  no held-out flite or festival voice in $out/test.jsonl (neither engine installed at stage 0): skipping" >&2
    exit 0
  fi
  audiokit eval tts --manifest "$out/test-judged.jsonl" --model "$exp/valle-phones-export" --asr "$judge" \
    --max-items "$judged_items" --no-prompt-text --temperature 0 --judge-beam 5 --device "$device" --json "$exp/valle_phones_judged.json"
  audiokit eval tts --manifest "$out/test-judged.jsonl" --model "$exp/tortoise-phones-export" --asr "$judge" \
    --max-items "$judged_items" --judge-beam 5 --device "$device" --json "$exp/tortoise_phones_judged.json"
  echo "  CLVP's pick against a random candidate, on the phones they spell (decoded freely) -> $exp/clvp_rank.json"
  python benchmarks/clvp_rank.py --model "$exp/tortoise-phones-export" --manifest "$out/test-judged.jsonl" \
    --items "$judged_items" --temperature 0.8 1.5 2.5 --json "$exp/clvp_rank.json"
fi
