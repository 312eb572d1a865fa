"""The prediction function while the registry is throttled and S3 is slow: API Gateway events in.

A failed registry read is cached for ``ALIAS_ERROR_TTL_SECONDS``: the last known aliases serve
(stale-if-error), or 503 is answered at once, so the registry is read once per window, not once
per request. Drift summaries and captures that fall due are put by a background thread, so the
request that made them due does not wait for S3. docs/reliability.md quotes these tests; the
side-by-side benchmark is benchmarks/serving_under_throttling.py.
"""

from __future__ import annotations

import json
import time
from typing import Any

import numpy as np
import pytest
from botocore.exceptions import ClientError

from mlstack_core.storage_keys import captures_prefix
from tests.helpers.prediction import Stack, classifier, configure, invoke, mixed_records
from tests.helpers.stack import monitoring_written

pytestmark = pytest.mark.unit

GOOD = mixed_records(1, seed=11, missing=0.0)[0]
# What one failed registry read costs the request that makes it: the SDK's attempts and their
# backoff when DynamoDB throttles (with timeouts, up to seconds; awshttp's are 5 s each).
FAILED_READ_SECONDS = 0.2


class ThrottledRegistry:
    """The registry with its alias reads throttled: each takes FAILED_READ_SECONDS, then fails
    as botocore reports DynamoDB's ThrottlingException. Counts the reads."""

    def __init__(self, registry: Any) -> None:
        self.registry = registry
        self.reads = 0

    def aliases(self, model: str) -> Any:
        self.reads += 1
        time.sleep(FAILED_READ_SECONDS)
        raise ClientError(
            {"Error": {"Code": "ThrottlingException", "Message": "Rate of requests exceeds"}},
            "Query",
        )

    def __getattr__(self, name: str) -> Any:
        return getattr(self.registry, name)


def predict() -> Any:
    return invoke("POST", "/models/penguins/predict", {"instances": [GOOD]})


def throttle_registry(monkeypatch: pytest.MonkeyPatch) -> ThrottledRegistry:
    from mlstack_predict.predictor import get_predictor

    aliases = get_predictor().aliases
    throttled = ThrottledRegistry(aliases.registry)
    monkeypatch.setattr(aliases, "registry", throttled)
    return throttled


def p99_ms(latencies: list[float]) -> float:
    return float(np.percentile(np.asarray(latencies) * 1000, 99))


def test_a_throttled_registry_is_read_once_per_window_while_the_last_aliases_serve(
    serving: Stack, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    configure(monkeypatch, ALIAS_TTL_SECONDS="0.2", ALIAS_ERROR_TTL_SECONDS="60")
    serving.publish("penguins", classifier())
    assert predict().status == 200  # aliases known, session loaded
    healthy = []
    for _ in range(200):
        started = time.perf_counter()
        assert predict().status == 200
        healthy.append(time.perf_counter() - started)
    throttled = throttle_registry(monkeypatch)
    time.sleep(0.25)  # the aliases are due for a refresh, which fails

    latencies = []
    for _ in range(200):
        started = time.perf_counter()
        result = predict()
        latencies.append(time.perf_counter() - started)
        assert (result.status, result.body["version"]) == (200, 1), result.body

    assert throttled.reads == 1, "one failed read per ALIAS_ERROR_TTL_SECONDS, not per request"
    with capsys.disabled():
        print(
            f"\np99 of 200 predictions with a cached alias: healthy registry "
            f"{p99_ms(healthy):.1f} ms, throttled registry {p99_ms(latencies):.1f} ms "
            f"(one failed read: {FAILED_READ_SECONDS * 1000:.0f} ms; a registry timeout: 5000 ms)"
        )
    # Only the request that made the failed read paid for it: the 99th percentile did not.
    assert p99_ms(latencies) < FAILED_READ_SECONDS * 1000


def test_after_the_window_the_registry_is_read_again_and_its_answer_served(
    serving: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    configure(monkeypatch, ALIAS_TTL_SECONDS="0.1", ALIAS_ERROR_TTL_SECONDS="0.5")
    serving.publish("penguins", classifier())
    assert predict().body["version"] == 1
    throttled = throttle_registry(monkeypatch)
    time.sleep(0.15)
    assert [predict().body["version"] for _ in range(5)] == [1] * 5
    assert throttled.reads == 1

    time.sleep(0.6)  # the window is over: the registry is read again, and fails again
    assert predict().body["version"] == 1
    assert throttled.reads == 2

    serving.publish("penguins", classifier())  # v2 promoted while the registry was throttled
    monkeypatch.setattr(throttled, "aliases", throttled.registry.aliases)  # it recovers
    time.sleep(0.6)
    assert predict().body["version"] == 2


def test_a_cold_container_answers_503_at_once_while_the_registry_is_throttled(
    serving: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    configure(monkeypatch, ALIAS_ERROR_TTL_SECONDS="60")
    serving.publish("penguins", classifier())
    throttled = throttle_registry(monkeypatch)

    answers = [predict() for _ in range(20)]

    assert {a.status for a in answers} == {503}
    assert all(int(a.raw["headers"]["Retry-After"]) >= 1 for a in answers)
    assert all("registry cannot be reached" in a.body["error"] for a in answers)
    assert "ThrottlingException" not in json.dumps([a.body for a in answers])
    assert throttled.reads == 1, "the 503 is answered without a registry read per request"


# Drift and capture flushes off the answer's path -----------------------------------------------
SLOW_PUT_SECONDS = 1.0


def test_a_due_flush_does_not_delay_the_answer_that_made_it_due(
    captured_model: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mlstack_predict import predictor

    served = predictor.get_predictor()
    s3 = served.s3
    puts: list[str] = []

    class SlowS3:
        """S3 whose PUT takes SLOW_PUT_SECONDS (a throttled or distant bucket)."""

        def put_object(self, **request: Any) -> Any:
            time.sleep(SLOW_PUT_SECONDS)
            puts.append(request["Key"])
            return s3.put_object(**request)

        def __getattr__(self, name: str) -> Any:
            return getattr(s3, name)

    assert predict().status == 200  # the session is loaded: what follows times the answer only
    monitoring_written()
    monkeypatch.setattr(served, "s3", SlowS3())

    started = time.perf_counter()
    answer = predict()
    elapsed = time.perf_counter() - started

    assert answer.status == 200, answer.body
    assert elapsed < SLOW_PUT_SECONDS / 2, f"the answer waited {elapsed:.2f} s for the flush"
    assert puts == []  # not yet written when the answer left
    monitoring_written()
    (put,) = puts
    assert put.startswith(captures_prefix("penguins", 1))
    listing = captured_model.s3.list_objects_v2(
        Bucket=captured_model.bucket, Prefix=captures_prefix("penguins", 1)
    )
    keys = [item["Key"] for item in listing["Contents"]]
    assert put in keys
    body = captured_model.s3.get_object(Bucket=captured_model.bucket, Key=put)["Body"]
    (line,) = body.read().decode().splitlines()
    assert json.loads(line)["request_id"] == answer.body["request_id"]
