"""What a datetime column and a text column cost a served row, side by side with numbers only.

    .venv/bin/python benchmarks/kinds.py --quick                      # a quick look, no file
    .venv/bin/python benchmarks/kinds.py --write docs/performance.md  # the measured block

One generated table (5,000 rows: 8 numeric columns, an ISO timestamp ``placed_at``, a free-text
``note`` of 20 words with capitals and punctuation, a 3-class label that every column informs)
goes through the stack's own steps: ``tabular.prepare`` with a resolved spec reads the kinds and
writes the schema, ``feature_feeds`` + ``model_input`` give the training inputs, and the zoo's
``build_pipeline`` + ``export_onnx`` fit and export three models per family (logistic regression
and histogram gradient boosting, their catalog defaults):

- numbers: the 8 numeric columns (the spec drops the other two);
- + datetime: the same and ``placed_at`` (7 parts appended to the ``numeric`` input);
- + text: the same and ``note`` (the ``text`` input: TF-IDF of up to 1,000 terms of 1-2 words).

Each serves one JSON body of 1 row and one of 1,000 rows (holdout rows, records form), timed at
two levels:

- the contract path: the model loaded by ``contract.load_model`` as the prediction function
  loads it, and what the handler does with a body, ``parse_body`` → ``LoadedModel.run_request``
  (``build_inputs`` + ``session.run``) → ``format_outputs`` → ``encode_json``;
- the handler: the prediction function itself, ``mlstack_predict.app.handler`` called with an API
  Gateway proxy event, each model published to a moto S3 bucket and DynamoDB registry as
  tests/helpers/prediction.py sets them up (with its inline drift baseline, as Register
  writes it). That adds the event, the routing and session caches, drift sampling (every request,
  up to 100 rows: the template's defaults), metrics and the response. The alias cache and the
  drift flush are set to an hour, so that the registry and S3 reads they make at most every 30 s
  and 300 s when deployed are not in the rounds; Powertools' output goes to /dev/null.

All the calls of a family and batch size run interleaved in one process (shuffled rounds, a
block of ~2 ms of calls per round, as benchmarks/serving.py's ``interleaved``), so the machine's
noise hits them alike; the ratios are medians of each round's own ratio. In the same rounds, the
steps of each path are timed alone (decode, inputs, ``session.run``, answer, the handler's drift
sampling), and for the text model its two text costs, each as served and as it was before: the
words (the request's texts gathered, checked and normalised by ``contract.text_tensor``; their
words by ``kinds.text.normalise_all`` alone, by one ``normalise`` call per text, and by its
Unicode pattern alone), and the graph's text branch cut out of the exported graph as its own
session (as exported; with one ``LpNormalization`` for the L2 norm, as ``export_onnx`` wrote it
before; and as skl2onnx writes it). onnxruntime runs on one thread, as served. After the rounds,
onnxruntime's profiler gives the time of each operator inside ``session.run`` (the text
branch's, and the estimator's in the numbers and the text model), and for a tree ensemble the
benchmark walks the 1,000 rows down the exported trees to count the comparisons a row makes per
tree.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import os
import random
import re
import statistics
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager, redirect_stdout
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any
from unittest.mock import patch

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [
    str(ROOT),
    str(ROOT / "layers" / "core"),
    str(ROOT / "functions" / "train"),
    str(ROOT / "functions" / "predict"),
]
os.environ["OMP_NUM_THREADS"] = "1"  # HistGradientBoosting's fit, on a shared machine

import numpy as np  # noqa: E402
from measured import interleaved_rounds, machine, write_measured  # noqa: E402

ROWS = 5_000
BATCHES = (1, 1_000)
N_NUMERIC = 8
WORDS = 20
VOCABULARY = 3_000
CLASSES = ("high", "low", "mid")
FAMILIES = ("logistic_regression", "hist_gradient_boosting")
DATETIME_COLUMN, TEXT_COLUMN = "placed_at", "note"
# The models: which of the two columns each keeps (the spec drops the others).
MODELS = {"numbers": (), "datetime": (DATETIME_COLUMN,), "text": (TEXT_COLUMN,)}
TARGET_RATIO = 2.0  # a 1,000-row request with a text column, against the same without it


# data ---------------------------------------------------------------------------------------------
def vocabulary(rng: random.Random, size: int) -> list[str]:
    """``size`` distinct made-up words of 2-4 syllables."""
    syllables = [c + v for c in "bcdfghjklmnprstvwz" for v in "aeiou"] + ["an", "er", "is", "or"]
    words: dict[str, None] = {}
    while len(words) < size:
        words["".join(rng.choice(syllables) for _ in range(rng.randint(2, 4)))] = None
    return list(words)


def make_csv(rows: int, seed: int) -> bytes:
    """The table as a client uploads it: numbers, an ISO timestamp, a 20-word note, a label."""
    rng = np.random.default_rng(seed)
    pick = random.Random(seed)
    words = vocabulary(pick, VOCABULARY)
    # Word frequencies fall off as in prose (Zipf); the first 60 words lean to one side.
    weights = 1.0 / np.arange(1, VOCABULARY + 1) ** 1.05
    weights /= weights.sum()
    positive, negative = words[:30], words[30:60]
    numeric = rng.normal(size=(rows, N_NUMERIC))
    start = datetime(2023, 1, 1)
    moments = [start + timedelta(seconds=int(s)) for s in rng.integers(0, 2 * 365 * 86400, rows)]
    tone = rng.normal(size=rows)
    score = numeric[:, 0] + 0.5 * numeric[:, 1] ** 2 - numeric[:, 2] * numeric[:, 3]
    score += 0.8 * np.array([m.weekday() >= 5 for m in moments]) + 0.8 * tone
    score += rng.normal(0, 0.7, rows)
    labels = np.array(["low", "mid", "high"])[np.digitize(score, [-0.3, 1.0])]
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow([*(f"x{j}" for j in range(N_NUMERIC)), DATETIME_COLUMN, TEXT_COLUMN, "y"])
    drawn = rng.choice(VOCABULARY, size=(rows, WORDS), p=weights)
    for i in range(rows):
        note = [words[k] for k in drawn[i]]
        leaning = positive if tone[i] > 0 else negative
        for slot in rng.choice(WORDS, size=int(min(4, abs(tone[i]) * 2)), replace=False):
            note[slot] = pick.choice(leaning)
        note[0] = note[0].capitalize()
        note[pick.randrange(WORDS)] = note[pick.randrange(WORDS)].upper()
        note[7] += ","
        writer.writerow(
            [
                *(f"{v:.4f}" for v in numeric[i]),
                moments[i].isoformat(),
                " ".join(note) + pick.choice([".", "!", "..."]),
                labels[i],
            ]
        )
    return buffer.getvalue().encode()


# models -------------------------------------------------------------------------------------------
@dataclass
class Model:
    """One of the three models of a family, trained and loaded as the stack does."""

    family: str
    kind: str  # "numbers", "datetime" or "text"
    schema: dict[str, Any] = field(default_factory=dict)
    onnx: bytes = b""
    fit_seconds: float = 0.0
    loaded: Any = None  # contract.LoadedModel
    bodies: dict[int, str] = field(default_factory=dict)
    events: dict[int, dict[str, Any]] = field(default_factory=dict)  # API Gateway, per body
    # The version document's inline drift baseline, as Register writes it.
    drift_baseline: dict[str, Any] | None = None
    # The text model's graph as skl2onnx writes it, before export_onnx rewrites its text branch.
    converted: bytes = b""

    @property
    def name(self) -> str:
        """Its model name in the registry."""
        return f"{self.family}-{self.kind}"


def prepared(body: bytes, dropped: list[str]) -> Any:
    """What Preprocess does with the upload."""
    from tests.helpers.tables import prepared_from

    return prepared_from(body, columns={"drop": dropped})


def train(model: Model, body: bytes) -> Any:
    """Fit and export as Train does; returns the Prepared table (its holdout serves)."""
    from mlstack_core.candidates import CATALOG
    from mlstack_core.drift import compact, feature_baseline, prediction_baseline
    from mlstack_core.kinds import TEXT
    from mlstack_core.kinds.inputs import (
        CATEGORICAL_INPUT,
        NUMERIC_INPUT,
        TEXT_INPUT,
        input_widths,
        model_input,
    )
    from mlstack_core.tabular import feature_feeds, target_vector
    from mlstack_core.tasks import CLASSIFICATION
    from mlstack_train import zoo

    kept = MODELS[model.kind]
    ready = prepared(body, [c for c in (DATETIME_COLUMN, TEXT_COLUMN) if c not in kept])
    schema = ready.schema
    kinds = {f["name"]: f["kind"] for f in schema["features"]}
    expected = {DATETIME_COLUMN: "datetime", TEXT_COLUMN: "text"}
    assert all(kinds[c] == expected[c] for c in kept), kinds  # read from the data, not declared
    training = ready.table.take(ready.train_index)
    feeds = feature_feeds(training, schema)
    inputs = model_input(feeds)
    widths = input_widths(schema)
    n_numeric, n_categorical = widths.get(NUMERIC_INPUT, 0), widths.get(CATEGORICAL_INPUT, 0)
    started = time.perf_counter()
    pipeline = zoo.build_pipeline(
        model.family,
        CATALOG[CLASSIFICATION][model.family].defaults,
        task=CLASSIFICATION,
        n_numeric=n_numeric,
        n_categorical=n_categorical,
        seed=0,
        text=[f for f in schema["features"] if f["kind"] == TEXT],
    )
    pipeline.fit(inputs, target_vector(training, schema))
    model.fit_seconds = time.perf_counter() - started
    export = partial(
        zoo.export_onnx,
        pipeline,
        task=CLASSIFICATION,
        n_numeric=n_numeric,
        n_categorical=n_categorical,
        n_text=widths.get(TEXT_INPUT, 0),
    )
    model.schema, model.onnx = schema, export().SerializeToString()
    if model.kind == "text":
        with patch.object(zoo, "faster_text_branches", lambda graph: 0):
            model.converted = export().SerializeToString()
    # The drift baseline: the training inputs' distributions (Preprocess) and the predictions on
    # the holdout (Evaluate), inline in the version document when small enough (Register).
    holdout = model_input(feature_feeds(ready.table.take(ready.holdout_index), schema))
    baseline = feature_baseline(schema, feeds)
    baseline["prediction"] = prediction_baseline(
        CLASSIFICATION, {"label": pipeline.predict(holdout)}, list(CLASSES)
    )
    model.drift_baseline = compact(baseline)
    assert model.drift_baseline is not None, "the baseline is not inline: drift would be off"
    return ready


def load(model: Model) -> None:
    from mlstack_core.contract import load_model
    from mlstack_core.settings import serving_settings

    document = {"schema": model.schema, "task": "classification", "classes": list(CLASSES)}
    name = f"{model.family}-{model.kind}"
    model.loaded = load_model(model.onnx, document, serving_settings(), model=name, version=1)


# the prediction function --------------------------------------------------------------------------
@contextmanager
def mocked_stack() -> Iterator[Any]:
    """The prediction function's bucket and registry in moto, as the ``serving`` fixture
    (tests/unit/conftest.py) makes them; the alias cache and the drift flush set to an hour."""
    import boto3
    import pytest
    from moto import mock_aws

    from mlstack_core.registry import TABLE_DEFINITION, Registry
    from tests.helpers import prediction as fixtures  # before the handler: Powertools' setup

    hour = str(3600)
    with pytest.MonkeyPatch.context() as monkeypatch, mock_aws():
        fixtures.configure(monkeypatch, ALIAS_TTL_SECONDS=hour, DRIFT_FLUSH_SECONDS=hour)
        s3 = boto3.client("s3", region_name="us-east-1")
        s3.create_bucket(Bucket=fixtures.MODEL_BUCKET)
        s3.put_bucket_versioning(
            Bucket=fixtures.MODEL_BUCKET, VersioningConfiguration={"Status": "Enabled"}
        )
        dynamodb = boto3.resource("dynamodb", region_name="us-east-1")
        dynamodb.create_table(TableName=fixtures.REGISTRY_TABLE, **TABLE_DEFINITION)
        app = fixtures.load_app()
        from mlstack_core.observability.requests import logger

        with open(os.devnull, "w") as devnull:
            monkeypatch.setattr(logger.registered_handler, "stream", devnull)
            yield fixtures.Stack(Registry(fixtures.REGISTRY_TABLE, dynamodb), s3), app
        fixtures.configure(monkeypatch)


def publish(stack: Any, model: Model) -> None:
    """Register and promote ``model`` as tests/helpers/prediction.py's ``Stack.publish`` does,
    its document carrying the inline drift baseline, as Register's does."""
    from tests.helpers.prediction import ModelFixture

    put_version = stack.registry.put_version

    def with_baseline(name: str, version: int, status: str, document: dict[str, Any]) -> None:
        put_version(name, version, status, {**document, "drift_baseline": model.drift_baseline})

    stack.registry.put_version = with_baseline
    try:
        stack.publish(model.name, ModelFixture(model.onnx, None, model.schema))
    finally:
        del stack.registry.put_version


