#!/usr/bin/env bash
# Trims the serving layer (onnxruntime + numpy) to what CPU inference loads, then proves it still
# works: import + a real session.run with only this directory on the path (python3.12 -I -S).
#
#   trim.sh <layer python dir>
#
# Every removal below is something the serving path never loads (checked with sys.modules after
# importing onnxruntime + numpy and running a session; docs/performance.md, "Package size"):
set -euo pipefail

target=$1
runtime_python=${LAMBDA_PYTHON:-python3.12}
before=$(du -sm "$target" | cut -f1)

# onnxruntime ---------------------------------------------------------------------------------
# libonnxruntime.so is the C API library for C/C++ callers. The Python binding
# (onnxruntime_pybind11_state*.so) has the whole runtime linked in and does not list it as NEEDED
# (readelf -d), and nothing dlopens it for the CPU provider: 33 MiB.
rm -f "$target"/onnxruntime/capi/libonnxruntime.so*
# Offline tooling, never imported by `import onnxruntime`: model conversion/optimisation scripts,
# transformer graph fusions, quantization, the ONNX backend test API (it imports onnx), and
# example models.
rm -rf "$target"/onnxruntime/{tools,transformers,quantization,backend,datasets}
rm -f "$target"/onnxruntime/capi/{convert_npz_to_onnx_adapter,onnxruntime_collect_build_info}.py
# onnxruntime's declared dependencies that only that tooling imports: protobuf (+ its upb
# extension), flatbuffers, packaging.
rm -rf "$target"/google "$target"/protobuf-*.dist-info
rm -rf "$target"/flatbuffers "$target"/flatbuffers-*.dist-info
rm -rf "$target"/packaging "$target"/packaging-*.dist-info

# numpy ---------------------------------------------------------------------------------------
# Build- and test-time parts: f2py (Fortran wrapper generator), the C headers and static libs,
# Cython declarations, type stubs, numpy.testing and the compiled test-only extension modules.
rm -rf "$target"/numpy/{f2py,testing,_pyinstaller,doc} "$target"/numpy/_core/{include,lib}
rm -rf "$target"/numpy/random/_examples
rm -f "$target"/numpy/_core/{_multiarray_tests,_operand_flag_tests,_rational_tests,_struct_ufunc_tests,_umath_tests,_simd}.cpython-*.so
find "$target"/numpy -name '*.pyi' -delete -o -name '*.pxd' -delete -o -name 'conftest.py' -delete
# Everything numpy's own modules need stays, including numpy.random/fft/linalg/ma/polynomial:
# Preprocess and Evaluate use this layer too.

# Sourceless bytecode for the three packages: Lambda cannot write .pyc files, so the layer ships
# them; shipping the .py sources beside them doubles the Python part for tracebacks' source lines
# only. Legacy-layout .pyc (next to where the .py was) are imported directly, as fast as cached
# bytecode (checked by the import below).
for package in numpy onnxruntime orjson; do
  "$runtime_python" -m compileall -q -b -j 0 --invalidation-mode unchecked-hash "$target/$package" >/dev/null
  find "$target/$package" -name '*.py' -delete
  find "$target/$package" -depth -type d -name __pycache__ -exec rm -rf {} +
done

# proof ---------------------------------------------------------------------------------------
# A real model: one float input, one string input, a MatMul-free graph built without the onnx
# package (which the layer does not carry) from a serialized ModelProto checked into this folder.
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
"$runtime_python" -I -S -B - "$target" "$here/smoke.onnx" <<'PY'
import sys
sys.path[:0] = [sys.argv[1]]
import numpy as np
import onnxruntime as ort

options = ort.SessionOptions()
options.intra_op_num_threads = 1
options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
session = ort.InferenceSession(sys.argv[2], sess_options=options, providers=["CPUExecutionProvider"])
feeds = {
    "numeric": np.array([[1.0, np.nan], [3.0, 4.0]], dtype=np.float32),
    "categorical": np.array([["a"], [""]], dtype=object),
}
label, probabilities = session.run(["label", "probabilities"], feeds)
assert label.shape == (2,) and probabilities.shape == (2, 2), (label, probabilities)
assert np.allclose(probabilities.sum(axis=1), 1.0, atol=1e-5)
np.random.default_rng(0).random(3)  # Preprocess's numpy.random still loads
import orjson  # Predict's JSON: numpy arrays encoded natively

assert orjson.loads(orjson.dumps({"p": probabilities}, option=orjson.OPT_SERIALIZE_NUMPY))["p"]
loaded = sorted({m.split(".")[0] for m in sys.modules} & {"google", "flatbuffers", "packaging"})
assert not loaded, loaded
print("serving layer ok: onnxruntime", ort.__version__, "numpy", np.__version__, "orjson", orjson.__version__)
PY
after=$(du -sm "$target" | cut -f1)
echo "serving layer trimmed: ${before} MB -> ${after} MB (du)"
