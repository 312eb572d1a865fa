"""The exported graph's text branch: the standard operators ``zoo.export_onnx`` puts in place of
skl2onnx's (``StringSplit`` for ``Tokenizer``; ``Mul``, ``ReduceSum``, ``Sqrt``, ``Max`` and
``Div`` for the L2 ``Normalizer``) give the scikit-learn pipeline's TF-IDF rows and answers on any
text; ``kinds.text.normalise``'s ASCII path reads the words its pattern reads, and
``normalise_all`` reads a column as ``normalise`` reads each of its values.

Pipelines are the zoo's own (``build_pipeline`` on ``model_input``), fitted on generated rows,
exported with ``export_onnx`` and loaded with the serving contract (its session options and its
warm-up); texts reach both through ``normalise``, as in training and serving.
"""

from __future__ import annotations

import re
import string
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mlstack_core.candidates import CATALOG
from mlstack_core.contract import Batch, LoadedModel, load_model, session_options
from mlstack_core.kinds import text as text_kind
from mlstack_core.kinds.inputs import CATEGORICAL_INPUT, NUMERIC_INPUT, TEXT_INPUT, model_input
from mlstack_core.kinds.text import MAX_WORDS, normalise, normalise_all
from mlstack_core.settings import serving_settings
from mlstack_core.tasks import CLASSIFICATION, REGRESSION
from mlstack_train.zoo import build_pipeline, export_onnx, faster_text_branches

pytestmark = pytest.mark.unit

TOLERANCE = 1e-5
# The TF-IDF rows themselves (each of norm 1) against the vectorizer's.
ROW_TOLERANCE = 1e-6
CLASSES = ["high", "low", "mid"]
NUMERIC = ["amount", "weight"]
CATEGORICAL = ["channel"]
CHANNELS = ["app", "phone", "web"]
# Per text column: its name and the schema's entry (the vocabulary bound, the longest phrase).
TEXT_COLUMNS = [("note", {"max_terms": 40, "ngrams": 2}), ("title", {"max_terms": 25, "ngrams": 1})]
GOOD = ["great", "lovely", "fine", "café", "東京"]
BAD = ["late", "broken", "slow", "énorme", "straße"]
VOCABULARY = [*GOOD, *BAD, "box", "door", "rain", "courier", "neighbour", "naïve", "x_y", "a1"]
# Words a served text may hold: the vocabulary's, in capitals too, one letter, digits, an emoji.
SERVED_WORDS = [*VOCABULARY, "Café", "ÉNORME", "GREAT", "x", "I", "42", "🙂", "a_b", "İstanbul"]

FAMILIES = [
    (CLASSIFICATION, "logistic_regression"),
    (CLASSIFICATION, "hist_gradient_boosting"),
    (REGRESSION, "ridge"),
]
LAYOUTS = [  # (text columns, with the numeric and categorical columns)
    (1, False),
    (2, False),
    (1, True),
    (2, True),
]
MODELS = [
    pytest.param(task, family, texts, tabular, id=f"{family}-{texts}text{'-tabular' * tabular}")
    for task, family in FAMILIES
    for texts, tabular in LAYOUTS
]


# models -------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Fitted:
    pipeline: Any  # the fitted scikit-learn Pipeline
    exported: onnx.ModelProto
    loaded: LoadedModel  # the export as the prediction function loads it
    numeric: list[str]
    categorical: list[str]
    text: list[str]

    def feeds(self, rows: Sequence[Mapping[str, Any]]) -> dict[str, np.ndarray]:
        return feeds_of(rows, self.numeric, self.categorical, self.text)


def _note(rng: np.random.Generator) -> str | None:
    """A training text: a few vocabulary words, some capitalised, with punctuation; or none."""
    if rng.random() < 0.08:
        return None
    words = [str(w) for w in rng.choice(VOCABULARY, int(rng.integers(0, 12)))]
    words = [w.capitalize() if rng.random() < 0.2 else w for w in words]
    return " ".join(words) + str(rng.choice(["", ".", "!", " ...", ","]))