def handle(app: Any, event: dict[str, Any]) -> str:
    """The prediction function's answer to ``event`` (an API Gateway proxy event): its body."""
    from tests.helpers.lambda_context import FakeLambdaContext

    response = app.handler(event, FakeLambdaContext())
    assert response["statusCode"] == 200, response["body"][:300]
    body: str = response["body"]
    return body


def records(ready: Any, schema: Mapping[str, Any], count: int) -> list[dict[str, Any]]:
    """The first ``count`` holdout rows as a client sends them: numbers as JSON numbers."""
    numeric = set(schema["numeric"])
    names = [f["name"] for f in schema["features"]]
    holdout = ready.table.take(ready.holdout_index[:count])
    cells = {name: holdout.columns[name] for name in names}
    return [
        {
            name: (float(cells[name][i]) if cells[name][i] else None)
            if name in numeric
            else cells[name][i]
            for name in names
        }
        for i in range(holdout.n_rows)
    ]


def session(model: Any, profile_prefix: str | None = None) -> Any:
    """An onnxruntime session of ``model`` (ModelProto) with the serving session's options."""
    import onnxruntime as ort

    from mlstack_core.contract import session_options
    from mlstack_core.settings import serving_settings

    options = session_options(serving_settings())
    if profile_prefix is not None:
        options.enable_profiling = True
        options.profile_file_prefix = profile_prefix
    return ort.InferenceSession(
        model.SerializeToString(), sess_options=options, providers=["CPUExecutionProvider"]
    )


