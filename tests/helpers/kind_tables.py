"""Tables whose signal lives in a timestamp, a plain date, a free-text note or beside an
identifier: what CRM and shop exports carry. Each comes with the plain scikit-learn script a data
scientist would write for it, so tests and benchmarks can hold the stack to that script's score.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

import numpy as np

Rows = list[dict[str, str]]


@dataclass(frozen=True)
class KindTable:
    name: str
    target: str
    task: str
    rows: Callable[[int, int], Rows]  # (rows, seed) -> rows
    kinds: dict[str, str]  # the kind each column must be read as
    # The plain script's features: a row → a feature vector (text columns: the text itself).
    script: str


_CHANNELS = ("web", "app", "store")
_POSITIVE = [
    "great",
    "excellent",
    "loved",
    "perfect",
    "wonderful",
    "happy",
    "recommend",
    "superb",
    "café",
    "délicieux",
]
_NEGATIVE = [
    "awful",
    "broken",
    "terrible",
    "refund",
    "disappointed",
    "slow",
    "worst",
    "rude",
    "cold",
    "mauvais",
]
_FILLER = [
    "the",
    "order",
    "arrived",
    "and",
    "it",
    "was",
    "with",
    "my",
    "family",
    "we",
    "tried",
    "product",
    "delivery",
    "box",
    "service",
    "again",
    "time",
    "day",
    "week",
    "staff",
    "price",
    "quality",
    "size",
    "colour",
]


def orders(n: int, seed: int) -> Rows:
    """A returned-or-kept label set by the weekday of a timestamp (weekends return), 2% noise."""
    rng = np.random.default_rng(seed)
    start = datetime(2023, 1, 1)
    rows = []
    for _ in range(n):
        moment = start + timedelta(seconds=int(rng.integers(0, 730 * 86400)))
        weekend = moment.weekday() >= 5
        returned = weekend != (rng.random() < 0.02)
        rows.append(
            {
                "placed_at": moment.isoformat(timespec="seconds"),
                "amount": f"{rng.gamma(2.0, 30.0):.2f}",
                "channel": str(rng.choice(_CHANNELS)),
                "returned": "yes" if returned else "no",
            }
        )
    return rows


def rents(n: int, seed: int) -> Rows:
    """Monthly rent from a plain date: a yearly trend and a summer peak, plus floor area."""
    rng = np.random.default_rng(seed)
    rows = []
    for _ in range(n):
        day = datetime(2015, 1, 1) + timedelta(days=int(rng.integers(0, 8 * 365)))
        years = (day - datetime(2015, 1, 1)).days / 365.25
        season = np.cos(2 * np.pi * (day.timetuple().tm_yday - 196) / 365.25)
        area = rng.uniform(30, 120)
        rent = 400 + 60 * years + 150 * season + 6 * area + rng.normal(0, 25)
        rows.append(
            {"listed_on": day.date().isoformat(), "area_m2": f"{area:.1f}", "rent": f"{rent:.2f}"}
        )
    return rows


def reviews(n: int, seed: int) -> Rows:
    """A sentiment label carried by the words of a free-text review (accents included)."""
    rng = np.random.default_rng(seed)
    rows = []
    for _ in range(n):
        positive = bool(rng.random() < 0.5)
        words = list(rng.choice(_FILLER, int(rng.integers(8, 20))))
        signal = _POSITIVE if positive else _NEGATIVE
        noise = _NEGATIVE if positive else _POSITIVE
        words += list(rng.choice(signal, 2)) + list(rng.choice(noise, int(rng.integers(0, 2))))
        rng.shuffle(words)
        text = " ".join(words).capitalize() + rng.choice([".", "!", "..."])
        rows.append(
            {
                "review": text,
                "stars_shown": str(int(rng.integers(1, 6))),
                "sentiment": "positive" if positive else "negative",
            }
        )
    return rows


def customers(n: int, seed: int) -> Rows:
    """A string identifier on every row beside two informative numbers."""
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        x, z = rng.normal(size=2)
        rows.append(
            {
                "customer_ref": f"CU-{seed:02d}{i:06d}-{int(rng.integers(0, 16**4)):04x}",
                "tenure": f"{x:.4f}",
                "spend": f"{z:.4f}",
                "churned": "1" if x + z + rng.normal(0, 0.3) > 0 else "0",
            }
        )
    return rows


TABLES = {
    "orders": KindTable(
        "orders",
        "returned",
        "classification",
        orders,
        {"placed_at": "datetime", "amount": "numeric", "channel": "categorical"},
        "weekday",
    ),
    "rents": KindTable(
        "rents",
        "rent",
        "regression",
        rents,
        {"listed_on": "datetime", "area_m2": "numeric"},
        "date_parts",
    ),
    "reviews": KindTable(
        "reviews",
        "sentiment",
        "classification",
        reviews,
        {"review": "text", "stars_shown": "numeric"},
        "tfidf",
    ),
    "customers": KindTable(
        "customers",
        "churned",
        "classification",
        customers,
        {"customer_ref": "identifier", "tenure": "numeric", "spend": "numeric"},
        "numbers",
    ),
}


def plain_script_score(table: KindTable, train: Rows, test: Rows) -> float:
    """What a plain scikit-learn script reaches on ``test``: the features a data scientist would
    build by hand for this table, a gradient-boosted or linear model, accuracy or R²."""
    from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import accuracy_score, r2_score

    y_train = [row[table.target] for row in train]
    y_test = [row[table.target] for row in test]
    if table.script == "tfidf":
        vectorizer = TfidfVectorizer(ngram_range=(1, 2))
        model = LogisticRegression(max_iter=1000)
        model.fit(vectorizer.fit_transform([r["review"] for r in train]), y_train)
        predicted = model.predict(vectorizer.transform([r["review"] for r in test]))
        return float(accuracy_score(y_test, predicted))

    def features(row: dict[str, str]) -> list[float]:
        if table.script == "weekday":
            moment = datetime.fromisoformat(row["placed_at"])
            return [moment.weekday(), moment.hour, float(row["amount"])]
        if table.script == "date_parts":
            day = datetime.fromisoformat(row["listed_on"])
            return [
                day.year,
                day.month,
                day.timetuple().tm_yday,
                day.toordinal(),
                float(row["area_m2"]),
            ]
        return [float(row["tenure"]), float(row["spend"])]

    x_train = np.asarray([features(r) for r in train])
    x_test = np.asarray([features(r) for r in test])
    if table.task == "regression":
        regressor = HistGradientBoostingRegressor(random_state=0).fit(
            x_train, np.asarray(y_train, dtype=float)
        )
        return float(r2_score(np.asarray(y_test, dtype=float), regressor.predict(x_test)))
    classifier = HistGradientBoostingClassifier(random_state=0).fit(x_train, y_train)
    return float(accuracy_score(y_test, classifier.predict(x_test)))
