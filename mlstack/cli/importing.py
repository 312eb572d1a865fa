"""``mlstack import``: a model trained elsewhere, converted here and uploaded with what the stack
needs to hold it to the same gate as a trained one.

The upload is one prefix of the data bucket, ``imports/<model>/<upload>/``: the ONNX file, the
holdout, the original's answers on it (the parity reference), a training sample and a spec when
given, and last the manifest, whose arrival starts the run (README, "Already have a model?").
"""

from __future__ import annotations

import hashlib
import io
import json
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import numpy as np

from mlstack.cli.errors import CommandError
from mlstack.conversion import (
    ModelNotConvertible,
    convert_file,
    original_answers,
    read_holdout,
)
from mlstack_core.storage_keys import IMPORT_MANIFEST_FORMAT, import_file_key

if TYPE_CHECKING:
    import pandas as pd

# The ONNX classifier operators that carry their class labels, in their probabilities' order.
CLASS_LABEL_ATTRIBUTES: Final = ("classlabels_strings", "classlabels_int64s")


@dataclass(frozen=True)
class ImportUpload:
    """The files of one import, named as the upload stores them, and its manifest."""

    upload: str
    files: dict[str, bytes]
    manifest: dict[str, Any]
    dropped_rows: int


def graph_classes(onnx_bytes: bytes) -> list[Any] | None:
    """A classifier graph's class labels, from the operator that holds them."""
    import onnx

    model = onnx.load_from_string(onnx_bytes)
    for node in model.graph.node:
        for attribute in node.attribute:
            if attribute.name not in CLASS_LABEL_ATTRIBUTES:
                continue
            if attribute.strings:
                return [value.decode() for value in attribute.strings]
            if attribute.ints:
                return list(attribute.ints)
    return None


def onnx_answers(onnx_bytes: bytes, frame: pd.DataFrame, features: Sequence[str]) -> dict[str, Any]:
    """An ONNX file's own answers on the holdout, fed as its inputs name them: the reference the
    stack's served graph must reproduce."""
    import onnxruntime as ort
    from pandas.api.types import is_numeric_dtype

    try:
        session = ort.InferenceSession(onnx_bytes, providers=["CPUExecutionProvider"])
    except Exception as error:  # onnxruntime's own errors: the file as given cannot run
        raise ModelNotConvertible(f"onnxruntime cannot load the ONNX file: {error}") from error
    inputs = session.get_inputs()
    numeric_types = {"tensor(float)": np.float32, "tensor(double)": np.float64}
    feeds: dict[str, np.ndarray] = {}
    for graph_input in inputs:
        if graph_input.name in frame.columns:
            column = frame[[graph_input.name]]
            if graph_input.type == "tensor(string)":
                values = column.astype(object).where(column.notna(), "").to_numpy(object)
            else:
                values = column.to_numpy(numeric_types.get(graph_input.type, np.float32))
            feeds[graph_input.name] = values if len(graph_input.shape) == 2 else values.ravel()
        elif len(inputs) == 1:
            texts = [c for c in features if not is_numeric_dtype(frame[c].dtype)]
            if texts:
                raise ModelNotConvertible(
                    f"the ONNX file reads one matrix {graph_input.name!r}, but the holdout's "
                    f"column(s) {', '.join(texts)} hold strings"
                )
            feeds[graph_input.name] = frame[list(features)].to_numpy(
                numeric_types.get(graph_input.type, np.float32)
            )
        else:
            raise ModelNotConvertible(
                f"the ONNX file's input {graph_input.name!r} is not a column of the holdout"
            )
    outputs = session.run(None, feeds)
    if len(outputs) == 2:
        classes = graph_classes(onnx_bytes)
        if classes is None:
            raise ModelNotConvertible(
                "the ONNX file answers two outputs, but no operator in it names the classes"
            )
        probabilities = np.asarray(outputs[1], dtype=float)
        return {
            "classes": classes,
            "labels": np.asarray(outputs[0]).ravel().tolist(),
            "probabilities": probabilities.tolist(),
        }
    return {"values": np.asarray(outputs[0], dtype=float).ravel().tolist()}


def _jsonable(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"{type(value).__name__} is not JSON")


def prepare_import(
    model: str,
    model_file: Path,
    holdout_file: Path,
    target: str,
    *,
    train_sample: Path | None = None,
    spec: Mapping[str, Any] | None = None,
    uploaded_by: str | None = None,
) -> ImportUpload:
    """Convert the model and answer the holdout with the original, on this machine."""
    for path in (model_file, holdout_file, *([train_sample] if train_sample else [])):
        if not path.is_file():
            raise CommandError(f"no such file: {path}")
    frame = read_holdout(holdout_file)
    if target not in frame.columns:
        raise CommandError(
            f"{holdout_file.name} has no column {target!r} (its columns: "
            f"{', '.join(map(str, frame.columns[:12]))})"
        )
    holdout_bytes = holdout_file.read_bytes()
    unlabelled = frame[target].isna()
    if unlabelled.any():  # every holdout row needs its label: the rest are scored by nothing
        frame = frame[~unlabelled].reset_index(drop=True)
        buffer = io.StringIO()
        frame.to_csv(buffer, index=False)
        holdout_bytes = buffer.getvalue().encode()
    dropped = list((spec or {}).get("columns", {}).get("drop", []))
    features = [c for c in frame.columns if c != target and c not in dropped]
    converted = convert_file(model_file, frame, features)
    if converted.original is not None:
        answers = original_answers(converted.original, frame, features)
    else:
        answers = onnx_answers(converted.onnx, frame, features)
    upload = f"{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}-{uuid.uuid4().hex[:8]}"
    files: dict[str, bytes] = {
        "model.onnx": converted.onnx,
        "holdout.csv": holdout_bytes,
        "answers.json": json.dumps(answers, default=_jsonable).encode(),
    }
    if train_sample is not None:
        files["train_sample.csv"] = train_sample.read_bytes()
    if spec is not None:
        files["spec.json"] = json.dumps({**spec, "target": target}).encode()
    keys = {
        "onnx": "model.onnx",
        "holdout": "holdout.csv",
        "answers": "answers.json",
        "train_sample": "train_sample.csv" if train_sample is not None else None,
        "spec": "spec.json" if spec is not None else None,
    }
    manifest = {
        "format": IMPORT_MANIFEST_FORMAT,
        "model": model,
        "target": target,
        "source": converted.source,
        "file": {"name": model_file.name, "sha256": converted.file_sha256},
        "onnx_sha256": hashlib.sha256(converted.onnx).hexdigest(),
        "libraries": converted.libraries,
        "uploaded_by": uploaded_by,
        "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "files": {
            name: (import_file_key(model, upload, file) if file else None)
            for name, file in keys.items()
        },
    }
    return ImportUpload(upload, files, manifest, int(unlabelled.sum()))


def upload_import(s3: Any, bucket: str, model: str, prepared: ImportUpload) -> dict[str, Any]:
    """Every file, then the manifest (whose arrival starts the run); the manifest's S3 address."""
    for name, body in prepared.files.items():
        s3.put_object(Bucket=bucket, Key=import_file_key(model, prepared.upload, name), Body=body)
    key = import_file_key(model, prepared.upload, "manifest.json")
    put = s3.put_object(
        Bucket=bucket,
        Key=key,
        Body=json.dumps(prepared.manifest, indent=2).encode(),
        ContentType="application/json",
    )
    return {"bucket": bucket, "key": key, "version_id": put.get("VersionId")}