IDF, NORM = "idf Mul", "L2 norm"  # the roles of the text branch's nodes after its vectorizer


def text_branch(onnx_bytes: bytes) -> tuple[Any, dict[str, str]]:
    """The graph's text branch alone, ``text`` → the tensor it hands the model (the Concat's
    input that depends on ``text``), as a session; and the role of each of its nodes (by name):
    its operator, or ``IDF`` for the ``Mul`` by the idf weights and ``NORM`` for the nodes of the
    L2 norm after it."""
    import onnx

    model = onnx.load_from_string(onnx_bytes)
    textual, nodes = {"text"}, []
    counts, weighted = set(), set()  # the vectorizer's outputs; the weighting's and the norm's
    roles: dict[str, str] = {}
    for node in model.graph.node:  # topological order
        if node.op_type == "Concat":
            (end,) = [name for name in node.input if name in textual]
            break
        if textual & set(node.input):
            textual |= set(node.output)
            nodes.append(node)
            if node.op_type == "TfIdfVectorizer":
                counts |= set(node.output)
                roles[node.name] = node.op_type
            elif node.op_type == "Mul" and counts & set(node.input):
                weighted |= set(node.output)
                roles[node.name] = IDF
            elif weighted & set(node.input):
                weighted |= set(node.output)
                roles[node.name] = NORM
            else:
                roles[node.name] = node.op_type
    used = {name for node in nodes for name in node.input}
    graph = onnx.helper.make_graph(
        nodes,
        "text_branch",
        [i for i in model.graph.input if i.name == "text"],
        [onnx.helper.make_tensor_value_info(end, onnx.TensorProto.FLOAT, None)],
        [t for t in model.graph.initializer if t.name in used],
    )
    branch = onnx.helper.make_model(graph, opset_imports=model.opset_import)
    branch.ir_version = model.ir_version
    return session(branch), roles


