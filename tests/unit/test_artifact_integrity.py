"""Model files are read only as the bytes a hash vouches for (``mlstack_core.integrity``): a
record that names a file without its sha256 is refused by name, before a byte is read, in each
step that reads one (Evaluate's candidates and production, Register's copy)."""

from __future__ import annotations

import hashlib
import json
from typing import Any

import pytest

from mlstack_core.errors import ArtifactHashMissing, ArtifactTampered
from mlstack_core.integrity import read_verified
from mlstack_core.registry_keys import model_pk, version_sk
from tests.helpers.stack import Stack
from tests.helpers.tables import penguins_bytes

pytestmark = pytest.mark.unit


def test_a_missing_hash_is_refused_before_a_byte_is_read(aws: Stack) -> None:
    body = b"an ONNX export"
    put = aws.s3.put_object(Bucket=aws.model_bucket, Key="runs/m/r/model.onnx", Body=body)
    version = put["VersionId"]
    digest = hashlib.sha256(body).hexdigest()
    assert read_verified(aws.s3, aws.model_bucket, "runs/m/r/model.onnx", version, digest) == body
    for missing in (None, ""):
        with pytest.raises(ArtifactHashMissing, match="no recorded sha256"):
            read_verified(aws.s3, aws.model_bucket, "runs/m/r/model.onnx", version, missing)
    # The missing hash needs no object at all: nothing is fetched to be trusted.
    with pytest.raises(ArtifactHashMissing):
        read_verified(aws.s3, aws.model_bucket, "runs/m/r/absent.onnx", None, None)
    # One family with the mismatch, so every Catch of ArtifactTampered stops on it too.
    assert issubclass(ArtifactHashMissing, ArtifactTampered)


def _trained(aws: Stack, model: str) -> dict[str, Any]:
    aws.put_spec(model, {"target": "species", "candidates": ["logistic_regression"]})
    state = aws.upload(model, penguins_bytes())
    state["run"] = aws.preprocess(state)
    state["trained"] = aws.train(state["run"])
    return state


@pytest.mark.slow
def test_an_export_without_its_recorded_hash_stops_the_evaluation(aws: Stack) -> None:
    """A trained entry whose hash was dropped from the state is not a weak candidate: the run
    stops by name."""
    state = _trained(aws, "unhashed-export")
    del state["trained"][0]["onnx_sha256"]
    with pytest.raises(ArtifactHashMissing, match="no recorded sha256"):
        aws.evaluate(state["run"], state["trained"])


@pytest.mark.slow
def test_a_winner_without_its_recorded_hash_is_never_registered(aws: Stack) -> None:
    aws.put_spec("unhashed-winner", {"target": "species", "candidates": ["logistic_regression"]})
    # Register takes the winner from Evaluate's stored report, so the hash goes missing where
    # the winner enters the run: Train's answer, as the Map hands it to Evaluate.
    state: dict[str, Any] = aws.upload("unhashed-winner", penguins_bytes())
    state["run"] = aws.preprocess(state)
    state["trained"] = aws.train(state["run"])
    for entry in state["trained"]:
        entry.pop("onnx_sha256", None)
    # Evaluate refuses to read it, so the run stops before Register.
    with pytest.raises(ArtifactHashMissing):
        aws.evaluate(state["run"], state["trained"])
    assert aws.registry.get_alias("unhashed-winner") is None
    assert [v for v in aws.registry.list_versions("unhashed-winner") if v.get("artifact")] == []


@pytest.mark.slow
def test_production_without_its_recorded_hash_is_not_compared(aws: Stack) -> None:
    """A version document whose artifact lost its hash is not scored as production: Evaluate
    says why, and the challenger is judged against the baseline alone."""
    model = "unhashed-production"
    aws.put_spec(model, {"target": "species", "candidates": ["logistic_regression"]})
    version = aws.promote(aws.run_pipeline(model, penguins_bytes()))
    key = {"pk": model_pk(model), "sk": version_sk(version)}
    table = aws.dynamodb.Table(aws.registry_table)
    stored = json.loads(table.get_item(Key=key)["Item"]["doc"])
    del stored["artifact"]["sha256"]
    table.update_item(
        Key=key,
        UpdateExpression="SET doc = :doc",
        ExpressionAttributeValues={":doc": json.dumps(stored)},
    )

    champion = aws.run_pipeline(model, penguins_bytes())["evaluation"]["champion"]
    assert champion["comparable"] is False
    assert "no recorded sha256" in champion["reason"]
