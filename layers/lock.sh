#!/usr/bin/env bash
# Regenerates each hash-locked requirements file (.txt) from the .in beside it: every package of
# the closure at one version, with the sha256 of each of its files on PyPI. The layers and
# functions are resolved for the Lambda platform (the template's Python, x86_64 manylinux);
# build_layer.sh installs with --require-hashes, so sam build installs only the files locked here.
#
#   make lock   (uv comes with the dev extra)
set -euo pipefail
cd "$(dirname "$0")/.."
uv=${UV:-.venv/bin/uv}
python_version=$(sed -n 's/^ *Runtime: python\([0-9.]*\)$/\1/p' template.yaml | head -1)

lock() {
  local requirements=$1
  shift
  "$uv" pip compile "$requirements.in" --quiet --generate-hashes \
    --custom-compile-command "make lock" "$@" --output-file "$requirements.txt"
}
lambda_platform=(--python-version "$python_version" --python-platform x86_64-manylinux_2_34)

# The runtime's boto3 and botocore stay out of the core layer (see its requirements.in).
lock layers/core/requirements "${lambda_platform[@]}" --no-deps
lock layers/serving/requirements "${lambda_platform[@]}"
lock layers/training/requirements "${lambda_platform[@]}"
lock functions/preprocess/requirements "${lambda_platform[@]}"
# The training image runs on Fargate (linux/x86_64) with the same Python.
lock containers/training/requirements "${lambda_platform[@]}"
# The SAM CLI runs on developers' machines and CI runners: every Python and platform.
lock .github/sam-cli --universal --python-version 3.11
