"""The Monitor's alerts: one JSON message on the stack's alerts topic, with the event's name and
the model as message attributes, so subscribers can filter on either."""

from __future__ import annotations

import json
from typing import Any

import boto3

from mlstack_core.settings import stack_settings


def publish_alert(subject: str, event: str, model: str, message: dict[str, Any]) -> None:
    boto3.client("sns").publish(
        TopicArn=stack_settings().alerts_topic_arn,
        Subject=subject,
        Message=json.dumps(message, default=str),
        MessageAttributes={
            "event": {"DataType": "String", "StringValue": event},
            "model": {"DataType": "String", "StringValue": model},
        },
    )
