"""Tables whose signal is in a timestamp, a plain date or a free-text note, and one with an
identifier on every row, through the whole local loop, against the plain scikit-learn script a
data scientist would write for each.

    .venv/bin/python benchmarks/column_kinds.py --write docs/column-kinds.md     # the measurement
    .venv/bin/python benchmarks/column_kinds.py --rows 600 --seeds 1             # a quick look

For every table and seed: the rows are generated (tests/helpers/kind_tables.py), a fifth is kept
unseen, the rest is uploaded to the local cloud (template, real state machine, handlers in process);
the version promoted answers the unseen rows over HTTP and as a batch job; the plain script is
fitted on the same training rows and scored on the same unseen rows. Reported side by side: the
served score, the script's, their difference, and whether the batch job answered as the API did.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
from measured import machine, write_measured

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from mlstack.cli.demo import as_instance  # noqa: E402
from mlstack.cli.stack import StackClient  # noqa: E402
from mlstack.localcloud import LocalCloud, quiet_local_logs  # noqa: E402
from tests.helpers.kind_tables import TABLES, plain_script_score  # noqa: E402
from tests.helpers.local_cloud import batch_predictions, served_score, split_rows  # noqa: E402
from tests.helpers.tables import records_csv  # noqa: E402

PROSE = """# Column kinds on real-shaped tables

Business exports carry timestamps, dates, notes and keys. Each table below has its signal in one of
them (tests/helpers/kind_tables.py generates them: an orders table whose returns follow the weekday
of a timestamp, rents with a yearly trend and a summer peak on a plain date, reviews whose words
carry the sentiment, customers with a reference code on every row). The stack reads the columns
(README, "Column kinds"), trains, gates and promotes; the promoted version answers a fifth of the
rows it never saw, over HTTP and as a batch job. The plain script is what a data scientist would
write by hand for the same table (weekday and hour from the timestamp, the date's parts, TF-IDF and
a logistic regression on the words), fitted on the same rows.

Scores are accuracy (classification) or R² (regression) on the unseen rows.

"""


def _same(task: str, batch: list[str], served: list[Any]) -> bool:
    if task == "classification":
        return batch == [str(p) for p in served]
    return bool(np.allclose(np.asarray(batch, dtype=float), served, rtol=1e-6))


def measure(rows: int, seeds: int) -> list[dict[str, Any]]:
    quiet_local_logs()
    results = []
    with LocalCloud(parameters={"LogLevel": "ERROR"}) as cloud:
        stack = StackClient(cloud.stack_name)
        for name, table in TABLES.items():
            for seed in range(seeds):
                train, unseen = split_rows(table.rows(rows, seed), holdout_share=0.2, seed=seed)
                model = f"{name}-{seed}"
                started = time.perf_counter()
                upload = stack.upload_dataset(model, records_csv(train), {"target": table.target})
                run = cloud.wait_for_execution(stack.find_execution(upload), timeout=900)
                seconds = time.perf_counter() - started
                production = stack.registry.get_alias(model)
                entry: dict[str, Any] = {"table": name, "seed": seed, "rows": len(train)}
                entry["run_seconds"] = round(seconds, 1)
                script = plain_script_score(table, train, unseen)
                entry["script"] = round(script, 3)
                if run["status"] != "SUCCEEDED" or production is None:
                    entry.update(served=None, outcome=run.get("error") or "not promoted")
                    results.append(entry)
                    print(entry, flush=True)
                    continue
                schema = stack.registry.get_version(model, production)["schema"]
                read = {f["name"]: f["kind"] for f in schema["features"]}
                read.update({i["name"]: "identifier" for i in schema.get("identifiers", [])})
                answer = stack.predict(model, [as_instance(r, table.target) for r in unseen])
                served = answer.body["predictions"]
                truth = [r[table.target] for r in unseen]
                entry["served"] = round(served_score(table.task, truth, served), 3)
                entry["read_as"] = read
                entry["kinds_as_expected"] = read == table.kinds
                batch = batch_predictions(cloud, model, [{**r, table.target: ""} for r in unseen])
                entry["batch_equals_http"] = _same(table.task, batch, served)
                entry["outcome"] = "promoted"
                results.append(entry)
                print(entry, flush=True)
    return results


def render(results: list[dict[str, Any]], command: str) -> str:
    lines = [
        f"`{command}` on {machine()}.",
        "",
        "| table | seed | training rows | columns as read | served | plain script | served - "
        "script | batch = HTTP | run s |",
        "|---|---:|---:|---|---:|---:|---:|---|---:|",
    ]
    for r in results:
        read = ", ".join(f"{k}: {v}" for k, v in (r.get("read_as") or {}).items())
        served = "-" if r["served"] is None else f"{r['served']:.3f}"
        gap = "-" if r["served"] is None else f"{r['served'] - r['script']:+.3f}"
        batch = {True: "yes", False: "NO", None: "-"}[r.get("batch_equals_http")]
        lines.append(
            f"| {r['table']} | {r['seed']} | {r['rows']} | {read or r['outcome']} | {served} | "
            f"{r['script']:.3f} | {gap} | {batch} | {r['run_seconds']} |"
        )
    gaps = [r["served"] - r["script"] for r in results if r["served"] is not None]
    promoted = sum(r["outcome"] == "promoted" for r in results)
    lines += [
        "",
        f"{promoted} of {len(results)} runs promoted; served minus script: worst "
        f"{min(gaps):+.3f}, median {float(np.median(gaps)):+.3f}."
        if gaps
        else "Nothing promoted.",
    ]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--rows", type=int, default=2000, help="rows per table (default 2000)")
    parser.add_argument("--seeds", type=int, default=2, help="tables per kind (default 2)")
    parser.add_argument("--write", type=Path, help="write the measured block of this document")
    args = parser.parse_args()
    command = f"python benchmarks/column_kinds.py --rows {args.rows} --seeds {args.seeds}"
    text = render(measure(args.rows, args.seeds), command)
    print(text)
    if args.write:
        write_measured(args.write, text, "column_kinds.py", PROSE)


if __name__ == "__main__":
    main()