def _rows(n: int, seed: int) -> list[dict[str, Any]]:
    rng = np.random.default_rng(seed)
    rows = []
    for _ in range(n):
        row: dict[str, Any] = {
            "amount": float(rng.normal(0, 2)) if rng.random() > 0.05 else None,
            "weight": float(rng.uniform(-3, 3)),
            "channel": str(rng.choice(CHANNELS)) if rng.random() > 0.05 else None,
        }
        for name, _ in TEXT_COLUMNS:
            row[name] = _note(rng)
        rows.append(row)
    return rows


def _score(row: Mapping[str, Any], text: Sequence[str]) -> float:
    """What the label follows: the tone of the texts' words, and the numbers."""
    words = " ".join(normalise(row[name]) for name in text).split()
    tone = sum(w in GOOD for w in words) - sum(w in BAD for w in words)
    return 0.6 * tone + 0.3 * (row["amount"] or 0.0) - 0.2 * row["weight"]


def feeds_of(
    rows: Sequence[Mapping[str, Any]], numeric: list[str], categorical: list[str], text: list[str]
) -> dict[str, np.ndarray]:
    """The graph's inputs for ``rows``: numbers as float32 (NaN when missing), categories as
    strings ("" when missing), texts through ``normalise``."""
    feeds: dict[str, np.ndarray] = {}
    if numeric:
        feeds[NUMERIC_INPUT] = np.array(
            [[np.nan if row[c] is None else row[c] for c in numeric] for row in rows],
            dtype=np.float32,
        )
    if categorical:
        block = np.empty((len(rows), len(categorical)), dtype=object)
        for j, name in enumerate(categorical):
            block[:, j] = [row[name] or "" for row in rows]
        feeds[CATEGORICAL_INPUT] = block
    block = np.empty((len(rows), len(text)), dtype=object)
    for j, name in enumerate(text):
        block[:, j] = normalise_all([row[name] for row in rows])
    feeds[TEXT_INPUT] = block
    return feeds


@cache
def fitted(task: str, family: str, n_text: int, tabular: bool) -> Fitted:
    """The zoo's pipeline for ``family`` on ``n_text`` text columns (and the numeric and
    categorical ones when ``tabular``), fitted, exported and loaded."""
    numeric = NUMERIC if tabular else []
    categorical = CATEGORICAL if tabular else []
    text = [name for name, _ in TEXT_COLUMNS[:n_text]]
    entries = [entry for _, entry in TEXT_COLUMNS[:n_text]]
    rows = _rows(300, seed=n_text + 10 * tabular)
    scores = np.array([_score(row, text) for row in rows])
    target: np.ndarray
    if task == CLASSIFICATION:
        target = np.array(CLASSES)[np.digitize(scores, np.quantile(scores, [1 / 3, 2 / 3]))]
    else:
        target = scores / 4
    inputs = model_input(feeds_of(rows, numeric, categorical, text))
    pipeline = build_pipeline(
        family,
        CATALOG[task][family].defaults,
        task=task,
        n_numeric=len(numeric),
        n_categorical=len(categorical),
        seed=0,
        categories=[CHANNELS] if tabular else None,
        text=entries,
    ).fit(inputs, target)
    exported = export_onnx(
        pipeline,
        task=task,
        n_numeric=len(numeric),
        n_categorical=len(categorical),
        n_text=n_text,
    )
    schema: dict[str, Any] = {
        "target": "y",
        "task": task,
        "features": [{"name": c, "kind": "numeric"} for c in numeric]
        + [{"name": c, "kind": "categorical", "categories": CHANNELS} for c in categorical]
        + [{"name": name, "kind": "text", **entry} for name, entry in TEXT_COLUMNS[:n_text]],
        "numeric": numeric,
        "categorical": categorical,
        "text": text,
    }
    if task == CLASSIFICATION:
        schema |= {"classes": CLASSES, "label_type": "str"}
    # load_model warms the session up on one all-missing row, as the prediction function does.
    loaded = load_model(
        exported.SerializeToString(), {"schema": schema}, serving_settings(), model="notes"
    )
    return Fitted(pipeline, exported, loaded, numeric, categorical, text)


