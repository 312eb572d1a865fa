"""benchmarks/preprocess_memory.py measures the handler's own logic: its child runs Preprocess on
a generated table and reports what it read and wrote (the benchmark once broke silently when
Preprocess's signature changed)."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "benchmarks" / "preprocess_memory.py"


def _benchmark() -> ModuleType:
    spec = importlib.util.spec_from_file_location("preprocess_memory", SCRIPT)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_child_runs_preprocess_on_the_generated_table(tmp_path: Path) -> None:
    table = tmp_path / "mixed.csv"
    _benchmark().generate_csv(table, 2_000)
    completed = subprocess.run(
        [sys.executable, str(SCRIPT), "--child", str(table)],
        capture_output=True,
        text=True,
        check=False,
        cwd=ROOT,
        timeout=300,
    )
    assert completed.returncode == 0, completed.stderr[-2000:]
    measured = json.loads(completed.stdout.strip().splitlines()[-1])
    assert measured["rows"] == 2_000
    assert measured["file_mb"] == table.stat().st_size / 2**20
    # Both CSV splits, both arrays files and the drift baseline were written.
    assert measured["split_mb"] > measured["file_mb"]
    assert measured["peak_rss_mb"] >= measured["import_rss_mb"] > 0
