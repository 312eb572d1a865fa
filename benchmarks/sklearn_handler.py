"""The comparison point for cold starts: the same prediction handler, serving with scikit-learn.

What a "scikit-learn Lambda" does: read the production alias and the version document from the
same registry, fetch the pickled Pipeline from S3, ``joblib.load`` it and call ``predict_proba``.
Only the model runtime differs from functions/predict (no checksum, no validation: every saving
is on its side). Run by benchmarks/serving.py in a fresh ``python3.12 -I -S`` process.
"""

from __future__ import annotations

import io
import json
import os
from typing import Any

import boto3
import joblib
import numpy as np

from mlstack_core.registry import Registry

_cache: dict[str, Any] = {}


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    model = event["pathParameters"]["model"]
    if model not in _cache:
        registry = Registry(os.environ["REGISTRY_TABLE"])
        version = registry.get_alias(model)
        assert version is not None
        document = registry.get_version(model, version)
        artifact = document["sklearn_artifact"]
        body = boto3.client("s3").get_object(Bucket=artifact["bucket"], Key=artifact["key"])
        _cache[model] = (version, document, joblib.load(io.BytesIO(body["Body"].read())))
    version, document, pipeline = _cache[model]
    schema = document["schema"]
    records = json.loads(event["body"])["instances"]
    numeric, categorical = schema["numeric"], schema["categorical"]
    matrix = np.array(
        [
            [np.nan if record[c] is None else float(record[c]) for c in numeric]
            + ["" if record[c] is None else str(record[c]) for c in categorical]
            for record in records
        ],
        dtype=object,
    )
    probabilities = pipeline.predict_proba(matrix)
    classes = [str(c) for c in pipeline.classes_]
    body = {
        "model": model,
        "version": version,
        "predictions": [classes[i] for i in probabilities.argmax(axis=1)],
        "classes": classes,
        "probabilities": np.round(probabilities, 6).tolist(),
    }
    return {"statusCode": 200, "body": json.dumps(body)}
