#!/usr/bin/env bash
# The recipe for speech without transcripts: an ASR labels it (VALL-E's training data was made this way), then the
# synthetic recipe's stages train on the labels.
#   bash recipes/untranscribed/run.sh --audio /data/podcasts --test /data/held-out --asr /models/whisper-small.en
# --audio DIR (repeatable): folders of audio (SPEAKER/…/*.wav: the first folder level names the speaker) or JSONL
# manifests without text; --test DIR: held-out speakers, labelled the same way (evaluations run on them); --asr: any
# Whisper model audiokit reads (exported folder, .pt, CTranslate2 or Hugging Face folder); --out [data/untranscribed].
# Stages:
#   0     `audiokit data transcribe`: labels + the ASR's confidence, doubtful utterances set aside in
#         *.rejected.jsonl (resumable: run it again after a kill); 2 % of the training speakers' utterances (by a
#         hash of the id) become the validation set
#   1-19  recipes/synth/run.sh's stages 1-19 on those manifests; every other option (--stage, --stop-stage, --size,
#         --max-steps, --exp, --pretrained, --device, ...) is passed on.
set -euo pipefail

audio=()
test_set=""
asr=""
out=data/untranscribed
stage=0
pass=()
while [ $# -gt 0 ]; do
  case "$1" in
    --audio) audio+=("$2"); shift 2 ;;
    --test) test_set=$2; shift 2 ;;
    --asr) asr=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    --stage) stage=$2; pass+=(--stage "$2"); shift 2 ;;
    *) pass+=("$1"); shift ;;
  esac
done

if [ "$stage" -le 0 ]; then
  [ ${#audio[@]} -gt 0 ] && [ -n "$test_set" ] && [ -n "$asr" ] || {
    echo "stage 0 needs --audio (training audio), --test (held-out speakers) and --asr (the model that labels them)" >&2
    exit 2
  }
  echo "stage 0: labels by $asr -> $out   [this run: stages $stage-; ${SECONDS}s in]"
  mkdir -p "$out"
  audiokit data transcribe "${audio[@]}" --model "$asr" --out "$out/labelled.jsonl"
  audiokit data transcribe "$test_set" --model "$asr" --out "$out/test.jsonl"
  python3 - "$out" <<'PY'
import hashlib, json, sys
out = sys.argv[1]
rows = [json.loads(l) for l in open(f"{out}/labelled.jsonl") if l.strip()]
valid = lambda r: int(hashlib.sha1(r["id"].encode()).hexdigest(), 16) % 50 == 0
for name, keep in (("train", lambda r: not valid(r)), ("valid", valid)):
    with open(f"{out}/{name}.jsonl", "w") as f:
        f.writelines(json.dumps(r) + "\n" for r in rows if keep(r))
print(f"{out}: {sum(not valid(r) for r in rows)} training and {sum(map(valid, rows))} validation utterances")
PY
  pass+=(--stage 1)
fi
RECIPE=recipes/untranscribed/run.sh exec bash "$(dirname "$0")/../synth/run.sh" --corpus "$out" --tag untranscribed "${pass[@]}"
