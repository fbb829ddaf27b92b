#!/usr/bin/env bash
# The `tpu`-marked tests, run through torch_xla on the CPU (PJRT_DEVICE=CPU).
#
# torch_xla is built against one exact torch release, which is not the main environment's, so it
# lives in its own virtual environment (.venv-tpu by default). That environment is built once and
# reused; delete it (or change XLA_VERSION) to rebuild.
#
#   scripts/test-tpu.sh                 # build .venv-tpu if needed, run `pytest -m tpu`
#   XLA_VERSION=2.8.1 scripts/test-tpu.sh
#   scripts/test-tpu.sh tests/train -k pretrain   # arguments replace the default path (tests/train)
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
VENV=${VENV_TPU:-.venv-tpu}
XLA_VERSION=${XLA_VERSION:-2.9.0}
# torch_xla X.Y.* is built for torch X.Y.0; its wheel does not declare that, so we pin it here.
TORCH_VERSION=${TORCH_FOR_XLA:-${XLA_VERSION%.*}.0}
STAMP="$VENV/.installed-xla-$XLA_VERSION-torch-$TORCH_VERSION"

if [ ! -f "$STAMP" ]; then
    echo "building $VENV: torch_xla $XLA_VERSION with torch $TORCH_VERSION (a one-time download of several GB)"
    "$PYTHON" -m venv "$VENV"
    "$VENV/bin/python" -m pip install -q --upgrade pip
    constraints="$VENV/constraints-tpu.txt"
    echo "torch==$TORCH_VERSION" > "$constraints"
    "$VENV/bin/python" -m pip install -q -c "$constraints" "torch==$TORCH_VERSION" "torch_xla==$XLA_VERSION"
    # The project itself (editable) with its test dependencies, held to the same torch.
    "$VENV/bin/python" -m pip install -q -c "$constraints" -e '.[dev]'
    touch "$STAMP"
fi

export PJRT_DEVICE=CPU
export CPU_NUM_DEVICES=${CPU_NUM_DEVICES:-1}
# The tpu-marked tests live in tests/train; other test modules may need packages this venv lacks
# (TensorFlow) or the main torch, so they are not collected. Pass paths to run others.
[ "$#" -gt 0 ] || set -- tests/train
exec "$VENV/bin/python" -m pytest -q -p no:cacheprovider -m tpu -o addopts="-ra --strict-markers" "$@"
