"""Every metric an alarm or the dashboard in the translated template names is one the functions
emit (``mlstack.checks.catalogue``), with the service dimension of a real function.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from mlstack.checks.template.translated import Resolver


# ------------------------------------------------------------------------------------ metrics
@dataclass(frozen=True)
class MetricReference:
    """A metric an alarm or a dashboard widget names: dimension name -> value (None: any)."""

    where: str
    namespace: str
    name: str
    dimensions: tuple[tuple[str, str | None], ...]


_SEARCH = re.compile(r"SEARCH\(\s*'\{(?P<schema>[^}]*)\}(?P<terms>[^']*)'")


_TERM = re.compile(r'(?P<key>[A-Za-z_][\w.]*)\s*=\s*"(?P<value>[^"]*)"')


def _search_reference(where: str, expression: str) -> MetricReference | None:
    match = _SEARCH.search(expression)
    if match is None:
        return None
    namespace, *dimension_names = [p.strip() for p in match.group("schema").split(",")]
    terms = {m.group("key"): m.group("value") for m in _TERM.finditer(match.group("terms"))}
    return MetricReference(
        where,
        namespace,
        terms.get("MetricName", ""),
        tuple((d, terms.get(d)) for d in dimension_names),
    )


def metric_references(
    translated: Mapping[str, Any], parameters: Mapping[str, str] | None = None
) -> list[MetricReference]:
    """Every metric named by an ``AWS::CloudWatch::Alarm`` (``MetricName`` or ``Metrics``) and by
    the metric widgets of every ``AWS::CloudWatch::Dashboard`` (plain entries, with ``"."``
    repeats, and ``SEARCH`` expressions)."""
    resolver = Resolver(translated, parameters)
    found: list[MetricReference] = []
    for logical_id, resource in translated["Resources"].items():
        properties = resource.get("Properties", {})
        if resource["Type"] == "AWS::CloudWatch::Alarm":
            stats = [properties] if "MetricName" in properties else []
            stats += [
                q["MetricStat"]["Metric"]
                for q in properties.get("Metrics", [])
                if "MetricStat" in q
            ]
            for stat in stats:
                found.append(
                    MetricReference(
                        logical_id,
                        str(resolver.value(stat.get("Namespace"))),
                        str(resolver.value(stat.get("MetricName"))),
                        tuple(
                            (str(d["Name"]), str(resolver.value(d["Value"])))
                            for d in stat.get("Dimensions", [])
                        ),
                    )
                )
        elif resource["Type"] == "AWS::CloudWatch::Dashboard":
            body = json.loads(resolver.value(properties["DashboardBody"]))
            for index, widget in enumerate(body.get("widgets", [])):
                where = f"{logical_id} widget {index} ({widget.get('properties', {}).get('title')})"
                previous: list[Any] = []
                for entry in widget.get("properties", {}).get("metrics", []):
                    if entry and isinstance(entry[0], dict):
                        expression = entry[0].get("expression", "")
                        reference = _search_reference(where, expression)
                        if reference is not None:
                            found.append(reference)
                        continue
                    plain = [e for e in entry if not isinstance(e, dict)]
                    plain = [
                        previous[i] if e == "." and i < len(previous) else e
                        for i, e in enumerate(plain)
                    ]
                    previous = plain
                    namespace, name, *pairs = plain
                    found.append(
                        MetricReference(
                            where,
                            str(namespace),
                            str(name),
                            tuple(
                                (str(pairs[i]), str(pairs[i + 1]))
                                for i in range(0, len(pairs) - 1, 2)
                            ),
                        )
                    )
    return found


def check_metric_names(
    translated: Mapping[str, Any],
    catalogue: Sequence[Any],
    aws_metrics: Mapping[str, Mapping[str, Sequence[str]]],
    parameters: Mapping[str, str] | None = None,
) -> list[str]:
    """Each metric the alarms and dashboards name exists: in the stack's namespace, as a
    catalogued metric (``mlstack.checks.catalogue.METRICS``) with that dimension set and emitted
    by the function the ``service`` dimension names; in an ``AWS/`` namespace, as a known AWS
    metric."""
    resolver = Resolver(translated, parameters)
    namespace = f"mlstack/{resolver.ref('AWS::StackName')}"
    problems = []
    references = metric_references(translated, parameters)
    if not references:
        return ["no alarm or dashboard names a metric: the scan is broken"]
    for ref in references:
        names = {d for d, _ in ref.dimensions}
        label = f"{ref.where}: {ref.namespace} {ref.name!r} [{', '.join(sorted(names))}]"
        if ref.namespace == namespace:
            matches = [m for m in catalogue if m.name == ref.name]
            if not matches:
                problems.append(f"{label}: no function emits a metric of that name")
                continue
            service = dict(ref.dimensions).get("service")
            fits = [
                m
                for m in matches
                if any(set(d) == names for d in m.dimensions)
                and (service is None or m.service == service)
            ]
            if not fits:
                emitted = "; ".join(f"{m.service} {list(m.dimensions)}" for m in matches)
                problems.append(f"{label}: emitted only as {emitted}")
        elif ref.namespace in aws_metrics:
            expected = aws_metrics[ref.namespace].get(ref.name)
            if expected is None:
                problems.append(f"{label}: not a catalogued {ref.namespace} metric")
            elif set(expected) != names:
                problems.append(f"{label}: {ref.namespace} publishes it by {list(expected)}")
        else:
            problems.append(f"{label}: unknown namespace (the stack's is {namespace})")
    return problems