def with_lp_normalization(onnx_bytes: bytes) -> bytes:
    """The exported graph with each text branch's L2 norm (``Mul`` → ``ReduceSum`` → ``Sqrt`` →
    ``Max`` → ``Div`` after the idf ``Mul``) as one ``LpNormalization(p=2, axis=1)``, as
    ``export_onnx`` wrote it before."""
    import onnx

    model = onnx.load_from_string(onnx_bytes)
    _, roles = text_branch(onnx_bytes)
    nodes = []
    for node in model.graph.node:
        if roles.get(node.name) != NORM:
            nodes.append(node)
        elif node.op_type == "Div":  # the norm's last node: the rows divided by their norm
            nodes.append(
                onnx.helper.make_node(
                    "LpNormalization",
                    [node.input[0]],
                    list(node.output),
                    name=node.name,
                    axis=1,
                    p=2,
                )
            )
    assert sum(node.op_type == "LpNormalization" for node in nodes) == 1, "no norm rewritten"
    del model.graph.node[:]
    model.graph.node.extend(nodes)
    return model.SerializeToString()


def operator_times(onnx_bytes: bytes, feeds: dict[str, Any], runs: int) -> dict[str, Any]:
    """Per node of the graph, (op type, median ms per run): onnxruntime's own profile of
    ``runs`` runs (medians, so that a run the machine interrupted does not count)."""
    import tempfile

    import onnx

    with tempfile.TemporaryDirectory() as directory:
        profiled = session(onnx.load_from_string(onnx_bytes), f"{directory}/profile")
        for _ in range(runs):
            profiled.run(None, feeds)
        events = json.loads(Path(profiled.end_profiling()).read_text())
    durations: dict[str, list[float]] = {}
    kinds: dict[str, str] = {}
    for event in events:
        name = event.get("name", "")
        if event.get("cat") != "Node" or not name.endswith("_kernel_time"):
            continue
        node = name.removesuffix("_kernel_time")
        kinds[node] = event["args"]["op_name"]
        durations.setdefault(node, []).append(float(event["dur"]) / 1000)
    return {node: (kinds[node], statistics.median(ms)) for node, ms in durations.items()}


