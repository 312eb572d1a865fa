"""Tables whose signal is in a timestamp, a plain date or a free-text note, and a table with an
identifier on every row, end to end in the local cloud: upload → the real ASL → promoted →
answers over HTTP and from a batch job.

Each is held to the score of the plain scikit-learn script a data scientist would write for it
(tests/helpers/kind_tables.py), measured on the same unseen rows in the same test, and the same
rows must answer the same through ``/predict``, a batch job and the gate's own scoring of its
holdout.
"""

from __future__ import annotations

import io

import numpy as np
import pytest

from mlstack.cli.demo import as_instance
from mlstack.cli.stack import StackClient
from mlstack.localcloud import LocalCloud
from mlstack_core.tabular import read_split
from tests.helpers.kind_tables import TABLES, plain_script_score
from tests.helpers.local_cloud import batch_predictions, served_score, split_rows, to_csv

pytestmark = pytest.mark.integration

ROWS = 1200
# How far under the plain script's score the served model may land ("within a few points").
SLACK = 0.04


@pytest.mark.parametrize("name", list(TABLES))
def test_the_table_is_read_by_kind_promoted_and_served_like_a_plain_script(
    cloud: LocalCloud, stack: StackClient, name: str
) -> None:
    table = TABLES[name]
    train, unseen = split_rows(table.rows(ROWS, 11), holdout_share=0.2, seed=3)
    model = f"kinds-{name}"
    upload = stack.upload_dataset(model, to_csv(train), {"target": table.target}, "export.csv")
    result = cloud.wait_for_execution(stack.find_execution(upload), timeout=600)
    assert result["status"] == "SUCCEEDED", result.get("cause")
    production = stack.registry.get_alias(model)
    assert production is not None, "a table with signal in its dates or words is promoted"
    document = stack.registry.get_version(model, production)
    schema = document["schema"]

    read_as: dict[str, str] = {f["name"]: f["kind"] for f in schema["features"]}
    read_as.update({i["name"]: "identifier" for i in schema.get("identifiers", [])})
    assert read_as == table.kinds
    assert all(f["reason"] for f in schema["features"])

    # Served over HTTP, against the plain script on the same unseen rows.
    instances = [as_instance(row, table.target) for row in unseen]
    response = stack.predict(model, instances)
    assert response.status == 200, response.body
    truth = [row[table.target] for row in unseen]
    served = served_score(table.task, truth, response.body["predictions"])
    script = plain_script_score(table, train, unseen)
    assert served >= script - SLACK, f"{name}: served {served:.3f}, plain script {script:.3f}"

    # A batch job answers the same rows the same.
    batch = batch_predictions(cloud, model, [{**row, table.target: ""} for row in unseen])
    if table.task == "classification":
        assert batch == [str(p) for p in response.body["predictions"]]
    else:  # the API answers float32's shortest text, the CSV the full float
        assert np.allclose(np.asarray(batch, dtype=float), response.body["predictions"], rtol=1e-6)

    # The gate scored its holdout with what is now served.
    s3 = cloud.client("s3")
    bucket = cloud.outputs["ModelBucketName"]
    holdout = read_split(
        s3.get_object(Bucket=bucket, Key=document["splits"]["holdout_key"])["Body"].read()
    )
    header = holdout.header
    rows = [
        dict(zip(header, cells, strict=True))
        for cells in zip(*holdout.columns.values(), strict=True)
    ]
    with np.load(
        io.BytesIO(
            s3.get_object(Bucket=bucket, Key=document["files"]["predictions"])["Body"].read()
        )
    ) as gate:
        gated = gate["best_label"] if table.task == "classification" else gate["best_variable"]
        gated = gated.tolist()
    answer = stack.predict(model, [as_instance(row, table.target) for row in rows[:500]])
    assert answer.status == 200, answer.body
    if table.task == "classification":
        assert [str(p) for p in answer.body["predictions"]] == [str(g) for g in gated[:500]]
    else:
        assert np.allclose(answer.body["predictions"], gated[:500], rtol=1e-5, atol=1e-3)
