"""Peak memory and time of the Preprocess step against CSV size.

    .venv/bin/python benchmarks/preprocess_memory.py                    # 50k, 200k, 1M rows
    .venv/bin/python benchmarks/preprocess_memory.py --rows 50000 400000 --memory-mb 2048

Each size is generated once (mixed numeric and categorical columns, missing values as empty cells
and "NA", a 3-class target; cached under --data-dir) and then preprocessed in a fresh Python
process, so every measurement starts from a cold interpreter like a new Lambda container. The child
runs ``preprocess.preprocess`` itself, the handler's logic, with an S3 stand-in that streams the
file from disk and discards the split files after counting their bytes, and an empty registry.
Peak RSS is the child's ``ru_maxrss``: what Lambda's "Max Memory Used" reports.

From the measurements a straight line ``peak = base + slope * file_mb`` is fitted, and the largest
file one Preprocess Lambda handles at --memory-mb (keeping --headroom free) is stated.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_ROWS = (50_000, 200_000, 1_000_000)
_GENERATE_CHUNK = 50_000


# -- data ---------------------------------------------------------------------------------------


def generate_csv(path: Path, rows: int, seed: int = 0) -> None:
    """A deterministic mixed table: 6 float columns, 1 integer, 3 categorical (3, 12 and 300
    levels), a 3-class target; about 5% of feature cells missing."""
    rng = np.random.default_rng(seed)
    cities = np.asarray([f"city_{i:03d}" for i in range(300)])
    colors = np.asarray(["red", "green", "blue", "cyan", "magenta", "yellow", "black", "white",
                         "orange", "purple", "brown", "grey"])  # fmt: skip
    segments = np.asarray(["consumer", "business", "public"])
    header = [*(f"num_{i}" for i in range(6)), "count", "segment", "color", "city", "label"]
    with path.open("w", encoding="utf-8", newline="") as out:
        out.write(",".join(header) + "\n")
        for start in range(0, rows, _GENERATE_CHUNK):
            n = min(_GENERATE_CHUNK, rows - start)
            numbers = rng.normal(size=(n, 6)) * [1, 10, 100, 0.1, 5, 1000]
            count = rng.integers(0, 1000, size=n)
            segment = rng.integers(0, 3, size=n)
            color = rng.integers(0, 12, size=n)
            city = rng.integers(0, 300, size=n)
            score = numbers[:, 0] + numbers[:, 1] / 10 + (segment == 1) - (color < 4)
            label = np.where(score > 0.8, "high", np.where(score < -0.8, "low", "mid"))
            columns: list[list[str]] = [[f"{v:.4f}" for v in numbers[:, j]] for j in range(6)]
            columns += [
                [str(v) for v in count],
                segments[segment].tolist(),
                colors[color].tolist(),
                cities[city].tolist(),
            ]
            for column in columns:
                holes = rng.random(n) < 0.05
                for i in np.flatnonzero(holes).tolist():
                    column[i] = "NA" if i % 2 else ""
            columns.append(label.tolist())
            out.writelines(",".join(row) + "\n" for row in zip(*columns, strict=True))


def dataset_path(data_dir: Path, rows: int) -> Path:
    path = data_dir / f"mixed-{rows}.csv"
    if not path.exists():
        partial = path.with_suffix(".partial")
        generate_csv(partial, rows)
        partial.rename(path)
    return path


# -- the measured child -------------------------------------------------------------------------


class DiskS3:
    """The two S3 calls Preprocess makes: the spec and dataset are read from disk (streamed),
    split files are counted and dropped."""

    def __init__(self, spec: bytes, csv_path: Path) -> None:
        self.spec = spec
        self.csv_path = csv_path
        self.written: dict[str, int] = {}

    def get_object(self, **request: Any) -> dict[str, Any]:
        if request["Key"].endswith("spec.json"):
            return {"Body": io.BytesIO(self.spec)}
        return {"Body": self.csv_path.open("rb"), "VersionId": "v1", "ETag": '"bench"'}

    def put_object(self, **request: Any) -> dict[str, Any]:
        body = request["Body"]
        # Measure a stream by seeking, not reading: a read would copy it and inflate the peak.
        self.written[request["Key"]] = (
            len(body) if isinstance(body, bytes) else body.seek(0, io.SEEK_END)
        )
        return {}


class EmptyRegistry:
    """A model with no versions yet: no production to compare the schema with."""

    def list_versions(self, model: str) -> list[dict[str, Any]]:
        return []

    def get_alias(self, model: str) -> int | None:
        return None

    def get_version(self, model: str, version: int) -> dict[str, Any]:
        raise KeyError(version)


def _rss_mb() -> float:
    # ru_maxrss is in KiB on Linux.
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def measure_child(csv_path: Path) -> dict[str, Any]:
    for directory in ("layers/core", "functions/preprocess"):
        sys.path.insert(0, str(ROOT / directory))
    os.environ.setdefault("POWERTOOLS_METRICS_DISABLED", "true")
    os.environ.setdefault("POWERTOOLS_TRACE_DISABLED", "true")
    os.environ.setdefault("POWERTOOLS_LOG_LEVEL", "WARNING")
    from mlstack_core.storage_keys import dataset_key
    from mlstack_preprocess import preprocess

    after_imports = _rss_mb()
    s3 = DiskS3(json.dumps({"target": "label"}).encode(), csv_path)
    event = {
        "model": "bench",
        "dataset": {"bucket": "data", "key": dataset_key("bench", "data.csv"), "version_id": "v1"},
        "execution_arn": "arn:aws:states:us-east-1:123456789012:execution:bench:run",
        "execution_name": "run",
    }
    started = time.perf_counter()
    run = preprocess.preprocess(
        event, s3=s3, model_bucket="models", data_bucket="data", registry=EmptyRegistry()
    )
    seconds = time.perf_counter() - started
    return {
        "rows": run["dataset"]["rows"],
        "file_mb": run["dataset"]["bytes"] / 2**20,
        "seconds": seconds,
        "import_rss_mb": after_imports,
        "peak_rss_mb": _rss_mb(),
        "split_mb": sum(s3.written.values()) / 2**20,
        "warnings": len(run["warnings"]),
    }


def run_child(csv_path: Path) -> dict[str, Any]:
    completed = subprocess.run(
        [sys.executable, __file__, "--child", str(csv_path)],
        check=True,
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    result: dict[str, Any] = json.loads(completed.stdout.strip().splitlines()[-1])
    return result


# -- report -------------------------------------------------------------------------------------


def fit_line(results: list[dict[str, Any]]) -> tuple[float, float]:
    """(base MB, MB of peak RSS per MB of CSV), least squares over the measurements."""
    sizes = np.asarray([r["file_mb"] for r in results])
    peaks = np.asarray([r["peak_rss_mb"] for r in results])
    if sizes.size == 1:
        return float(results[0]["import_rss_mb"]), float(
            (peaks[0] - results[0]["import_rss_mb"]) / sizes[0]
        )
    slope, base = np.polyfit(sizes, peaks, 1)
    return float(base), float(slope)


def report(results: list[dict[str, Any]], memory_mb: int, headroom: float) -> str:
    lines = [
        "| rows | CSV MiB | peak RSS MiB | RSS after imports MiB | peak / CSV | seconds | rows/s |",
        "|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        lines.append(
            f"| {r['rows']:,} | {r['file_mb']:.1f} | {r['peak_rss_mb']:.0f} | "
            f"{r['import_rss_mb']:.0f} | {r['peak_rss_mb'] / r['file_mb']:.1f} | "
            f"{r['seconds']:.1f} | {r['rows'] / r['seconds']:,.0f} |"
        )
    base, slope = fit_line(results)
    usable = memory_mb * (1 - headroom)
    largest_mb = (usable - base) / slope
    bytes_per_row = sum(r["file_mb"] for r in results) / sum(r["rows"] for r in results)
    largest_rows = largest_mb / bytes_per_row
    seconds_per_mb = max(r["seconds"] / r["file_mb"] for r in results)
    lines += [
        "",
        f"fit: peak RSS = {base:.0f} MiB + {slope:.2f} x CSV MiB",
        f"at {memory_mb} MB with {headroom:.0%} headroom: largest CSV ~ {largest_mb:,.0f} MiB "
        f"(~ {largest_rows:,.0f} rows of this shape), ~ {largest_mb * seconds_per_mb:,.0f} s "
        "of Preprocess at the slowest measured rate",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--rows", type=int, nargs="+", default=list(DEFAULT_ROWS))
    parser.add_argument("--memory-mb", type=int, default=2048, help="PreprocessFunction memory")
    parser.add_argument("--headroom", type=float, default=0.1, help="share of memory kept free")
    parser.add_argument("--data-dir", type=Path, default=Path("/tmp/mlstack-bench"))
    parser.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(measure_child(args.child)))
        return 0
    args.data_dir.mkdir(parents=True, exist_ok=True)
    results = []
    for rows in args.rows:
        path = dataset_path(args.data_dir, rows)
        result = run_child(path)
        print(
            f"{rows:>9,} rows  {result['file_mb']:7.1f} MiB  peak {result['peak_rss_mb']:7.0f} MiB"
            f"  {result['seconds']:6.1f} s",
            file=sys.stderr,
        )
        results.append(result)
    print(report(results, args.memory_mb, args.headroom))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
