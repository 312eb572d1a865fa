"""``mlstack card NAME [VERSION]``: a version's model card, in Markdown and in HTML.

The card's content is ``mlstack_core.card`` (Register stores the same card, without plots,
beside every version); here it is written with the report's plots, the registry's history up to
now and the Monitor's latest ground-truth quality report. Calibration (Brier score, reliability
curve) and the residual summary come from the stored holdout outputs, the ONNX model's answers.

``card.md`` links the report's PNGs written beside it; ``card.html`` embeds them, so it is one file
to attach to a review.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from mlstack.cli.report import load, pyplot, render
from mlstack_core.card import (
    ReportData,
    card_sections,
    reliability,
    to_html,
    to_markdown,
)
from mlstack_core.storage_keys import latest_quality_key


def plot_reliability(data: ReportData) -> Any:
    figure, axis = pyplot().subplots(figsize=(5.2, 4.6))
    for scored in data.models:
        if scored.probabilities is None:
            continue
        curve = reliability(data.y, scored.probabilities, data.classes)
        axis.plot(curve.confidence, curve.accuracy, "o-", label=scored.title)
    axis.plot([0, 1], [0, 1], ":", color="grey", label="perfectly calibrated")
    axis.set_xlabel("predicted probability of the predicted class")
    axis.set_ylabel("share predicted correctly")
    axis.set_title(f"{data.model} v{data.version}: reliability (holdout)")
    axis.legend(fontsize=8, loc="upper left")
    figure.tight_layout()
    return figure


def latest_quality(client: Any, model: str) -> dict[str, Any] | None:
    """The Monitor's latest ground-truth report of the model, if it has written one."""
    body = client.stored_bytes("ModelBucketName", latest_quality_key(model))
    report: dict[str, Any] | None = json.loads(body) if body is not None else None
    return report


def write_card(
    client: Any, model: str, version: int | None, out_dir: Path | None
) -> tuple[ReportData, Path]:
    """Write ``card.md``, ``card.html`` and the plots; returns the data and the directory."""
    data = load(client, model, version)
    target = out_dir or Path("cards") / model / f"v{data.version}"
    calibrated = any(m.probabilities is not None for m in data.models)
    extra = {"reliability.png": plot_reliability(data)} if calibrated else {}
    images = render(data, target, extra)
    sections = card_sections(data, client.registry.history(model), latest_quality(client, model))
    (target / "card.md").write_text(to_markdown(data, sections, sorted(images)), encoding="utf-8")
    (target / "card.html").write_text(to_html(data, sections, images), encoding="utf-8")
    return data, target
