"""Which measure can see a useful model of a rare class: accuracy, log loss and the Brier score of
a logistic regression against the majority class, side by side on the same holdout rows.

    .venv/bin/python benchmarks/evidence_measures.py

Generated tables with 2-3 % positives whose label follows a logistic signal in two of five
columns; 80 % train, 20 % holdout. Prints a markdown table for docs/gate.md.
"""

from __future__ import annotations

import numpy as np
from sklearn.linear_model import LogisticRegression

from mlstack_core.evidence import (
    Answers,
    adjusted_confidence,
    bootstrap_intervals,
    bounded_log_loss_rows,
    brier_rows,
    paired_improvement,
)

MEASURES = ("accuracy", "bounded_log_loss", "brier_score")


def one_table(seed: int, rows: int) -> list[str]:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(rows, 5))
    logit = -4.2 + 1.0 * x[:, 0] + 0.6 * x[:, 1]
    y = (rng.random(rows) < 1 / (1 + np.exp(-logit))).astype(int)
    cut = int(rows * 0.8)
    model = LogisticRegression().fit(x[:cut], y[:cut])
    holdout = y[cut:]
    probabilities = model.predict_proba(x[cut:])
    prior = np.tile([1 - holdout.mean(), holdout.mean()], (holdout.size, 1))
    answers = {
        "model": Answers(model.predict(x[cut:]), probabilities),
        "majority": Answers(np.zeros(holdout.size, int), prior),
    }
    _, paired = bootstrap_intervals(
        holdout, [0, 1], answers, MEASURES, 0.95, differences=[("model", "majority")]
    )
    cells = [f"{seed}", f"{holdout.size:,}", f"{holdout.mean():.1%}"]
    cells += [paired[("model", "majority")][m].describe(4) for m in MEASURES]
    # The gate's intervals: three candidates and two measures (log loss and accuracy).
    level = adjusted_confidence(0.95, 3 * 2)
    for per_row in (bounded_log_loss_rows, brier_rows):
        gate = paired_improvement(
            per_row(holdout, prior, [0, 1]), per_row(holdout, probabilities, [0, 1]), level
        )
        cells.append(f"{gate.low:.4f} to {gate.high:.4f}")
    return cells


def main() -> None:
    header = ["seed", "holdout rows", "positives"] + [
        f"{m} improvement (bootstrap)" for m in MEASURES
    ]
    header += ["gate's log loss, 99.2%", "the same with the Brier score"]
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for seed in range(6):
        print("| " + " | ".join(one_table(seed, 8000)) + " |")


if __name__ == "__main__":
    main()
