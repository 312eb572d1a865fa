"""A model fitted the way a notebook fits one, to bring with ``mlstack import``.

    python examples/churn/notebook.py       # writes model.joblib and holdout.csv beside it
    mlstack import churn-notebook examples/churn/model.joblib \\
        --holdout examples/churn/holdout.csv --target churned --wait

A scikit-learn pipeline (numbers imputed and scaled, the contract one-hot encoded, a logistic
regression) fitted on four fifths of ``churn.csv``; the fifth it never saw is the holdout the
stack judges it on.
"""

from __future__ import annotations

from pathlib import Path

import joblib
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

HERE = Path(__file__).parent
NUMBERS = ["tenure_months", "monthly_charges", "support_calls"]


def main(out: Path = HERE) -> None:
    table = pd.read_csv(HERE / "churn.csv")
    train, holdout = train_test_split(
        table, test_size=0.2, random_state=7, stratify=table["churned"]
    )
    model = Pipeline(
        [
            (
                "preprocess",
                ColumnTransformer(
                    [
                        (
                            "numbers",
                            Pipeline(
                                [
                                    ("fill", SimpleImputer(strategy="median")),
                                    ("scale", StandardScaler()),
                                ]
                            ),
                            NUMBERS,
                        ),
                        ("contract", OneHotEncoder(handle_unknown="ignore"), ["contract"]),
                    ]
                ),
            ),
            ("model", LogisticRegression(max_iter=1000)),
        ]
    ).fit(train[[*NUMBERS, "contract"]], train["churned"])
    joblib.dump(model, out / "model.joblib")
    holdout.to_csv(out / "holdout.csv", index=False)
    print(f"wrote {out / 'model.joblib'} and {out / 'holdout.csv'} ({len(holdout)} rows)")


if __name__ == "__main__":
    main()