def assert_same_answers(fitted: Fitted, feeds: dict[str, np.ndarray]) -> None:
    """The graph's probabilities (or values) are the pipeline's on the same inputs."""
    outputs = fitted.loaded.run(feeds)
    inputs = model_input(feeds)
    if fitted.loaded.layout.task == CLASSIFICATION:
        expected = fitted.pipeline.predict_proba(inputs)
        served = outputs[1]
    else:
        expected = fitted.pipeline.predict(inputs)
        served = outputs[0].ravel()
    assert served.shape == expected.shape
    assert np.isfinite(served).all()
    difference = float(np.max(np.abs(served - expected)))
    assert difference <= TOLERANCE, (difference, feeds[TEXT_INPUT].tolist())


# texts --------------------------------------------------------------------------------------------
def _around_max_words(count: int) -> str:
    return " ".join(SERVED_WORDS[i % len(SERVED_WORDS)] for i in range(count))


texts = st.one_of(
    st.none(),
    st.just(""),
    st.text(alphabet=string.punctuation + " \t\n", max_size=40),  # punctuation only
    st.sampled_from(SERVED_WORDS),  # one word
    st.lists(st.sampled_from(SERVED_WORDS), max_size=40).map(" ".join),
    st.lists(st.sampled_from(SERVED_WORDS), max_size=12).map("... ".join),
    st.text(max_size=200),  # any Unicode
    st.integers(MAX_WORDS - 5, MAX_WORDS + 5).map(_around_max_words),
)
records = st.fixed_dictionaries(
    {
        "amount": st.one_of(st.none(), st.floats(-10, 10)),
        "weight": st.floats(-10, 10),
        "channel": st.one_of(st.none(), st.sampled_from([*CHANNELS, "fax"])),
        **{name: texts for name, _ in TEXT_COLUMNS},
    }
)


# tests --------------------------------------------------------------------------------------------
@pytest.mark.slow
@pytest.mark.parametrize(("task", "family", "n_text", "tabular"), MODELS)
@settings(max_examples=25, deadline=None)
@given(batch=st.lists(records, min_size=1, max_size=6))
def test_the_graph_answers_as_the_pipeline_on_any_text(
    task: str, family: str, n_text: int, tabular: bool, batch: list[dict[str, Any]]
) -> None:
    """Empty, punctuation-only, one-word, Unicode and 1,000-word texts, in batches of mixed
    lengths (the graph pads every row to the longest)."""
    model = fitted(task, family, n_text, tabular)
    assert_same_answers(model, model.feeds(batch))


@pytest.mark.slow
@pytest.mark.parametrize(("task", "family", "n_text", "tabular"), MODELS[:4])
@settings(max_examples=25, deadline=None)
@given(batch=st.lists(records, min_size=1, max_size=6))
def test_the_branch_gives_the_vectorizers_rows_on_any_text(
    task: str, family: str, n_text: int, tabular: bool, batch: list[dict[str, Any]]
) -> None:
    """The rows the estimator reads, not only its answers: each branch's L2-normalised TF-IDF
    (the branch is the same whatever the estimator)."""
    assert_same_rows(fitted(task, family, n_text, tabular), batch)


# What a text branch holds after its vectorizer: the idf weighting, then the L2 norm.
AFTER_VECTORIZER = frozenset({"Mul", "ReduceSum", "Sqrt", "Max", "Div"})
SKL2ONNX_NORMS = frozenset({"Normalizer", "LpNormalization"})


def text_branches(exported: onnx.ModelProto) -> list[list[str]]:
    """Per TF-IDF, the operators of its branch in order: from the ``text`` input to the
    vectorizer, then the nodes that follow from it while they are its weighting or norm."""
    nodes = list(exported.graph.node)
    producer = {name: node for node in nodes for name in node.output}
    branches = []
    for at, vectorizer in enumerate(nodes):
        if vectorizer.op_type != "TfIdfVectorizer":
            continue
        before: list[str] = []
        name = vectorizer.input[0]
        while name in producer:
            node = producer[name]
            before.insert(0, node.op_type)
            name = node.input[0]
        assert name == TEXT_INPUT
        after: list[str] = []
        reached = set(vectorizer.output)
        for node in nodes[at + 1 :]:  # topological order
            if reached & set(node.input) and node.op_type in AFTER_VECTORIZER | SKL2ONNX_NORMS:
                after.append(node.op_type)
                reached |= set(node.output)
        branches.append([*before, vectorizer.op_type, *after])
    return branches


