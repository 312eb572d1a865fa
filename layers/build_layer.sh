#!/usr/bin/env bash
# Builds one Lambda layer for the template's runtime and architecture; called by the layer's
# Makefile when `sam build` runs it (BuildMethod: makefile).
#
#   build_layer.sh <requirements.txt> <artifacts dir> [pip options...]
#
# requirements.txt is hash-locked (layers/lock.sh): pip installs only the files whose sha256 it
# lists, so a replaced or newly published file on the index never reaches a layer.
#
# Wheels are fetched for the Lambda platform (not this machine's), then trimmed: test suites are
# dropped, and every module is compiled to bytecode for the runtime's Python. Lambda's code
# directory is read-only, so without shipped .pyc files every cold start recompiles every import.
set -euo pipefail

requirements=$1
artifacts=$2
shift 2

runtime_python=${LAMBDA_PYTHON:-python3.12}
# Lambda's python3.12 runtime is Amazon Linux 2023 (glibc 2.34); template.yaml chooses x86_64.
arch=${LAMBDA_ARCH:-x86_64}
platforms=(--platform "manylinux_2_34_$arch" --platform "manylinux_2_28_$arch" --platform "manylinux2014_$arch")
target="$artifacts/python"
mkdir -p "$target"

"$runtime_python" -m pip install --quiet --disable-pip-version-check \
  --target "$target" "${platforms[@]}" --implementation cp \
  --python-version "$("$runtime_python" -c 'import sys; print(f"{sys.version_info[0]}.{sys.version_info[1]}")')" \
  --only-binary=:all: --no-compile --upgrade --require-hashes "$@" -r "$requirements"

# Test suites and caches are never imported at run time.
find "$target" -depth -type d \( -name tests -o -name __pycache__ \) -exec rm -rf {} +
rm -rf "$target/onnx/backend/test" "$target/bin"

# unchecked-hash: the .pyc is used as is; zip round trips change mtimes, which would invalidate
# timestamp-based bytecode and send Python back to the read-only sources.
"$runtime_python" -m compileall -q -j 0 --invalidation-mode unchecked-hash "$target" >/dev/null