def estimator_node(onnx_bytes: bytes) -> Any:
    """The node of the fitted estimator: the one that outputs ``label``."""
    import onnx

    graph = onnx.load_from_string(onnx_bytes).graph
    return next(node for node in graph.node if "label" in node.output)


def tree_visits(onnx_bytes: bytes, feeds: dict[str, Any]) -> float | None:
    """For a tree ensemble, the comparisons per row per tree on ``feeds``: how far a row walks
    down a tree, on average. None for other estimators."""
    import onnx
    from onnx import helper

    estimator = estimator_node(onnx_bytes)
    if not estimator.op_type.startswith("TreeEnsemble"):
        return None
    model = onnx.load_from_string(onnx_bytes)
    (entry,) = estimator.input
    if entry not in feeds:  # an inner tensor (the Concat's): make it an output too
        model.graph.output.append(
            helper.make_tensor_value_info(entry, onnx.TensorProto.FLOAT, None)
        )
        names = [output.name for output in model.graph.output]
        values = session(model).run(None, feeds)[names.index(entry)]
    else:
        values = feeds[entry]
    attributes = {a.name: helper.get_attribute_value(a) for a in estimator.attribute}
    thresholds = attributes.get("nodes_values") or list(
        onnx.numpy_helper.to_array(attributes["nodes_values_as_tensor"])
    )
    trees = [int(tree) for tree in attributes["nodes_treeids"]]
    position = {
        (tree, int(node)): i
        for i, (tree, node) in enumerate(zip(trees, attributes["nodes_nodeids"], strict=True))
    }
    true_child, false_child = (
        np.array([position[tree, int(n)] for tree, n in zip(trees, children, strict=True)])
        for children in (attributes["nodes_truenodeids"], attributes["nodes_falsenodeids"])
    )
    modes = np.asarray([mode.decode() for mode in attributes["nodes_modes"]])
    feature = np.asarray(attributes["nodes_featureids"])
    threshold = np.asarray(thresholds, dtype=np.float32)
    missing_true = np.zeros(len(trees), dtype=bool)
    missing_true[: len(attributes.get("nodes_missing_value_tracks_true", []))] = attributes.get(
        "nodes_missing_value_tracks_true", []
    )
    tests = {
        "BRANCH_LEQ": np.less_equal,
        "BRANCH_LT": np.less,
        "BRANCH_GTE": np.greater_equal,
        "BRANCH_GT": np.greater,
        "BRANCH_EQ": np.equal,
        "BRANCH_NEQ": np.not_equal,
    }
    roots = np.array([position[tree, 0] for tree in sorted(set(trees))])
    rows = np.repeat(np.arange(values.shape[0]), roots.size)
    at = np.tile(roots, values.shape[0])
    comparisons = 0
    while True:
        walking = modes[at] != "LEAF"
        if not walking.any():
            break
        comparisons += int(walking.sum())
        here, row = at[walking], rows[walking]
        x = values[row, feature[here]]
        go_true = np.isnan(x) & missing_true[here]
        for mode, test in tests.items():
            chosen = modes[here] == mode
            go_true[chosen] |= test(x[chosen], threshold[here][chosen])
        at[walking] = np.where(go_true, true_child[here], false_child[here])
    return comparisons / at.size


# timing -------------------------------------------------------------------------------------------
def ratio(samples: dict[str, list[float]], top: str, bottom: str) -> float:
    """Median over the rounds of ``top`` / ``bottom`` in the same round."""
    return statistics.median(a / b for a, b in zip(samples[top], samples[bottom], strict=True))


def answer(loaded: Any, outputs: list[Any]) -> str:
    """The response body of a request, from the graph's outputs."""
    from mlstack_core.contract import encode_json, format_outputs

    fields = {"model": loaded.model, "version": loaded.version}
    return encode_json({**fields, **format_outputs(loaded.layout, outputs)})


