"""The CloudWatch embedded metric format (EMF) records Powertools prints, read back from stdout."""

from __future__ import annotations

import json
from typing import Any

Emitted = tuple[str, str, frozenset[str]]


def emf(stdout: str) -> list[Emitted]:
    """(name, unit, dimension set) for every metric x dimension set of every EMF record."""
    found = []
    for line in stdout.splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if not isinstance(record, dict) or "_aws" not in record:
            continue
        for directive in record["_aws"]["CloudWatchMetrics"]:
            for metric in directive["Metrics"]:
                for dimensions in directive["Dimensions"]:
                    assert all(d in record for d in dimensions), record
                    found.append((metric["Name"], metric["Unit"], frozenset(dimensions)))
    return found


def emf_records(stdout: str) -> list[dict[str, Any]]:
    """The CloudWatch EMF blobs Powertools printed."""
    records = []
    for line in stdout.splitlines():
        if line.startswith("{") and '"_aws"' in line:
            records.append(json.loads(line))
    return records
