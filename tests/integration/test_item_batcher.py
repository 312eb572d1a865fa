"""The local cloud's ItemBatcher (moto's parser refuses the field): a Distributed Map reading a CSV
from S3 hands each child a batch, as Step Functions does."""

from __future__ import annotations

import json
from typing import Any

import pytest

from mlstack.localcloud import LocalCloud, template_rewrites
from mlstack.localcloud.template_rewrites import take_item_batchers

pytestmark = pytest.mark.integration

DEFINITION: dict[str, Any] = {
    "StartAt": "ScoreRows",
    "States": {
        "ScoreRows": {
            "Type": "Map",
            "ItemReader": {
                "Resource": "arn:aws:states:::s3:getObject",
                "ReaderConfig": {"InputType": "CSV", "CSVHeaderLocation": "FIRST_ROW"},
                "Parameters": {"Bucket.$": "$.bucket", "Key.$": "$.key"},
            },
            "ItemSelector": {"row.$": "$$.Map.Item.Index", "values.$": "$$.Map.Item.Value"},
            "ItemBatcher": {"MaxItemsPerBatch": 3, "BatchInput": {"job.$": "$.job"}},
            "ItemProcessor": {
                "ProcessorConfig": {"Mode": "DISTRIBUTED", "ExecutionType": "EXPRESS"},
                "StartAt": "Score",
                "States": {"Score": {"Type": "Pass", "End": True}},
            },
            "End": True,
        }
    },
}


def test_a_distributed_map_over_a_csv_gets_its_items_in_batches(
    cloud: LocalCloud, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(template_rewrites, "ITEM_BATCHERS", {})
    translated: dict[str, Any] = {
        "Resources": {
            "Machine": {
                "Type": "AWS::StepFunctions::StateMachine",
                "Properties": {"DefinitionString": {"Fn::Sub": json.dumps(DEFINITION)}},
            }
        }
    }
    take_item_batchers(translated)
    local = json.loads(
        translated["Resources"]["Machine"]["Properties"]["DefinitionString"]["Fn::Sub"]
    )
    assert "ItemBatcher" not in json.dumps(local)  # what moto's parser is given
    processor = local["States"]["ScoreRows"]["ItemProcessor"]
    assert processor["ProcessorConfig"]["ExecutionType"] == "STANDARD"  # moto refuses EXPRESS
    assert template_rewrites.ITEM_BATCHERS["ScoreRows"]["batcher"]["MaxItemsPerBatch"] == 3

    s3, bucket = cloud.client("s3"), cloud.outputs["DataBucketName"]
    rows = [f"{i},name {i}" for i in range(7)]
    s3.put_object(
        Bucket=bucket, Key="batcher/rows.csv", Body="\n".join(["id,name", *rows]).encode()
    )
    sfn = cloud.client("stepfunctions")
    machine = sfn.create_state_machine(
        name="batcher-test",
        definition=json.dumps(local),
        roleArn="arn:aws:iam::123456789012:role/batcher-test",
    )["stateMachineArn"]
    job = {"model": "m", "job": "nightly"}
    execution = sfn.start_execution(
        stateMachineArn=machine,
        input=json.dumps({"bucket": bucket, "key": "batcher/rows.csv", "job": job}),
    )["executionArn"]
    result = cloud.wait_for_execution(execution)
    assert result["status"] == "SUCCEEDED", result.get("cause")

    batches = json.loads(result["output"])
    assert [len(b["Items"]) for b in batches] == [3, 3, 1]
    assert all(b["BatchInput"] == {"job": job} for b in batches)
    items = [item for b in batches for item in b["Items"]]
    assert [item["row"] for item in items] == list(range(7))
    assert items[4]["values"] == {"id": "4", "name": "name 4"}