def serving_path(loaded: Any, body: str, settings: Any) -> str:
    """What the prediction function does with a request body (mlstack_predict.predictor), less
    the event, logging, metrics and drift: decode, inputs, ``session.run``, the answer."""
    from mlstack_core.contract import parse_body

    _, outputs = loaded.run_request(parse_body(body, False, settings))
    return answer(loaded, outputs)


def request_feeds(model: Model, batch: int) -> dict[str, Any]:
    """The graph's inputs for the model's request body of ``batch`` rows."""
    from mlstack_core.contract import build_inputs, parse_body
    from mlstack_core.settings import serving_settings

    parsed = parse_body(model.bodies[batch], False, serving_settings())
    return build_inputs(parsed, model.loaded.layout)


def measure(models: dict[str, Model], batch: int, budget_s: float, app: Any) -> dict[str, Any]:
    """One family at one batch size: the three models' contract paths and handler calls, their
    steps, the text costs."""
    from mlstack_core.contract import build_inputs, parse_body
    from mlstack_core.contract.tensors import datetime_tensor, text_tensor
    from mlstack_core.drift import DriftRecorder
    from mlstack_core.kinds.text import MAX_WORDS, normalise, normalise_all
    from mlstack_core.settings import serving_settings

    settings = serving_settings()
    timers: dict[str, Callable[[], Any]] = {}
    feeds: dict[str, dict[str, Any]] = {}
    drift = DriftRecorder(flush_seconds=3600.0)  # the handler's sampling, without its flushes
    for kind, model in models.items():
        loaded, body, event = model.loaded, model.bodies[batch], model.events[batch]
        parsed = parse_body(body, False, settings)
        feeds[kind] = build_inputs(parsed, loaded.layout)
        outputs = loaded.run(feeds[kind])
        served = json.loads(serving_path(loaded, body, settings))
        assert served["predictions"] == outputs[0].tolist(), kind
        with redirect_stdout(io.StringIO()):
            handled = json.loads(handle(app, event))
        assert handled["predictions"] == served["predictions"], kind
        document = {**loaded.document, "drift_baseline": model.drift_baseline}
        predicted = {loaded.layout.output_names[0]: outputs[0]}
        timers[kind] = partial(serving_path, loaded, body, settings)
        timers[f"{kind}.handler"] = partial(handle, app, event)
        timers[f"{kind}.decode"] = partial(parse_body, body, False, settings)
        timers[f"{kind}.inputs"] = partial(build_inputs, parsed, loaded.layout)
        timers[f"{kind}.run"] = partial(loaded.run, feeds[kind])
        timers[f"{kind}.answer"] = partial(answer, loaded, outputs)
        timers[f"{kind}.drift"] = partial(
            drift.record, model.name, 1, document, feeds[kind], predicted
        )
        if kind == "datetime":
            timers["datetime.parts"] = partial(datetime_tensor, parsed, loaded.layout)
        if kind == "text":
            timers["text.tensor"] = partial(text_tensor, parsed, loaded.layout)
    texts = [row[TEXT_COLUMN] for row in json.loads(models["text"].bodies[batch])["instances"]]
    branch, roles = text_branch(models["text"].onnx)
    before, _ = text_branch(with_lp_normalization(models["text"].onnx))
    converted, _ = text_branch(models["text"].converted)
    text_feed = {"text": feeds["text"]["text"]}
    timers["text.normalise"] = partial(normalise_all, texts)
    timers["text.per_value"] = lambda: list(map(normalise, texts))
    # The words by kinds.text's Unicode pattern alone, as every text was read before its ASCII path.
    word = re.compile(r"\b\w\w+\b")
    timers["text.pattern"] = lambda: [
        " ".join(word.findall(text.lower())[:MAX_WORDS]) if text else "" for text in texts
    ]
    timers["text.branch"] = partial(branch.run, None, text_feed)
    timers["text.lp"] = partial(before.run, None, text_feed)
    timers["text.converted"] = partial(converted.run, None, text_feed)
    with open(os.devnull, "w") as devnull, redirect_stdout(devnull):  # the handler's metrics
        samples = interleaved_rounds(timers, budget_s)
    medians = {name: statistics.median(values) * 1000 for name, values in samples.items()}
    profiled = {
        kind: operator_times(models[kind].onnx, feeds[kind], len(samples[kind]))
        for kind in ("numbers", "text")
    }
    operators: dict[str, float] = {}
    for node, (_, ms) in profiled["text"].items():
        if node in roles:
            operators[roles[node]] = operators.get(roles[node], 0.0) + ms
    for kind in ("numbers", "text"):
        operators[f"estimator.{kind}"] = profiled[kind][estimator_node(models[kind].onnx).name][1]
    return {
        "batch": batch,
        "rounds": len(samples["numbers"]),
        "ms": medians,
        "ratios": {
            path: {
                kind: ratio(samples, f"{kind}{suffix}", f"numbers{suffix}")
                for kind in ("datetime", "text")
            }
            for path, suffix in (("contract", ""), ("handler", ".handler"))
        },
        "normalise_share": ratio(samples, "text.normalise", "text"),
        "branch_share": ratio(samples, "text.branch", "text"),
        "operators": operators,
        "body_kb": {kind: len(m.bodies[batch]) / 1000 for kind, m in models.items()},
    }


