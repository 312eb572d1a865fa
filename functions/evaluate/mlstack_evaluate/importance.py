"""The winner's global importance: each input column's mean absolute contribution to its answers on
holdout rows, explained as the explain route explains a request (``mlstack_core.explain``), so
every family has one, HistGradientBoosting and k-nearest neighbours included. The card and
``mlstack report`` show it."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

import numpy as np

from mlstack_core.contract import LoadedModel
from mlstack_core.contract.records import table_records
from mlstack_core.contract.request import Batch
from mlstack_core.explain.served import Background, Budget, Players, explain_batch
from mlstack_core.settings import serving_settings
from mlstack_core.tasks import CLASSIFICATION
from mlstack_evaluate.holdout import Holdout

# Holdout rows explained for the importance: about a second for the slowest families.
IMPORTANCE_ROWS: Final = 100
# Columns kept, largest first: the version document is one registry item (400 KB at most), and a
# table may have thousands of columns. The card lists 15, the report plots 25.
MAX_EXPLAINED_FEATURES: Final = 50
KIND: Final = "mean |contribution| on the holdout"


def explained_importance(
    loaded: LoadedModel, holdout: Holdout, background: Mapping[str, Any]
) -> dict[str, Any]:
    """``{"kind", "rows", "features": [{"name", "importance"}, ...], "features_total"}``, the
    ``MAX_EXPLAINED_FEATURES`` largest first (the shape of Train's own feature importance). A
    classifier's contribution is to the probability of the class it predicted."""
    stored = Background.of(background["columns"], background["data"], loaded.layout)
    rows = holdout.sample(IMPORTANCE_ROWS)
    batch = Batch.of_instances(table_records(holdout.table.take(rows), loaded.layout))
    budget = Budget.of(serving_settings(), stored.rows)
    outputs, explained = explain_batch(loaded, batch, stored, budget)
    contributions = np.stack([row.contributions for row in explained])  # [rows, columns, outputs]
    if loaded.layout.task == CLASSIFICATION:
        picked = np.asarray(outputs[1]).argmax(axis=1)
        shares = np.abs(contributions[np.arange(len(explained)), :, picked])
    else:
        shares = np.abs(contributions[:, :, 0])
    means = shares.mean(axis=0)
    names = Players.of(loaded.layout).names
    order = np.argsort(-means, kind="stable")
    return {
        "kind": KIND,
        "rows": len(explained),
        "features": [
            {"name": names[i], "importance": float(means[i])}
            for i in order[:MAX_EXPLAINED_FEATURES]
        ],
        "features_total": len(names),
    }
