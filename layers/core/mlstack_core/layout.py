"""Where each step keeps its files in the model bucket (docs/internals.md, "S3 layout")."""

from __future__ import annotations


def run_prefix(model: str, run_id: str) -> str:
    return f"runs/{model}/{run_id}"


def candidates_key(model: str, run_id: str) -> str:
    """The candidate list of a grid too large for the execution state (Distributed Map)."""
    return f"{run_prefix(model, run_id)}/candidates.json"


def candidate_prefix(model: str, run_id: str, candidate_id: str) -> str:
    return f"{run_prefix(model, run_id)}/candidates/{candidate_id}"


def candidate_result_key(model: str, run_id: str, candidate_id: str) -> str:
    """Train's output for one candidate, read back by Evaluate after a Distributed Map."""
    return f"{candidate_prefix(model, run_id, candidate_id)}/result.json"


def evaluation_key(model: str, run_id: str) -> str:
    return f"{run_prefix(model, run_id)}/evaluation.json"


def version_prefix(model: str, version: int) -> str:
    return f"models/{model}/{version}"
