"""Ground-truth capture: a sample of served rows and their answers, kept so that the labels users
upload later (``feedback/<model>/*.csv``) can be joined to what the model said.

Opt-in per model: the version's spec ``quality.capture``. The stack's ``CaptureSampleRate`` is the
share of requests recorded (every row of a recorded request, up to ``max_rows_per_request``).
The prediction function calls ``record`` after it has the answer; rows wait in memory and leave
as one JSON Lines object per version every ``flush_seconds`` (the drift summaries' interval),
written by the caller under ``captures/<model>/<version>/<day>/`` (a lifecycle rule expires them
after ``CaptureRetentionDays``), so the recorder itself makes no AWS calls and never raises.

A container that stops before its flush (scaled in, redeployed, crashed) loses what it held: at
most ``flush_seconds`` of sampled rows per version, and never more than ``max_buffered_rows``
(beyond that, rows are counted as dropped rather than held).

Each line: ``request_id`` and ``row`` (what the API returned, the join key users quote), the
spec's ``quality.key`` column when the request carried it, ``version``, ``variant``, ``at``,
``features`` (the values as sent), ``prediction`` and, for classifiers, ``probabilities`` in the
order of the version's classes.
"""

from __future__ import annotations

import json
import random
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from mlstack_core.contract.layout import FeatureLayout
from mlstack_core.contract.request import Batch
from mlstack_core.ground_truth import capture_enabled, key_column
from mlstack_core.storage_keys import capture_key


@dataclass
class CaptureRecorder:
    """Sampled rows per served version, waiting for their flush (see the module docstring)."""

    sample_rate: float = 0.0
    flush_seconds: float = 300.0
    max_rows_per_request: int = 1000
    max_buffered_rows: int = 20000
    seed: int | None = None
    clock: Any = time.time
    writer: str = field(default_factory=lambda: uuid.uuid4().hex[:8])
    dropped: int = 0
    errors: int = 0
    _held: dict[tuple[str, int], list[_Held]] = field(default_factory=dict)
    _since: dict[tuple[str, int], float] = field(default_factory=dict)
    _buffered: int = 0
    _sequence: int = 0

    def __post_init__(self) -> None:
        self._random = random.Random(self.seed)

    @classmethod
    def from_settings(cls, sample_rate: float, flush_seconds: float) -> CaptureRecorder:
        return cls(sample_rate=min(1.0, max(0.0, sample_rate)), flush_seconds=flush_seconds)

    def record(
        self,
        model: str,
        layout: FeatureLayout,
        document: Mapping[str, Any],
        batch: Batch,
        answer: Mapping[str, Any],
    ) -> list[tuple[str, bytes]]:
        """Hold this request's rows if it is sampled; return the captures now due."""
        if self.sample_rate <= 0:
            return []
        try:
            sampled = self.sample_rate >= 1.0 or self._random.random() < self.sample_rate
            if sampled and capture_enabled(document):
                self._hold(model, layout, document, batch, answer)
            return self.due() if self._since else []
        except Exception:  # capture must never fail a prediction
            self.errors += 1
            return []

    def _hold(
        self,
        model: str,
        layout: FeatureLayout,
        document: Mapping[str, Any],
        batch: Batch,
        answer: Mapping[str, Any],
    ) -> None:
        """Keep references to what the request already parsed and answered; the JSON lines are
        written at flush time, so a recorded request pays for a few appends, not for encoding."""
        rows = min(batch.size, self.max_rows_per_request)
        room = self.max_buffered_rows - self._buffered
        if rows > room:
            self.dropped += rows - max(room, 0)
            rows = max(room, 0)
        if rows == 0:
            return
        key = key_column(document)
        held = _Held(
            request_id=answer.get("request_id"),
            variant=answer.get("variant"),
            at=round(self.clock(), 3),
            rows=rows,
            columns=layout.inputs,
            values=batch.rows(layout.inputs)[:rows],
            keys=_column_values(batch, key, rows) if key else None,
            predictions=answer.get("predictions", []),
            probabilities=answer.get("probabilities"),
        )
        version = int(answer["version"])
        self._held.setdefault((model, version), []).append(held)
        self._since.setdefault((model, version), self.clock())
        self._buffered += rows

    def due(self, *, everything: bool = False) -> list[tuple[str, bytes]]:
        """The captures whose interval has passed (all of them with ``everything``)."""
        now = self.clock()
        written = []
        for (model, version), since in list(self._since.items()):
            if not everything and now - since < self.flush_seconds:
                continue
            held = self._held.pop((model, version), [])
            del self._since[(model, version)]
            self._buffered -= sum(h.rows for h in held)
            lines = [line for h in held for line in h.lines(version)]
            if lines:
                self._sequence += 1
                key = capture_key(model, version, now, self.writer, self._sequence)
                written.append((key, ("\n".join(lines) + "\n").encode()))
        return written


@dataclass(frozen=True)
class _Held:
    """One recorded request, as references to what it parsed and answered."""

    request_id: Any
    variant: Any
    at: float
    rows: int
    columns: tuple[str, ...]
    values: list[tuple[Any, ...]]
    keys: list[Any] | None
    predictions: Any
    probabilities: Any

    def lines(self, version: int) -> list[str]:
        predictions = _plain(self.predictions)
        probabilities = _plain(self.probabilities) if self.probabilities is not None else None
        base = {
            "request_id": self.request_id,
            "version": version,
            "variant": self.variant,
            "at": self.at,
        }
        lines = []
        for row in range(self.rows):
            line: dict[str, Any] = {
                **base,
                "row": row,
                "features": dict(zip(self.columns, self.values[row], strict=True)),
                "prediction": predictions[row],
            }
            if self.keys is not None:
                line["key"] = self.keys[row]
            if probabilities is not None:
                line["probabilities"] = probabilities[row]
            lines.append(json.dumps(line, default=str, allow_nan=False))
        return lines


def _column_values(batch: Batch, column: str, rows: int) -> list[Any]:
    if batch.instances is not None:
        return [instance.get(column) for instance in batch.instances[:rows]]
    index = batch.index.get(column)
    data = batch.data or []
    return [None if index is None else data[row][index] for row in range(rows)]


def _plain(values: Any) -> list[Any]:
    """JSON-ready values: numpy arrays and scalars as Python ones; NaN as None."""
    plain = values.tolist() if isinstance(values, np.ndarray) else list(values)
    return [_finite(value) for value in plain]


def _finite(value: Any) -> Any:
    if isinstance(value, float) and not np.isfinite(value):
        return None
    if isinstance(value, list):
        return [_finite(item) for item in value]
    return value
