"""The model card quotes the user's CSV and spec (column names and the reasons they were read so,
class labels, categories, the model's description, warnings, a person's reason): whatever those
strings hold, card.md renders them as text, never as HTML, a link, an image, a heading or cells
of their own, and card.html escapes them. card.md is read through a CommonMark parser with GFM
tables and raw HTML on (markdown-it), as a renderer would."""

from __future__ import annotations

from html.parser import HTMLParser
from typing import Any, cast

import numpy as np
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from markdown_it import MarkdownIt
from markdown_it.token import Token

from mlstack_core.card import CardTable, HoldoutOutputs, ReportData, card_files, card_sections
from mlstack_core.documents import HistoryEntry, VersionDocument
from mlstack_core.payloads import EvaluationReport

pytestmark = pytest.mark.unit

HOSTILE = [
    "<script>alert(1)</script>",
    "[x](javascript:alert(1))",
    "![x](javascript:alert(1))",
    "<javascript:alert(1)>",
    "[x]: javascript:alert(1)",
    '<img src=x onerror="alert(1)">',
    "<!-- comment -->",
    "a | b",
    "`code` and ``more``",
    "```",
    "line\nbreak\r\nand\rmore",
    "# heading",
    "1. list",
    "- item",
    "> quote",
    "&lt;b&gt;",
    "\\[escaped\\]",
    "\ue000marker\ue001",
]
# Printable text, the characters Markdown and HTML give meaning to, and line breaks.
ALPHABET = st.sampled_from(
    [*"abcXYZ019 _-*#>+=!~.,:;()[]{}<>&|`\\/\"'\n\r\t", "é", "ß", "\ue000", "\ue001"]
)
USER_TEXT = st.one_of(
    st.sampled_from(HOSTILE),
    st.text(ALPHABET, min_size=1, max_size=30),
    st.lists(st.sampled_from(HOSTILE), min_size=2, max_size=3).map(" ".join),
)

PARSER = MarkdownIt("commonmark", {"html": True}).enable("table")


def card_of(texts: list[str]) -> ReportData:
    """A classification card whose every user string is one of ``texts``."""
    name, reason, label_a, label_b, description, actor, why, category = texts
    features = [
        {"name": name, "kind": "numeric", "reason": reason},
        {"name": f"{name}2", "kind": "categorical", "reason": reason, "categories": [category]},
    ]
    document = {
        "task": "classification",
        "status": "Approved",
        "status_changed_by": actor,
        "spec": {"description": description},
        "schema": {
            "target": name,
            "features": features,
            "identifiers": [{"name": why, "kind": "identifier", "reason": reason}],
        },
        "dataset": {"bucket": "data", "key": f"datasets/m/{name}.csv", "sha256": "ab" * 32},
        "warnings": [{"code": "Constant", "message": reason}],
        "run_id": name,
        "artifact": {"key": "models/m/1/model.onnx", "sha256": "cd" * 32, "bytes": 10},
    }
    metrics = {"metrics": {"accuracy": 0.9}}
    evaluation = {
        "decision": "promote",
        "reasons": [why],
        "metric": "accuracy",
        "best": {"candidate_id": name, "family": "logistic", "params": {}, **metrics},
        "candidates": [{"candidate_id": name, "family": "logistic", "status": reason, **metrics}],
        "champion": {"version": 1, "reason": why},
    }
    classes = [label_a, f"{label_b} "] if label_a == label_b else [label_a, label_b]
    y = np.asarray(classes * 4, dtype=object)
    probabilities = np.tile([[0.7, 0.3], [0.2, 0.8]], (4, 1))
    return ReportData(
        name,
        1,
        "classification",
        cast(VersionDocument, document),
        cast(EvaluationReport, evaluation),
        y,
        classes,
        [HoldoutOutputs("challenger", label=y.copy(), probabilities=probabilities)],
    )


def history_of(actor: str, why: str) -> list[HistoryEntry]:
    entry = {"version": 1, "kind": "status", "status": "Approved", "actor": actor, "reason": why}
    return [cast(HistoryEntry, entry)]


