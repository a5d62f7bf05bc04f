#!/usr/bin/env bash
# Download the wheels recipes/gpu/oneshot.sh carries to a GPU machine without a package index (recipes/gpu/wheels.txt)
# into .whl/, for CPython ${PYVER:-3.12} on manylinux x86_64, and trim the two large ones to what an English run reads.
#   bash recipes/gpu/fetch_wheels.sh            # then: the device run carries .whl (e.g. `carry: [".whl"]`)
set -euo pipefail
cd "$(dirname "$0")/../.."
PYVER=${PYVER:-3.12}
mkdir -p .whl
platforms=()
for p in manylinux_2_28_x86_64 manylinux_2_27_x86_64 manylinux_2_17_x86_64 manylinux2014_x86_64 manylinux1_x86_64 any; do
  platforms+=(--platform "$p")
done
grep -vE '^\s*(#|$)' recipes/gpu/wheels.txt | xargs python3 -m pip download -q --no-deps --only-binary=:all: \
  --python-version "$PYVER" --implementation cp "${platforms[@]}" -d .whl
python3 recipes/gpu/trim_wheel.py .whl/espeakng_loader-*.whl --drop 'espeakng_loader/espeak-ng-data/*_dict' --keep '*/en_dict'
python3 recipes/gpu/trim_wheel.py .whl/babel-*.whl --drop 'babel/locale-data/*' --keep 'babel/locale-data/root.dat' \
  --keep 'babel/locale-data/en.dat' --keep 'babel/locale-data/en_US*.dat' --keep 'babel/locale-data/en_001.dat'
echo "$(ls .whl/*.whl | wc -l) wheels in .whl/, $(du -cb .whl/*.whl | tail -1 | cut -f1) bytes"
