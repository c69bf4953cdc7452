#!/usr/bin/env bash
# Does see-rnn (the best-known earlier RNN inspection tool) still import on this TensorFlow?
# Installs see-rnn 1.15.1 (its last release) without dependencies into a temporary folder and
# imports its inspection module with the project's TensorFlow. Prints the outcome.
set -uo pipefail
cd "$(dirname "$0")/.."
PY=.venv/bin/python
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
"$PY" -m pip install -q --no-deps --target "$tmp" see-rnn==1.15.1 || { echo "could not install see-rnn"; exit 1; }
echo "TensorFlow $("$PY" -c 'import tensorflow as tf; print(tf.__version__)' 2>/dev/null), Keras $("$PY" -c 'import keras; print(keras.__version__)' 2>/dev/null)"
PYTHONPATH="$tmp" TF_CPP_MIN_LOG_LEVEL=3 "$PY" - <<'PY' 2>&1 | grep -v '^[IW]0000\|^WARNING: All'
import importlib
for name in ("see_rnn.inspect_gen", "see_rnn.inspect_rnn"):
    try:
        importlib.import_module(name)
        print(f"{name}: imports")
    except Exception as exc:
        print(f"{name}: FAILS: {type(exc).__name__}: {exc}")
PY