def _walk(tokens: list[Token]) -> list[Token]:
    found = []
    for token in tokens:
        found.append(token)
        found += _walk(token.children or [])
    return found


def _inline_text(token: Token) -> str:
    return "".join(
        child.content for child in token.children or [] if child.type in ("text", "code_inline")
    )


def _rendered_tables(tokens: list[Token]) -> list[list[list[str]]]:
    """Each table's rows (the header first), each row's cells' text as rendered."""
    tables: list[list[list[str]]] = []
    row: list[str] | None = None
    for i, token in enumerate(tokens):
        if token.type == "table_open":
            tables.append([])
        elif token.type == "tr_open":
            row = []
            tables[-1].append(row)
        elif token.type in ("th_open", "td_open") and row is not None:
            row.append(_inline_text(tokens[i + 1]))
    return tables


def _plain(text: str) -> str:
    """Text as a reader sees it: markers dropped, every run of white space one space."""
    for mark in ("\ue000", "\ue001"):
        text = text.replace(mark, "")
    return " ".join(text.split())


class _Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))


CARD_TAGS = {
    "html",
    "head",
    "meta",
    "title",
    "style",
    "body",
    "h1",
    "h2",
    "p",
    "table",
    "tr",
    "th",
    "td",
    "code",
}


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(USER_TEXT, min_size=8, max_size=8))
@example(HOSTILE[:8])
@example(HOSTILE[8:16])
@example([*HOSTILE[16:], *HOSTILE[:6]])
def test_user_strings_render_as_text_in_both_cards(texts: list[str]) -> None:
    data = card_of(texts)
    history = history_of(texts[5], texts[6])
    markdown, page = card_files(data, history)

    tokens = _walk(PARSER.parse(markdown))
    kinds = {token.type for token in tokens}
    assert not kinds & {"html_block", "html_inline", "link_open", "image"}, markdown
    # Only the card's own headings: its title and one per section.
    sections = card_sections(data, history)
    assert [t.tag for t in tokens if t.type == "heading_open"] == ["h1"] + ["h2"] * len(sections)
    assert not kinds & {"bullet_list_open", "ordered_list_open", "blockquote_open", "fence"}

    # Every table keeps its shape, and every cell reads as the text the card put in it.
    expected = [
        [block.header, *block.rows]
        for section in sections
        for block in section.blocks
        if isinstance(block, CardTable)
    ]
    rendered = _rendered_tables(tokens)
    assert [[[_plain(c) for c in row] for row in table] for table in expected] == [
        [[_plain(c) for c in row] for row in table] for table in rendered
    ]

    # Paragraphs read as the card's text too: the description, the reasons, a person's words.
    shown = [_plain(_inline_text(t)) for t in tokens if t.type == "inline"]
    for text in texts:
        assert any(_plain(text) in line for line in shown), (text, markdown)

    tags = _Tags()
    tags.feed(page)
    assert {tag for tag, _ in tags.tags} <= CARD_TAGS, page
    assert all(not any(k.startswith("on") for k in attrs) for _, attrs in tags.tags)


def test_a_code_span_holds_any_backticks_and_pipes() -> None:
    data = card_of(["`a``b|c`", "r", "x", "y", "d", "p", "w", "c"])
    markdown, page = card_files(data, [])
    limits = [line for line in markdown.splitlines() if "a category not seen" in line]
    assert limits == [
        "``` `a``b|c`2 ```: a category not seen in training counts as none of the 1 known ones."
    ]
    assert "<code>`a``b|c`2</code>: a category not seen" in page


def _card_with(**document: Any) -> str:
    data = card_of(["n", "r", "x", "y", "d", "p", "w", "c"])
    data.document.update(cast(VersionDocument, document))
    return card_files(data, [])[0]


def test_readable_text_stays_readable() -> None:
    """Only what could open markup is escaped: comparisons, underscores and dots read as written."""
    markdown = _card_with(spec={"description": "rmse <= 3.5 for sepal_length, 0.5 < x"})
    assert "rmse <= 3.5 for sepal_length, 0.5 < x" in markdown
