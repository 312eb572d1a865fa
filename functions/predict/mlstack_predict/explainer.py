"""POST /models/{model}/explain: each row's prediction, a base value and one contribution per input
column as the request names it (``mlstack_core.explain``), from the served ONNX graph.

The background rows a version is explained against are stored beside it (``background.json``,
written when it was trained) and kept per container like its session.
"""

from __future__ import annotations

import json
from collections import OrderedDict
from typing import TYPE_CHECKING, Any, Final

import numpy as np

from mlstack_core.contract import Batch, LoadedModel, format_outputs
from mlstack_core.errors import NoExplanationBackground, PayloadTooLargeError
from mlstack_core.explain.served import (
    Background,
    Budget,
    Players,
    RowExplanation,
    explain_batch,
)
from mlstack_core.settings import ServingSettings
from mlstack_core.tasks import CLASSIFICATION

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

    from mlstack_predict.awshttp import AwsHttp

# Versions whose background rows a container keeps (a few kB each).
BACKGROUNDS_KEPT: Final = 16


class BackgroundCache:
    """Each version's background rows as graph inputs, read once per container."""

    def __init__(self, s3: S3Client | AwsHttp, bucket: str) -> None:
        self.s3 = s3
        self.bucket = bucket
        self._kept: OrderedDict[tuple[str, int], Background] = OrderedDict()

    def get(self, loaded: LoadedModel) -> Background:
        key = (loaded.model, loaded.version)
        if key in self._kept:
            self._kept.move_to_end(key)
            return self._kept[key]
        stored = (loaded.document.get("files") or {}).get("background")
        if not stored:
            raise NoExplanationBackground(
                f"version {loaded.version} of {loaded.model!r} has no background rows to explain "
                "against (it was registered before explanations); a new training run stores them"
            )
        body = json.loads(self.s3.get_object(Bucket=self.bucket, Key=stored)["Body"].read())
        background = Background.of(body["columns"], body["data"], loaded.layout)
        self._kept[key] = background
        if len(self._kept) > BACKGROUNDS_KEPT:
            self._kept.popitem(last=False)
        return background


def check_rows(batch: Batch, settings: ServingSettings) -> None:
    if batch.size > settings.explain_max_rows:
        raise PayloadTooLargeError(
            f"{batch.size} rows exceed the limit of {settings.explain_max_rows} per explain "
            "request (EXPLAIN_MAX_ROWS); send them in several requests"
        )


def _row_answer(
    row: RowExplanation, names: tuple[str, ...], classification: bool
) -> dict[str, Any]:
    if classification:  # each class's probability, in the answer's "classes" order
        return {
            "base": row.base.tolist(),
            "contributions": dict(zip(names, row.contributions.tolist(), strict=True)),
            "exact": row.exact,
        }
    return {
        "base": float(row.base[0]),
        "contributions": dict(zip(names, row.contributions[:, 0].tolist(), strict=True)),
        "exact": row.exact,
    }


def explanation_answer(
    loaded: LoadedModel, batch: Batch, background: Background, settings: ServingSettings
) -> dict[str, Any]:
    """The answer's prediction fields (as ``/predict`` gives them) and explanations."""
    outputs, rows = explain_batch(loaded, batch, background, Budget.of(settings, background.rows))
    names = Players.of(loaded.layout).names
    classification = loaded.layout.task == CLASSIFICATION
    return {
        **format_outputs(loaded.layout, outputs),
        "explanations": [_row_answer(row, names, classification) for row in rows],
        "method": {
            "name": "shapley",
            "background_rows": background.rows,
            "coalitions": int(np.max([row.coalitions for row in rows], initial=0)),
            "coalition_budget": int(np.max([row.budget for row in rows], initial=0)),
        },
    }