# report -------------------------------------------------------------------------------------------
def markdown(report: dict[str, Any], arguments: str) -> str:
    import onnxruntime
    import sklearn

    lines = [
        f"`python benchmarks/kinds.py {arguments}`".replace(" `", "`"),
        f"on {report['machine']}, {report['date']}, onnxruntime {onnxruntime.__version__}, "
        f"scikit-learn {sklearn.__version__}, one thread; {report['minutes']:.1f} minutes. "
        f"{ROWS:,} generated rows ({N_NUMERIC} numeric columns, an ISO timestamp, a note of "
        f"{WORDS} words; 3 classes), {report['rows_trained']:,} trained on, the holdout's rows "
        "served as records. Contract: `parse_body` → `build_inputs` → `session.run` → "
        "`format_outputs` → `encode_json`. Handler: `mlstack_predict.app.handler` on an API "
        "Gateway event (moto S3 and DynamoDB), drift sampling included. Medians; the ratios are "
        "medians of each interleaved round's own ratio.",
        "",
        "| family | rows per request | path | numbers, ms | + datetime, ms | + text, ms | "
        "datetime / numbers | text / numbers |",
        "|---|---:|---|---:|---:|---:|---:|---:|",
    ]
    for family, results in report["families"].items():
        for r in results:
            ms = r["ms"]
            for path, suffix in (("contract", ""), ("handler", ".handler")):
                ratios = r["ratios"][path]
                lines.append(
                    f"| {family} | {r['batch']:,} | {path} | {ms['numbers' + suffix]:.3f} | "
                    f"{ms['datetime' + suffix]:.3f} | {ms['text' + suffix]:.3f} | "
                    f"{ratios['datetime']:.2f} | **{ratios['text']:.2f}** |"
                )
    lines += [
        "",
        "Where the time goes (median ms of each step timed alone, in the same rounds; the steps "
        "do not add up to the whole exactly):",
        "",
        "| family | rows | model | body KB | decode | inputs | of which dates or texts | "
        "session.run | of which the text branch | answer | contract path | drift sampling | "
        "handler |",
        "|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for family, results in report["families"].items():
        for r in results:
            ms = r["ms"]
            for kind in MODELS:
                own = {"datetime": "datetime.parts", "text": "text.tensor"}.get(kind)
                own_ms = f"{ms[own]:.3f}" if own else ""
                branch_ms = f"{ms['text.branch']:.3f}" if kind == "text" else ""
                lines.append(
                    f"| {family} | {r['batch']:,} | {kind} | {r['body_kb'][kind]:.1f} | "
                    f"{ms[f'{kind}.decode']:.3f} | {ms[f'{kind}.inputs']:.3f} | {own_ms} | "
                    f"{ms[f'{kind}.run']:.3f} | {branch_ms} | {ms[f'{kind}.answer']:.3f} | "
                    f"{ms[kind]:.3f} | {ms[f'{kind}.drift']:.3f} | {ms[f'{kind}.handler']:.3f} |"
                )
    lines += [
        "",
        "The text model's two text costs as served and as they were (median ms, same rounds): "
        "the request's texts gathered, checked and normalised (`text_tensor`, the inputs' text "
        "part above); their words alone by `kinds.text.normalise_all`, by one `normalise` call "
        "per text, and by its Unicode pattern alone; the graph's text branch as `export_onnx` "
        "writes it, with one `LpNormalization` for its L2 norm (as it wrote it before), and as "
        "skl2onnx converts it:",
        "",
        "| family | rows | text_tensor | normalise_all | normalise per text | the pattern alone | "
        "text branch, exported | with LpNormalization | as converted |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for family, results in report["families"].items():
        for r in results:
            ms = r["ms"]
            lines.append(
                f"| {family} | {r['batch']:,} | {ms['text.tensor']:.3f} | "
                f"{ms['text.normalise']:.3f} | {ms['text.per_value']:.3f} | "
                f"{ms['text.pattern']:.3f} | {ms['text.branch']:.3f} | {ms['text.lp']:.3f} | "
                f"{ms['text.converted']:.3f} |"
            )
    branch_ops = ("StringSplit", "TfIdfVectorizer", IDF, NORM)
    lines += [
        "",
        "Inside `session.run` (onnxruntime's profile, median ms per run): the text model's text "
        "branch per operator (the idf Mul applies the idf weights; the L2 norm is its five nodes, "
        "Mul, ReduceSum, Sqrt, Max and Div), and the fitted estimator's operator in the numbers "
        "model and in the text model; for tree ensembles, how many comparisons a row of the 1,000 "
        "makes per tree, on average:",
        "",
        "| family | rows | " + " | ".join(branch_ops) + " | estimator, numbers model | "
        "estimator, text model | comparisons per row and tree, numbers → text model |",
        "|---|---:|" + "---:|" * (len(branch_ops) + 3),
    ]
    for family, results in report["families"].items():
        visits = report["visits"][family]
        for r in results:
            ops = r["operators"]
            walked = (
                f"{visits['numbers']:.1f} → {visits['text']:.1f}"
                if visits["text"] is not None and r["batch"] == max(BATCHES)
                else ""
            )
            lines.append(
                f"| {family} | {r['batch']:,} | "
                + " | ".join(f"{ops.get(op, 0.0):.3f}" for op in branch_ops)
                + f" | {ops['estimator.numbers']:.3f} | {ops['estimator.text']:.3f} | {walked} |"
            )
    lines.append("")
    for path in ("contract", "handler"):
        thousand = [
            (family, r["ratios"][path]["text"])
            for family, results in report["families"].items()
            for r in results
            if r["batch"] == max(BATCHES)
        ]
        verdicts = [
            f"{family} {value:.2f}x ({'met' if value <= TARGET_RATIO else 'not met'})"
            for family, value in thousand
        ]
        lines.append(
            f"Target, {path}: a 1,000-row request with a {WORDS}-word text column within "
            f"{TARGET_RATIO:g}x the time of the same request without it: "
            + ", ".join(verdicts)
            + "."
        )
        lines.append("")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="short runs; nothing written")
    parser.add_argument("--budget", type=float, default=8.0, help="seconds per family and batch")
    parser.add_argument("--write", type=Path, help="write the measured block of this document")
    parser.add_argument("--json", type=Path, help="also write every figure here")
    args = parser.parse_args(argv)
    budget = 0.5 if args.quick else args.budget
    began = time.perf_counter()

    body = make_csv(ROWS, seed=7)
    report: dict[str, Any] = {"machine": machine(), "families": {}, "visits": {}}
    with mocked_stack() as (stack, app):
        from tests.helpers.prediction import event

        for family in FAMILIES:
            models = {kind: Model(family, kind) for kind in MODELS}
            for model in models.values():
                ready = train(model, body)
                load(model)
                publish(stack, model)
                served = records(ready, model.schema, max(BATCHES))
                assert len(served) == max(BATCHES), len(served)
                model.bodies = {n: json.dumps({"instances": served[:n]}) for n in BATCHES}
                model.events = {
                    n: event("POST", f"/models/{model.name}/predict", text)
                    for n, text in model.bodies.items()
                }
                report["rows_trained"] = len(ready.train_index)
                print(
                    f"trained {family} {model.kind}: {model.fit_seconds:.1f} s, "
                    f"ONNX {len(model.onnx) / 1e6:.2f} MB",
                    flush=True,
                )
            report["visits"][family] = {
                kind: tree_visits(model.onnx, request_feeds(model, max(BATCHES)))
                for kind, model in models.items()
            }
            results = [measure(models, n, budget, app) for n in BATCHES]
            for r in results:
                print(json.dumps({"family": family, **r}), flush=True)
            report["families"][family] = results
    report["minutes"] = (time.perf_counter() - began) / 60
    report["date"] = time.strftime("%Y-%m-%d", time.gmtime())
    text = markdown(report, " ".join(sys.argv[1:]))
    print(text)
    if args.json:
        args.json.write_text(json.dumps(report, indent=1))
    if args.write and not args.quick:
        write_measured(args.write, text, "kinds.py")
        print(f"wrote {args.write}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
