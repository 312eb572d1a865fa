"""Regenerates this folder's tables: ``python examples/churn/generate.py``.

``churn.csv`` is last year's customers, whose churn followed short tenure on monthly contracts;
``churn-2026.csv`` is this year's, whose churn follows high charges and support calls. A model of
last year scores poorly on this year, so the second upload passes the gate against the first.

For monitoring: ``watched.json`` is a spec that captures what is served, ``recent.json`` 200 of
this year's customers (with their ``customer_id``) to send to a model of last year, and
``recent-outcomes.csv`` what those customers did: the inputs look like last year's (low drift),
the answers are wrong, and only the outcomes show it.

For batch scoring: ``customers.csv`` is 200 of this year's customers, each with its
``customer_id``, to score with ``mlstack score``.
"""

from __future__ import annotations

import csv
import json
import random
from pathlib import Path

HERE = Path(__file__).parent
CONTRACTS = ["month-to-month", "one-year", "two-year"]
COLUMNS = ["tenure_months", "monthly_charges", "contract", "support_calls", "churned"]


def customer(rng: random.Random) -> dict[str, object]:
    return {
        "tenure_months": rng.randint(1, 72),
        "monthly_charges": round(rng.uniform(20, 120), 2),
        "contract": rng.choice(CONTRACTS),
        "support_calls": rng.randint(0, 6),
    }


def last_year(row: dict[str, object], rng: random.Random) -> bool:
    risky = row["contract"] == "month-to-month" and int(str(row["tenure_months"])) < 24
    return risky != (rng.random() < 0.05)


def this_year(row: dict[str, object], rng: random.Random) -> bool:
    risky = float(str(row["monthly_charges"])) > 80 and int(str(row["support_calls"])) >= 3
    return risky != (rng.random() < 0.05)


def write(name: str, rows: int, churns: object, seed: int) -> list[dict[str, object]]:
    rng = random.Random(seed)
    table = []
    for _ in range(rows):
        row = customer(rng)
        row["churned"] = "yes" if churns(row, rng) else "no"  # type: ignore[operator]
        if rng.random() < 0.03:
            row["support_calls"] = ""  # a few missing values, as real exports have
        table.append(row)
    with open(HERE / name, "w", newline="") as out:
        writer = csv.DictWriter(out, fieldnames=COLUMNS, lineterminator="\n")
        writer.writeheader()
        writer.writerows(table)
    return table


if __name__ == "__main__":
    write("churn.csv", 600, last_year, seed=1)
    recent = write("churn-2026.csv", 600, this_year, seed=2)
    instances = [{k: v for k, v in row.items() if k != "churned"} for row in recent[:2]]
    for instance in instances:
        instance["support_calls"] = instance["support_calls"] or None
    (HERE / "rows.json").write_text(json.dumps({"instances": instances}, indent=2) + "\n")
    spec = {"target": "churned", "approval": "manual", "description": "Customers likely to leave"}
    (HERE / "manual.json").write_text(json.dumps(spec, indent=2) + "\n")
    watched = {
        "target": "churned",
        "description": "Customers likely to leave, watched against their outcomes",
        "drift": {"action": "alert"},
        "quality": {
            "capture": True,
            "key": "customer_id",
            # The example's caller is its operator, so the customer ids it sends are true.
            "key_trusted": True,
            "min_rows": 50,
            "action": "retrain",
        },
    }
    (HERE / "watched.json").write_text(json.dumps(watched, indent=2) + "\n")
    rng = random.Random(3)
    served, outcomes = [], []
    for number in range(200):
        row = customer(rng)
        outcomes.append({"customer_id": f"c-{number:04d}", "churned": this_year(row, rng)})
        served.append({"customer_id": f"c-{number:04d}", **row})
    (HERE / "recent.json").write_text(json.dumps({"instances": served}, indent=1) + "\n")
    with open(HERE / "recent-outcomes.csv", "w", newline="") as out:
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(["customer_id", "churned"])
        writer.writerows([o["customer_id"], "yes" if o["churned"] else "no"] for o in outcomes)
    rng = random.Random(4)
    with open(HERE / "customers.csv", "w", newline="") as out:
        customers = csv.DictWriter(
            out, fieldnames=["customer_id", *COLUMNS[:-1]], lineterminator="\n"
        )
        customers.writeheader()
        customers.writerows({"customer_id": f"b-{n:04d}", **customer(rng)} for n in range(200))
