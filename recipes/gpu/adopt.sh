#!/usr/bin/env bash
# Take what recipes/gpu/oneshot.sh sent back and make it the project's: the bundle into pretrained/ (cards refreshed,
# each model once, every file verified), the figures into benchmarks/RESULTS.md (and benchmarks/gpu_oneshot.json).
#
#   bash recipes/gpu/adopt.sh OUT                     # OUT: the folder holding oneshot.log, figures.json, bundle.tgz.NN
#   bash recipes/gpu/adopt.sh OUT --pretrained DIR --results FILE --figures FILE     # elsewhere than the defaults
#   bash recipes/gpu/adopt.sh OUT --force             # also a dry run's (tiny) or a partial bundle
#
# A model folder missing from the bundle (its stage failed) leaves the installed one in place. Nothing in pretrained/
# changes unless every model of the bundle verifies against its card; each folder is swapped in whole. Installed
# TTS models on phone units (RESULTS session 30: they say the words; the one-shot trains codec-token ones) stay,
# and so does the codec they link to: the run then adds its figures only (--force installs its models anyway).
set -euo pipefail
cd "$(dirname "$0")/../.."

[ $# -ge 1 ] || { sed -n '2,10p' "$0"; exit 2; }
src=$1; shift
pretrained=pretrained
results=benchmarks/RESULTS.md
figures_copy=benchmarks/gpu_oneshot.json
force=""
while [ $# -gt 0 ]; do
  case "$1" in
    --pretrained) pretrained=$2; shift 2 ;;
    --results) results=$2; shift 2 ;;
    --figures) figures_copy=$2; shift 2 ;;
    --force) force=1; shift ;;
    *) echo "adopt: unknown option $1" >&2; exit 2 ;;
  esac
done
[ -f "$src/figures.json" ] || { echo "adopt: $src/figures.json is missing (not a oneshot results folder?)" >&2; exit 1; }
size=$(python3 -c "import json, sys; print(json.load(open(sys.argv[1])).get('size') or '')" "$src/figures.json")
if [ "$size" = tiny ] && [ -z "$force" ]; then
  echo "adopt: $src holds a dry run's tiny models; --force to install them anyway" >&2
  exit 1
fi

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
if compgen -G "$src/bundle.tgz.*" >/dev/null; then
  cat $(ls "$src"/bundle.tgz.* | sort) >"$tmp/bundle.tgz"
  tar -xzf "$tmp/bundle.tgz" -C "$tmp" || { echo "adopt: the bundle parts do not unpack (a part missing or cut short?)" >&2; exit 1; }
  models=$(cd "$tmp/pretrained" && ls -d */ 2>/dev/null | tr -d / | tr '\n' ' ')
  echo "adopt: the bundle holds: $models"
  for m in codec valle tortoise; do
    [ -d "$tmp/pretrained/$m" ] || { [ -n "$force" ] || { echo "adopt: the bundle lacks $m; --force to install the rest" >&2; exit 1; }; }
  done
  # the returned cards must verify before anything is installed (links inside the bundle resolve there)
  audiokit models "$tmp"/pretrained/* --verify
  kept=""
  for m in valle tortoise; do  # phone-unit TTS models outrank what ten GPU minutes train; their codec stays with them
    if [ -z "$force" ] && [ -f "$pretrained/$m/config.json" ] && grep -q '"units"' "$pretrained/$m/config.json"; then
      kept="$kept $m"
    fi
  done
  if [ -n "$kept" ]; then
    echo "adopt: keeping the installed$kept and codec (on phone units: they say the words, RESULTS session 30); --force to replace them"
    models=$(for m in $models; do case " $kept codec " in *" $m "*) ;; *) printf '%s ' "$m" ;; esac; done)
  fi
  mkdir -p "$pretrained"
  for m in $models; do
    rm -rf "${pretrained:?}/.$m.old"
    [ -d "$pretrained/$m" ] && mv "$pretrained/$m" "$pretrained/.$m.old"
    mv "$tmp/pretrained/$m" "$pretrained/$m"
  done
  for m in $models; do rm -rf "${pretrained:?}/.$m.old"; done
  folders=()
  for m in codec valle tortoise; do [ -d "$pretrained/$m" ] && folders+=("$pretrained/$m"); done
  audiokit models "${folders[@]}" --refresh --share --verify
else
  echo "adopt: no bundle parts in $src (the run returned figures only); pretrained/ left as it is"
fi
python3 recipes/gpu/report.py "$src/figures.json" --results "$results"
cp "$src/figures.json" "$figures_copy"
echo "adopt: figures in $results and $figures_copy"
