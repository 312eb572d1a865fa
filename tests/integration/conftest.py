"""Fixtures that run the whole stack: template.yaml in moto, the real ASL, handlers in-process.

Package scope: the local cloud's moto mock ends with this package, before the unit tests start
their own.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from mlstack.cli.stack import StackClient
from mlstack.localcloud import LocalCloud, quiet_local_logs
from tests.helpers.local_cloud import AlertInbox


@pytest.fixture(scope="package")
def cloud() -> Iterator[LocalCloud]:
    quiet_local_logs()
    with LocalCloud(parameters={"LogLevel": "WARNING", "DriftFlushSeconds": "0"}) as local_cloud:
        yield local_cloud


@pytest.fixture(scope="package")
def stack(cloud: LocalCloud) -> StackClient:
    return StackClient(cloud.stack_name)


@pytest.fixture(scope="package")
def alerts(cloud: LocalCloud) -> AlertInbox:
    return AlertInbox(cloud)
