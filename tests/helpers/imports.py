"""Imports (``mlstack import``) as the CLI uploads them, and as the state machine's first states
hand them to InspectImport and PrepareImport."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mlstack.cli.importing import prepare_import, upload_import
from tests.helpers.stack import REGION, Stack


def import_event(
    stack: Stack,
    model: str,
    model_file: Path,
    holdout: Path,
    target: str,
    *,
    train_sample: Path | None = None,
    execution_name: str = "import-001",
) -> dict[str, Any]:
    """Convert and upload as ``mlstack import`` does; the execution input Trigger would start."""
    prepared = prepare_import(model, model_file, holdout, target, train_sample=train_sample)
    manifest = upload_import(stack.s3, stack.data_bucket, model, prepared)
    return {
        "model": model,
        "source": "import",
        "dataset": {**manifest, "requester": "123456789012"},
        "execution_arn": (
            f"arn:aws:states:{REGION}:123456789012:execution:mlstack-training:{execution_name}"
        ),
        "execution_name": execution_name,
    }


def admitted_run(stack: Stack, event: dict[str, Any]) -> dict[str, Any]:
    """InspectImport, then PrepareImport, then the Map's pass for the imported candidate and
    Evaluate: the execution state up to the gate."""
    from tests.helpers.stack import load_handler

    state = dict(event)
    state["admitted"] = load_handler("admit")(event, stack.context)
    state["run"] = stack.preprocess(
        {**{k: v for k, v in event.items() if k != "source"}, "admitted": state["admitted"]}
    )
    state["trained"] = [
        {**candidate, "status": "trained", "fit_seconds": None}
        for candidate in state["run"]["candidates"]
    ]
    state["evaluation"] = stack.evaluate(state["run"], state["trained"])
    return state


def penguins_import_event(stack: Stack, directory: Path, model: str = "penguins") -> dict[str, Any]:
    """A scikit-learn pipeline fitted on half the penguins, imported with the other half as its
    holdout: the execution input InspectImport gets."""
    import io

    import joblib
    import pandas as pd
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    from tests.helpers.tables import penguins_bytes

    table = pd.read_csv(io.BytesIO(penguins_bytes())).dropna(subset=["species"])
    train, holdout = table.iloc[::2], table.iloc[1::2]
    numbers = ["bill_length_mm", "bill_depth_mm", "flipper_length_mm", "body_mass_g"]
    pipeline = Pipeline(
        [
            (
                "preprocess",
                ColumnTransformer(
                    [
                        (
                            "numbers",
                            Pipeline([("fill", SimpleImputer()), ("scale", StandardScaler())]),
                            numbers,
                        ),
                        ("island", OneHotEncoder(handle_unknown="ignore"), ["island"]),
                    ]
                ),
            ),
            ("model", LogisticRegression(max_iter=1000)),
        ]
    ).fit(train[[*numbers, "island"]], train["species"])
    joblib.dump(pipeline, directory / "penguins.joblib")
    holdout.to_csv(directory / "holdout.csv", index=False)
    return import_event(
        stack, model, directory / "penguins.joblib", directory / "holdout.csv", "species"
    )


def with_external_data(onnx_bytes: bytes, location: str) -> bytes:
    """The graph with one more tensor whose data a serving process would read from
    ``location``, a path of the uploader's choosing."""
    import onnx

    graph = onnx.load_from_string(onnx_bytes)
    planted = graph.graph.initializer.add()
    planted.name, planted.data_type = "planted", onnx.TensorProto.FLOAT
    planted.dims.append(1)
    planted.data_location = onnx.TensorProto.EXTERNAL
    entry = planted.external_data.add()
    entry.key, entry.value = "location", location
    return bytes(graph.SerializeToString())
