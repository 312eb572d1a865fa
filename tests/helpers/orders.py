"""A table with a timestamp, a free-text note, a number and a category, and the classifier the zoo
fits and exports on it exactly as Train does: datetime and text columns through serving."""

from __future__ import annotations

import csv
import io
from datetime import datetime, timedelta, timezone
from functools import cache
from typing import Any

import numpy as np

from mlstack_core.kinds.inputs import input_widths, model_input
from mlstack_core.tabular import feature_feeds, read_split, write_split
from mlstack_train.zoo import build_pipeline, export_onnx
from tests.helpers.prediction import ModelFixture
from tests.helpers.tables import prepared_from

WORDS = (
    "late box damaged fine great slow courier rain door neighbour lovely broken".split()  # noqa: SIM905
)


def orders_csv(n: int = 400) -> bytes:
    rng = np.random.default_rng(5)
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["placed_at", "note", "amount", "channel", "y"])
    start = datetime(2023, 1, 1, tzinfo=timezone(timedelta(hours=1)))
    for _ in range(n):
        moment = start + timedelta(minutes=int(rng.integers(0, 2 * 365 * 24 * 60)))
        note = " ".join(rng.choice(WORDS, int(rng.integers(3, 12))))
        happy = ("great" in note or "lovely" in note) and "broken" not in note
        label = "yes" if (moment.weekday() >= 5) != happy else "no"
        writer.writerow(
            [moment.isoformat(), note, f"{rng.gamma(2, 30):.2f}", rng.choice(["web", "app"]), label]
        )
    return out.getvalue().encode()


@cache
def orders_model() -> tuple[ModelFixture, Any]:
    """A classifier over a timestamp, a note, a number and a category, fitted and exported with
    the zoo exactly as Train does."""
    prepared = prepared_from(orders_csv())
    schema = prepared.schema
    assert schema["datetime"] == ["placed_at"]
    assert schema["text"] == ["note"]
    table = read_split(write_split(prepared.table, schema, prepared.train_index))
    feeds = feature_feeds(table, schema)
    y = np.asarray(table.columns["y"], dtype=object)
    widths = input_widths(schema)
    text = [f for f in schema["features"] if f["kind"] == "text"]
    pipeline = build_pipeline(
        "logistic_regression",
        {"C": 1.0, "max_iter": 1000},
        task="classification",
        n_numeric=widths["numeric"],
        n_categorical=widths["categorical"],
        seed=0,
        text=text,
    ).fit(model_input(feeds), y)
    onnx = export_onnx(
        pipeline,
        task="classification",
        n_numeric=widths["numeric"],
        n_categorical=widths["categorical"],
        n_text=widths["text"],
    ).SerializeToString()
    return ModelFixture(onnx, pipeline, schema), pipeline
