"""Tables the tests train on, as CSV bytes: the bundled penguins and generated tables with a known
signal."""

from __future__ import annotations

import csv
import io
import json
from importlib import resources
from typing import Any

import numpy as np

from mlstack_core.spec import load_spec, resolve_task
from mlstack_core.tabular import Prepared, prepare, read_csv, target_values
from tests.helpers.kind_tables import customers, orders, reviews
from tests.helpers.shapes import to_csv


def records_csv(rows: list[dict[str, str]]) -> bytes:
    """Rows (column -> text) as a CSV file, the first row's columns as the header."""
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=list(rows[0].keys()), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue().encode()


def penguins_bytes() -> bytes:
    """The palmerpenguins CSV: 344 rows, mixed numeric/categorical, "NA" for missing."""
    return (resources.files("palmerpenguins") / "data" / "penguins.csv").read_bytes()


def improving_uploads(count: int, rows: int = 2000) -> list[tuple[bytes, dict[str, Any]]]:
    """``count`` uploads of one table, each (csv, spec) clearly better than the one before beyond
    the gate's noise: the label is the sign of four equally weighted columns plus a little noise,
    and upload ``k`` lets the model read ``k`` of them (the others are in ``columns.drop``).
    For tests that need production to move by the gate's own decision."""
    rng = np.random.default_rng(2026)
    signal = rng.normal(size=(rows, 4))
    label = (signal.sum(axis=1) + rng.normal(scale=0.3, size=rows) > 0).astype(int)
    names = ["s1", "s2", "s3", "s4"]
    table = [
        {**{n: f"{v:.5f}" for n, v in zip(names, values, strict=True)}, "label": str(y)}
        for values, y in zip(signal, label, strict=True)
    ]
    if not 1 <= count <= len(names):
        raise ValueError(f"between 1 and {len(names)} uploads")
    body = records_csv(table)
    return [
        (body, {"target": "label", "columns": {"drop": names[read:]}})
        for read in range(len(names) - count + 1, len(names) + 1)
    ]


def noisy_penguins(share: float, seed: int = 0) -> bytes:
    """The penguins with ``share`` of their species replaced by a random one: a model trained on
    them is surer of less, so each lower share trains a version the gate finds better beyond
    noise than the one before, with the same columns (production stays comparable)."""
    rows = list(csv.DictReader(io.StringIO(penguins_bytes().decode())))
    rng = np.random.default_rng(seed)
    species = sorted({row["species"] for row in rows})
    for row in rows:
        if rng.random() < share:
            row["species"] = species[int(rng.integers(len(species)))]
    return records_csv(rows)


def synthetic_regression(n: int = 200, seed: int = 0) -> bytes:
    rng = np.random.default_rng(seed)
    x1, x2 = rng.normal(size=n), rng.uniform(0, 10, size=n)
    group = rng.choice(["north", "south", "east"], size=n)
    price = 3 * x1 + 0.5 * x2 + (group == "north") * 2 + rng.normal(scale=0.3, size=n)
    lines = ["id,x1,x2,group,price"]
    for i in range(n):
        x1_cell = "" if i % 17 == 0 else f"{x1[i]:.4f}"
        lines.append(f"{i},{x1_cell},{x2[i]:.3f},{group[i]},{price[i]:.3f}")
    return ("\n".join(lines) + "\n").encode()


def linear_regression_csv(
    seed: int, rows: int, weights: tuple[float, float], noise: float
) -> bytes:
    """Columns a, b and target = weights · (a, b) + noise: a regressor's table."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(rows, 2))
    y = x @ np.array(weights) + rng.normal(scale=noise, size=rows)
    lines = ["a,b,target", *(f"{a:.4f},{b:.4f},{t:.4f}" for (a, b), t in zip(x, y, strict=True))]
    return ("\n".join(lines) + "\n").encode()


def generated(
    seed: int, rows: int, numeric: int, categorical: int, classes: int, signal: float
) -> tuple[bytes, dict[str, Any]]:
    """Features, and a label that depends on the first numeric (or categorical) column with
    strength ``signal``; ``classes`` 0 is a regression target. ``signal`` 0: a coin flip."""
    rng = np.random.default_rng(seed)
    header, columns = [], []
    latent = np.zeros(rows)
    for i in range(numeric):
        values = rng.normal(size=rows)
        if i == 0:
            latent += values
        header.append(f"n{i}")
        columns.append([f"{v:.5f}" for v in values])
    for i in range(categorical):
        picks = rng.integers(0, 4, size=rows)
        if i == 0 and not numeric:
            latent += picks - 1.5
        header.append(f"c{i}")
        columns.append([f"level {p}" for p in picks])
    noise = rng.normal(size=rows)
    if classes:
        score = signal * latent + noise
        cuts = np.quantile(score, np.linspace(0, 1, classes + 1)[1:-1])
        target = [f"k{int(k)}" for k in np.searchsorted(cuts, score)]
    else:
        target = [f"{v:.5f}" for v in signal * latent + noise]
    body = to_csv([*header, "label"], [[*r, t] for *r, t in zip(*columns, target, strict=True)])
    return body, {"target": "label", "task": "classification" if classes else "regression"}


def prepared_from(body: bytes, **spec_fields: Any) -> Prepared:
    """What Preprocess does, without S3."""
    spec = load_spec(json.dumps({"target": "y", **spec_fields}).encode())
    table = read_csv(
        body,
        delimiter=spec["delimiter"],
        na_values=spec["na_values"],
        required=[spec["target"]],
        skip=spec["columns"]["drop"],
    )
    spec = resolve_task(spec, target_values(table, spec["target"]))
    return prepare(table, spec)


def csv_of(rows: list[list[Any]]) -> bytes:
    return "\n".join(",".join(str(c) for c in row) for row in rows).encode() + b"\n"


def mixed_csv(rows: int = 300) -> bytes:
    """An export with a timestamp, a number, a category, a free-text review and a customer
    reference; the label (``returned``) follows the weekday of the timestamp."""
    table = [
        {
            "customer_ref": customer["customer_ref"],
            "placed_at": order["placed_at"],
            "amount": order["amount"],
            "channel": order["channel"],
            "review": review["review"],
            "returned": order["returned"],
        }
        for order, review, customer in zip(
            orders(rows, 1), reviews(rows, 2), customers(rows, 3), strict=True
        )
    ]
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=list(table[0]), lineterminator="\n")
    writer.writeheader()
    writer.writerows(table)
    return out.getvalue().encode()


def mixed_prepared(rows: int = 300) -> Prepared:
    """What Preprocess makes of ``mixed_csv``."""
    spec = load_spec(json.dumps({"target": "returned"}).encode())
    read = read_csv(mixed_csv(rows), na_values=spec["na_values"], required=["returned"])
    spec = resolve_task(spec, target_values(read, "returned"))
    return prepare(read, spec)
