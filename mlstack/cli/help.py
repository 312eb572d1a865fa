"""The words of ``mlstack --help`` and of each ``mlstack COMMAND --help``: every command's one-line
summary (shown in both), what its arguments are, and an example line a user can run as written.

One place for them, so the parser in ``main`` stays a list of options, and a test can check that
every command has a summary, explained arguments and an example."""

from __future__ import annotations

import argparse
from dataclasses import dataclass


@dataclass(frozen=True)
class CommandHelp:
    """What ``mlstack COMMAND --help`` says above and below the options."""

    summary: str  # one line: the top-level list and the command's own description
    examples: tuple[str, ...]  # lines starting with ``mlstack COMMAND``, runnable as written
    notes: str = ""  # what the options alone do not say (a file's format, a new model's needs)


COMMANDS: dict[str, CommandHelp] = {
    "local": CommandHelp("the local cloud", ("mlstack local up --with-demo-model",)),
    "local up": CommandHelp(
        "serve the local cloud until interrupted",
        ("mlstack local up --with-demo-model",),
        "It prints the export line that points the other commands at it.",
    ),
    "demo": CommandHelp(
        "run the whole loop once, in process, on a bundled dataset", ("mlstack demo",)
    ),
    "train": CommandHelp(
        "upload a CSV (and spec) to start a training run",
        (
            "mlstack train churn.csv --model churn --target churned --wait",
            "mlstack train churn-2026.csv --model churn --wait   # reuses the stored spec",
        ),
        "A new model needs --target (or a --spec naming the target); later uploads of the\n"
        "same model reuse its stored spec.",
    ),
    "import": CommandHelp(
        "bring a model trained elsewhere through the same gate, registry and serving",
        (
            "mlstack import churn model.joblib --holdout holdout.csv --target churned --wait",
            "mlstack import churn churn.onnx --holdout holdout.csv --target churned "
            "--train-sample train.csv",
        ),
        "FILE is a scikit-learn pipeline or estimator saved with joblib (LightGBM and XGBoost\n"
        "models too, alone or as a pipeline's last step), converted to ONNX here, or an ONNX\n"
        "file. The holdout is scored by the original here and by the stack's served graph\n"
        "there (parity), then gated against production on the same rows like a trained\n"
        "version. A step ONNX cannot carry is refused here, naming it.",
    ),
    "score": CommandHelp(
        "score a CSV file with a model (a batch job: no servers, output in S3)",
        (
            "mlstack score churn churn-2026.csv --wait",
            "mlstack score churn few.csv --explain --wait",
        ),
    ),
    "feedback": CommandHelp(
        "upload true labels for served predictions (request_id,row,<target>)",
        ("mlstack feedback churn-watch recent-outcomes.csv",),
        "The file is a CSV with a header row and one row per labelled prediction:\n"
        "  request_id,row   which answer it labels, as the API answered them (or, when the\n"
        "                   spec sets quality.key_trusted, the spec's quality.key column)\n"
        "  <target>         the true label, in a column named as the model's target (or 'label')\n"
        "For example:\n"
        "  request_id,row,churned\n"
        "  3f2c9e0a-...,0,yes\n"
        "The model's spec must set quality.capture; the Monitor joins the labels to the\n"
        "captured answers at its next check (mlstack monitor MODEL --now to check now).",
    ),
    "monitor": CommandHelp(
        "the latest drift (PSI per feature) and ground-truth quality checks",
        ("mlstack monitor churn-watch --now",),
    ),
    "predict": CommandHelp(
        "POST instances to the model's predict endpoint",
        ("mlstack predict churn rows.json", "cat rows.json | mlstack predict churn -"),
    ),
    "explain": CommandHelp(
        "why the model answered what it did: each column's contribution, per row",
        ("mlstack explain churn rows.json", "mlstack explain churn rows.json --version 2 --json"),
        "At most 10 rows per request (the stack's EXPLAIN_MAX_ROWS). A classifier's table "
        "explains the probability of the class it predicted; --json gives every class's.",
    ),
    "approve": CommandHelp(
        "approve a version awaiting approval (resumes its run)",
        ('mlstack approve churn 2 --reason "report reviewed"',),
    ),
    "reject": CommandHelp(
        "reject a version awaiting approval (ends its run)",
        ('mlstack reject churn 2 --reason "recall too low"',),
    ),
    "promote": CommandHelp(
        "point production at a version", ('mlstack promote churn 1 --reason "hotfix"',)
    ),
    "canary": CommandHelp(
        "send a share of prediction requests to a version (or --off)",
        ("mlstack canary churn 1 --share 0.1", "mlstack canary churn --off"),
    ),
    "shadow": CommandHelp(
        "score a version silently beside production (or --off)",
        ("mlstack shadow churn 1", "mlstack shadow churn --off"),
    ),
    "rollback": CommandHelp(
        "point production back at its previous version",
        ('mlstack rollback churn --reason "bad latency"',),
    ),
    "report": CommandHelp(
        "plot a version's evaluation (PNGs), challenger beside champion",
        ("mlstack report churn 2",),
    ),
    "card": CommandHelp(
        "write a version's model card (Markdown, and HTML with the plots embedded)",
        ("mlstack card churn",),
    ),
    "models": CommandHelp(
        "list models, or one model's versions",
        ("mlstack models", "mlstack models churn --wide"),
    ),
    "history": CommandHelp(
        "every move of a model's production, canary and shadow: who, when, why",
        ("mlstack history churn",),
    ),
}

# The positional arguments, explained the same way wherever they appear.
MODEL = "the model's name, as given to `mlstack train --model`"
VERSION = "the version's number (as `mlstack models MODEL` lists them)"
PINNED_VERSION = "the version's number (default: production)"
CHALLENGER_VERSION = "the version's number (give --off instead to stop it)"
TRAINING_CSV = "the CSV file to train on (a header row, the target among its columns)"
SCORING_CSV = "the CSV file to score (a header row with the model's feature columns)"
FEEDBACK_CSV = "the CSV file of true labels (its format is below)"
IMPORT_FILE = "the model: a .joblib (or .pkl) file, unpickled on this machine only, or a .onnx file"
IMPORT_HOLDOUT = "a CSV of rows the model never trained on, with the target column"
PREDICT_FILE = 'JSON file: {"instances": [...]} or a list of records; - for stdin'
MODELS_MODEL = "a model's name: list its versions (default: list every model)"
JSON_OUTPUT = "print the result as JSON (for scripts) instead of words"


def epilog(help_: CommandHelp) -> str:
    lines = [help_.notes, ""] if help_.notes else []
    examples = "examples:" if len(help_.examples) > 1 else "example:"
    return "\n".join([*lines, examples, *(f"  {line}" for line in help_.examples)])


def add_command(
    commands: argparse._SubParsersAction[argparse.ArgumentParser], name: str, path: str = ""
) -> argparse.ArgumentParser:
    """The command's parser, with its summary as both the line in the parent's list and its own
    description, and its notes and examples below the options (as written: line breaks kept).
    ``path`` is the parent's words after ``mlstack`` for a nested command (``local``)."""
    help_ = COMMANDS[f"{path} {name}".strip()]
    return commands.add_parser(
        name,
        help=help_.summary,
        description=help_.summary,
        epilog=epilog(help_),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