def branch_outputs(exported: onnx.ModelProto) -> Iterator[tuple[int, str]]:
    """Per TF-IDF branch, the text column it reads (the index its ``ArrayFeatureExtractor``
    picks; 0 when it reads the input whole) and the name of its normalised rows."""
    nodes = list(exported.graph.node)
    producer = {name: node for node in nodes for name in node.output}
    constants = {t.name: onnx.numpy_helper.to_array(t) for t in exported.graph.initializer}
    consumers: dict[str, list[onnx.NodeProto]] = {}
    for node in nodes:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
    for vectorizer in (node for node in nodes if node.op_type == "TfIdfVectorizer"):
        column, name = 0, vectorizer.input[0]
        while name in producer:
            node = producer[name]
            if node.op_type == "ArrayFeatureExtractor":
                column = int(constants[node.input[1]].ravel()[0])
            name = node.input[0]
        name = vectorizer.output[0]
        while True:
            following = [
                node
                for node in consumers.get(name, [])
                if node.op_type in AFTER_VECTORIZER | SKL2ONNX_NORMS
            ]
            if not following:
                break
            name = following[-1].output[0]  # the norm's last node reads the rows again
        yield column, name


def assert_same_rows(fitted: Fitted, rows: Sequence[Mapping[str, Any]]) -> None:
    """Each text branch's normalised TF-IDF rows are its vectorizer's, to ``ROW_TOLERANCE``."""
    graph = onnx.ModelProto()
    graph.CopyFrom(fitted.exported)
    branches = list(branch_outputs(graph))
    for _, name in branches:
        graph.graph.output.append(
            onnx.helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, None)
        )
    session = ort.InferenceSession(
        graph.SerializeToString(),
        sess_options=session_options(serving_settings()),
        providers=["CPUExecutionProvider"],
    )
    feeds = fitted.feeds(rows)
    served = session.run([name for _, name in branches], feeds)
    transformers = fitted.pipeline.named_steps["preprocess"].named_transformers_
    assert sorted(column for column, _ in branches) == list(range(len(fitted.text)))
    for (column, _), rows_served in zip(branches, served, strict=True):
        expected = transformers[f"text_{column}"].transform(feeds[TEXT_INPUT][:, column])
        expected = expected.toarray()
        assert rows_served.shape == expected.shape
        difference = float(np.max(np.abs(rows_served - expected), initial=0.0))
        assert difference <= ROW_TOLERANCE, (difference, feeds[TEXT_INPUT][:, column].tolist())


@pytest.mark.slow
@pytest.mark.parametrize(("task", "family", "n_text", "tabular"), MODELS)
def test_the_text_branch_has_only_standard_operators(
    task: str, family: str, n_text: int, tabular: bool
) -> None:
    exported = fitted(task, family, n_text, tabular).exported
    onnx.checker.check_model(exported, full_check=True)
    # One column of two is picked from the input first.
    picked = ["ArrayFeatureExtractor"] if n_text > 1 else []
    norm = ["Mul", "ReduceSum", "Sqrt", "Max", "Div"]
    assert (
        text_branches(exported)
        == [[*picked, "StringSplit", "Flatten", "TfIdfVectorizer", "Mul", *norm]] * n_text
    )
    assert "Tokenizer" not in {node.op_type for node in exported.graph.node}
    assert "com.microsoft" not in {o.domain for o in exported.opset_import}
    again = onnx.ModelProto()
    again.CopyFrom(exported)
    assert faster_text_branches(again) == 0  # nothing left to rewrite


@pytest.mark.slow
@pytest.mark.parametrize(("task", "family", "n_text", "tabular"), MODELS)
def test_a_batch_without_a_single_word_and_the_warm_up_row(
    task: str, family: str, n_text: int, tabular: bool
) -> None:
    """Texts that hold no word give the graph no token at all (a [N, 0] split), and the
    prediction function's warm-up sends one row with every column missing."""
    model = fitted(task, family, n_text, tabular)
    wordless = [None, "", "  ", "!?", "x y z", "— …"]
    rows = [
        {"amount": 1.5, "weight": -0.5, "channel": "web", **dict.fromkeys(model.text, text)}
        for text in wordless
    ]
    assert_same_answers(model, model.feeds(rows))
    assert_same_rows(model, rows)  # rows of zeros: no known word, norm 0

    missing = dict.fromkeys(model.loaded.layout.required)
    feeds, _ = model.loaded.run_request(Batch.of_instances([missing]))
    assert feeds[TEXT_INPUT].tolist() == [[""] * n_text]
    assert_same_answers(model, feeds)


