"""The built serving package (``make build`` → .aws-sam/build) against its budget.

Skipped when there is no build: ``make test`` alone on a fresh clone. CI (``.ci/run`` and the
GitHub workflow alike) runs ``make build`` first, so there these tests run."""

from __future__ import annotations

import subprocess

import pytest

from mlstack.checks.build import runtime_python
from tests.helpers.stack import ROOT

pytestmark = pytest.mark.unit
BUILD = ROOT / ".aws-sam" / "build"
BUDGET_MB = 90.0  # decimal megabytes, function + all its layers, unzipped
REMOVED = (
    "onnxruntime/capi/libonnxruntime.so.*",
    "onnxruntime/tools",
    "onnxruntime/transformers",
    "onnxruntime/quantization",
    "google",
    "numpy/f2py",
    "numpy/_core/include",
)

needs_build = pytest.mark.skipif(
    not (BUILD / "template.yaml").is_file(), reason="no sam build output (make build)"
)


@needs_build
def test_predict_function_and_layers_fit_the_budget() -> None:
    from mlstack.checks.build import function_sizes

    row = next(r for r in function_sizes(BUILD) if r["function"] == "PredictFunction")
    total_mb = row["total"] * 2**20 / 1e6

    assert total_mb <= BUDGET_MB, f"{total_mb:.1f} MB: {row['layers']}"
    assert set(row["layers"]) == {"CoreLayer", "ServingLayer"}


@needs_build
def test_serving_layer_is_trimmed_and_still_runs_a_model() -> None:
    layer = BUILD / "ServingLayer" / "python"
    for pattern in REMOVED:
        assert not list(layer.glob(pattern)), pattern
    assert not list(layer.rglob("__pycache__/*.pyc")), "legacy .pyc layout expected"
    assert not list((layer / "numpy").rglob("*.py")), "sourceless numpy expected"
    runtime = ROOT / "layers" / "serving" / "smoke.onnx"
    program = f"""
import sys
sys.path[:0] = [{str(layer)!r}]
import numpy as np, onnxruntime as ort
s = ort.InferenceSession({str(runtime)!r}, providers=["CPUExecutionProvider"])
out = s.run(None, {{"numeric": np.zeros((3, 2), np.float32),
                   "categorical": np.array([["a"], ["b"], [""]], dtype=object)}})
assert out[1].shape == (3, 2)
print(sorted({{m.split(".")[0] for m in sys.modules}} & {{"google", "packaging", "flatbuffers"}}))
"""
    python = runtime_python()
    if python is None:
        pytest.skip("python3.12 (the layer's runtime) not found")
    done = subprocess.run(
        [python, "-I", "-S", "-B", "-c", program], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "[]"
