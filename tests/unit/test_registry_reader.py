"""Both registries the prediction function can use answer the same reads: the boto3 Registry and
the HTTP one of the serving path (``mlstack_core.registry.RegistryReader``)."""

from __future__ import annotations

import inspect

import pytest

from mlstack_core.registry import Registry, RegistryReader
from mlstack_predict.awshttp import AwsHttp, Credentials, HttpRegistry

pytestmark = pytest.mark.unit

READS = [
    name
    for name, member in inspect.getmembers(RegistryReader, inspect.isfunction)
    if not name.startswith("_")
]


def test_the_protocol_names_the_reads_the_prediction_function_makes() -> None:
    assert set(READS) == {"aliases", "get_alias", "get_version", "list_versions", "list_models"}


@pytest.mark.parametrize("implementation", [Registry, HttpRegistry])
@pytest.mark.parametrize("name", READS)
def test_each_registry_has_every_read_with_the_same_parameters(
    implementation: type, name: str
) -> None:
    expected = inspect.signature(getattr(RegistryReader, name))
    actual = inspect.signature(getattr(implementation, name))
    assert list(actual.parameters.values()) == list(expected.parameters.values())
    assert actual.return_annotation == expected.return_annotation


def test_a_read_the_http_registry_does_not_have_is_an_error_not_a_pass_through() -> None:
    registry = HttpRegistry("registry", AwsHttp("eu-west-1", Credentials("a", "b")))
    with pytest.raises(AttributeError):
        registry.move_alias  # type: ignore[attr-defined]  # noqa: B018


def _statically(registry: Registry, http: HttpRegistry) -> list[RegistryReader]:
    """mypy checks this: both are RegistryReaders."""
    return [registry, http]