_WORD = re.compile(r"\b\w\w+\b")


@settings(max_examples=500, deadline=None)
@given(value=st.text(alphabet=st.characters(max_codepoint=127)))
def test_the_ascii_path_reads_the_words_the_pattern_reads(value: str) -> None:
    """Letters, digits, "_", punctuation, control characters and every kind of ASCII space."""
    assert value.isascii()
    expected = _WORD.findall(value.lower())[:MAX_WORDS]
    assert normalise(value) == " ".join(expected)


@settings(max_examples=100, deadline=None)
@given(
    words=st.lists(
        st.text(alphabet=st.characters(max_codepoint=127), min_size=1, max_size=6),
        min_size=MAX_WORDS - 3,
        max_size=MAX_WORDS + 30,
    )
)
def test_the_ascii_path_keeps_the_first_words_of_a_long_text(words: list[str]) -> None:
    value = " ".join(words)
    assert normalise(value) == " ".join(_WORD.findall(value.lower())[:MAX_WORDS])


# normalise_all ------------------------------------------------------------------------------------
ascii_values = st.one_of(
    st.none(),
    st.just(""),
    st.text(alphabet=" \t\n\r\x0b\x0c", max_size=10),  # whitespace only
    st.lists(st.sampled_from(["a", "I", "ab", "Door", "x_y", "A1", "42"]), max_size=30).map(
        " ".join
    ),
    # With the characters a column's texts could be joined by: NUL, newline, return.
    st.text(alphabet=string.ascii_letters + string.digits + "_ .,!\x00\n\r\t", max_size=60),
    st.text(alphabet=st.characters(max_codepoint=127), max_size=60),  # any ASCII
    st.integers(MAX_WORDS - 3, MAX_WORDS + 3).map(lambda count: "Ab, c " * count),  # long
)
column_values = st.one_of(
    ascii_values,
    st.sampled_from(SERVED_WORDS),
    st.lists(st.sampled_from(SERVED_WORDS), max_size=30).map(" ".join),
    st.text(max_size=60),  # any Unicode
    st.integers(MAX_WORDS - 3, MAX_WORDS + 3).map(_around_max_words),  # long, not ASCII
)


def assert_read_as_one_by_one(values: list[str | None], small_blocks: bool) -> None:
    expected = [normalise(value) for value in values]
    with pytest.MonkeyPatch.context() as patch:
        if small_blocks:
            patch.setattr(text_kind, "_BLOCK_CHARACTERS", 64)
        assert normalise_all(values) == expected
        assert normalise_all(tuple(values)) == expected


@settings(max_examples=300, deadline=None)
@given(values=st.lists(column_values, max_size=40), small_blocks=st.booleans())
def test_a_column_reads_as_its_values_one_by_one(
    values: list[str | None], small_blocks: bool
) -> None:
    """Mixed ASCII and other texts, empty, missing, whitespace-only and over-long ones, texts that
    hold NUL, newline or return; with ``small_blocks``, a column read in blocks of 64 characters
    (as a long column is read in blocks)."""
    assert_read_as_one_by_one(values, small_blocks)


@settings(max_examples=300, deadline=None)
@given(values=st.lists(ascii_values, min_size=8, max_size=40), small_blocks=st.booleans())
def test_an_ascii_column_reads_as_its_values_one_by_one(
    values: list[str | None], small_blocks: bool
) -> None:
    """The same, on columns that take the block path, some with a text that holds its
    separator."""
    assert_read_as_one_by_one(values, small_blocks)


def test_a_long_column_is_read_in_blocks() -> None:
    """Texts longer than a block, and shorter ones, between them; one text past the first block
    holds the separator of the block path."""
    texts = ["Ab cd, e " * 4_000, None, "Ef gh " * 10_000, "x", "ünï cödé " * 10, "Ij kl"] * 20
    assert normalise_all(texts) == [normalise(text) for text in texts]
    texts[-3] = "Mn\x00op " * 3_000
    assert normalise_all(texts) == [normalise(text) for text in texts]
