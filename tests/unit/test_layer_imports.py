"""Each function imports only what its Lambda layers carry.

Lambda allows 250 MiB unzipped for a function and its layers. The training layer (scikit-learn,
scipy, numpy, onnx, skl2onnx) is 222 MiB and the serving layer (onnxruntime, numpy) 115 MiB, so no
function can have both (docs/internals.md). Evaluate and Preprocess run on the serving
layer, Train on the training layer. A module that imports a package its layer lacks only fails in
AWS, at import time, so each handler is imported in a fresh process here with only its own
directory and the core layer on the path. (Predict has the same check in test_predict.py.)
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tests.helpers.stack import ROOT

pytestmark = pytest.mark.unit

# The serving layer carries numpy + onnxruntime only (pandas is never shipped at all).
TRAINING_ONLY = ("sklearn", "scipy", "joblib", "skl2onnx", "onnx", "pandas")
SERVING_ONLY = ("onnxruntime",)


def imported_after_loading(function_dir: str, watched: tuple[str, ...]) -> list[str]:
    """The top-level packages among ``watched`` in sys.modules after importing the handler."""
    script = f"""
import importlib, json, sys
module = importlib.import_module("mlstack_{function_dir}.app")
assert callable(module.handler)
watched = {set(watched)!r}
print(json.dumps(sorted({{m.split(".")[0] for m in sys.modules}} & watched)))
"""
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(
            [str(ROOT / "layers" / "core"), str(ROOT / "functions" / function_dir)]
        ),
    }
    out = subprocess.run(
        [sys.executable, "-c", script],
        env=env,
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
    )
    imported: list[str] = json.loads(out.stdout.strip().splitlines()[-1])
    return imported


@pytest.mark.parametrize("function_dir", ["evaluate", "preprocess", "predict", "monitor"])
def test_serving_layer_functions_never_import_scikit_learn(function_dir: str) -> None:
    assert imported_after_loading(function_dir, TRAINING_ONLY) == []


def test_evaluate_does_import_onnxruntime() -> None:
    """The check above is live: the subprocess sees the evaluate module's real imports."""
    assert imported_after_loading("evaluate", SERVING_ONLY) == ["onnxruntime"]


def test_train_never_imports_onnxruntime() -> None:
    assert imported_after_loading("train", SERVING_ONLY) == []


def test_monitor_needs_neither_model_runtime() -> None:
    """The Monitor adds up count arrays: numpy (serving layer) and nothing that runs models."""
    assert imported_after_loading("monitor", SERVING_ONLY) == []
