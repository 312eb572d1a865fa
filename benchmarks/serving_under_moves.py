"""Serving keeps answering while models move: concurrent clients against the local API while
production is promoted and rolled back and a canary and a shadow come and go.

    .venv/bin/python benchmarks/serving_under_moves.py                       # 3 minutes, 8 clients
    .venv/bin/python benchmarks/serving_under_moves.py --seconds 30 --clients 12
    .venv/bin/python benchmarks/serving_under_moves.py --write docs/serving-under-moves.md

Each client sends single-row and 25-row requests back to back. A mover changes the model's
aliases every ``--move-every`` seconds (promote another version, canary at 30 %, remove it, shadow,
remove it, roll back) and records each state. Checked for every answer:

- no 5xx and no request without an answer;
- its version was production or canary at some moment between ``ALIAS_TTL_SECONDS`` (plus a
  little scheduling slack) before the request and its answer: the alias cache may serve the
  previous routing for at most that long;
- once a move is older than ``ALIAS_TTL_SECONDS`` plus the slack, every answer comes from the
  new routing.

tests/integration/test_reliability.py runs the same check for a few seconds in every test run.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
TTL_SECONDS = 1.0
SLACK_SECONDS = 0.5  # thread scheduling on a shared 2-core machine
BATCH_ROWS = 25
# Changes the model's aliases as named ("promote", "canary", ...); returns (production, canary).
Mover = Callable[[str], tuple[int, int | None]]


@dataclass
class Answer:
    started: float
    finished: float
    kind: str  # "single" or "batch"
    status: int
    version: int | None


@dataclass
class Move:
    at: float  # when the registry write returned
    action: str
    production: int
    canary: int | None


@dataclass
class Report:
    seconds: float
    clients: int
    answers: list[Answer]
    moves: list[Move]
    dropped: int
    violations: list[str] = field(default_factory=list)

    @property
    def server_errors(self) -> int:
        return sum(1 for a in self.answers if a.status >= 500)

    def latency_ms(self, kind: str, quantile: float) -> float:
        times = sorted((a.finished - a.started) * 1000 for a in self.answers if a.kind == kind)
        if not times:
            return float("nan")
        return times[min(len(times) - 1, int(quantile * len(times)))]

    def summary(self) -> dict[str, Any]:
        by_kind = {
            kind: {
                "requests": sum(1 for a in self.answers if a.kind == kind),
                "p50_ms": round(self.latency_ms(kind, 0.50), 1),
                "p95_ms": round(self.latency_ms(kind, 0.95), 1),
                "p99_ms": round(self.latency_ms(kind, 0.99), 1),
            }
            for kind in ("single", "batch")
        }
        return {
            "seconds": round(self.seconds, 1),
            "clients": self.clients,
            "requests": len(self.answers),
            "requests_per_second": round(len(self.answers) / self.seconds, 1),
            "server_errors": self.server_errors,
            "other_non_200": sum(1 for a in self.answers if a.status != 200 and a.status < 500),
            "dropped": self.dropped,
            "moves": len(self.moves) - 1,
            "violations": len(self.violations),
            "by_kind": by_kind,
        }


def check(report: Report, ttl: float) -> list[str]:
    """Each answer's version was production or canary in a routing active at some moment between
    ttl (+ slack) before the request and its answer: the alias cache serves a routing at most ttl
    old. Once a move is that old, no earlier routing is in any later answer's window, so this
    also says every answer after it comes from the new routing."""
    moves = report.moves
    problems = []
    for answer in report.answers:
        if answer.status != 200:
            continue
        window_start = answer.started - ttl - SLACK_SECONDS
        allowed: set[int | None] = set()
        for i, move in enumerate(moves):
            ends = moves[i + 1].at if i + 1 < len(moves) else float("inf")
            if move.at <= answer.finished and ends >= window_start:
                allowed |= {move.production, move.canary}
        if answer.version not in allowed:
            problems.append(
                f"version {answer.version} answered at {answer.started - moves[0].at:.2f}s; "
                f"the routings of its window had {sorted(v for v in allowed if v is not None)}"
            )
    return problems


def run_load(
    api_url: str,
    model: str,
    instances: list[dict[str, Any]],
    move: Mover,
    *,
    seconds: float,
    clients: int,
    move_every: float,
    ttl: float = TTL_SECONDS,
) -> Report:
    """``move(action)`` changes the aliases and returns (production, canary) after it."""
    url = api_url.rstrip("/") + f"/models/{model}/predict"
    answers: list[Answer] = []
    dropped = [0]
    lock = threading.Lock()
    stop = threading.Event()

    def client(seed: int) -> None:
        chooser = random.Random(seed)
        while not stop.is_set():
            batch = chooser.random() < 0.3
            rows = chooser.sample(instances, BATCH_ROWS) if batch else [chooser.choice(instances)]
            request = urllib.request.Request(
                url,
                data=json.dumps({"instances": rows}).encode(),
                headers={"Content-Type": "application/json"},
                method="POST",
            )
            started = time.monotonic()
            try:
                with urllib.request.urlopen(request, timeout=30) as response:
                    status, body = response.status, json.loads(response.read())
            except urllib.error.HTTPError as error:
                status, body = error.code, {}
            except OSError:
                with lock:
                    dropped[0] += 1
                continue
            answer = Answer(
                started,
                time.monotonic(),
                "batch" if batch else "single",
                status,
                body.get("version"),
            )
            with lock:
                answers.append(answer)

    production, canary = move("start")
    moves = [Move(time.monotonic(), "start", production, canary)]
    threads = [threading.Thread(target=client, args=(i,), daemon=True) for i in range(clients)]
    began = time.monotonic()
    for thread in threads:
        thread.start()
    actions = ["promote", "canary", "clear canary", "shadow", "clear shadow", "rollback"]
    step = 0
    try:
        while time.monotonic() - began < seconds:
            time.sleep(min(move_every, max(0.0, seconds - (time.monotonic() - began))))
            if time.monotonic() - began >= seconds:
                break
            action = actions[step % len(actions)]
            production, canary = move(action)
            moves.append(Move(time.monotonic(), action, production, canary))
            step += 1
    finally:  # a move that fails must not leave the clients loading the API
        stop.set()
        for thread in threads:
            thread.join(timeout=60)
    report = Report(time.monotonic() - began, clients, answers, moves, dropped[0])
    report.violations = check(report, ttl)
    return report


def alias_mover(stack: Any, model: str, versions: list[int]) -> Mover:
    """Moves through mlstack's own lifecycle commands (the CLI's code)."""
    from mlstack.cli import lifecycle

    def move(action: str) -> tuple[int, int | None]:
        registry = stack.registry
        production = registry.get_alias(model)
        others = [v for v in versions if v != production]
        if action == "promote":
            lifecycle.promote(stack, model, random.choice(others), "bench", "load", force=True)
        elif action == "canary":
            lifecycle.canary(stack, model, random.choice(others), 0.3, "bench", "load")
        elif action == "shadow":
            lifecycle.shadow(stack, model, random.choice(others), "bench", "load")
        elif action.startswith("clear "):
            lifecycle.clear_challenger(stack, model, action.split()[1], "bench", "load")
        elif action == "rollback":
            lifecycle.rollback(stack, model, "bench", "load")
        aliases = registry.aliases(model)
        return aliases["production"]["version"], (aliases.get("canary") or {}).get("version")

    return move


def prepare(cloud: Any, stack: Any, model: str, versions: int = 2) -> list[dict[str, Any]]:
    """``versions`` promoted versions of a penguins model, and request rows.

    The gate promotes a retraining only when it is clearly better than production, so the same
    upload twice gives one servable version. Each upload but the last has its measurements
    shuffled between rows (only ``island`` still says something about the species), and the last
    is the real table: a clear improvement every time."""
    import csv
    import io
    from importlib import resources

    from mlstack.cli.demo import as_instance

    body = (resources.files("palmerpenguins") / "data" / "penguins.csv").read_bytes()
    rows = list(csv.DictReader(io.StringIO(body.decode())))
    spec = {"target": "species", "candidates": ["logistic_regression"]}
    for n in range(versions):
        data = body if n == versions - 1 else _without_measurements(rows, seed=n)
        upload = stack.upload_dataset(model, data, spec if n == 0 else None, file_name=f"v{n}.csv")
        result = cloud.wait_for_execution(stack.find_execution(upload))
        assert result["status"] == "SUCCEEDED", result.get("cause")
        assert stack.registry.get_alias(model) == n + 1, f"upload {n + 1} was not promoted"
    return [as_instance(row, "species") for row in rows]


def _without_measurements(rows: list[dict[str, str]], seed: int) -> bytes:
    """The table with every column but species and island shuffled between rows."""
    import csv
    import io

    chooser = random.Random(seed)
    columns = {name: [row[name] for row in rows] for name in rows[0]}
    for name, values in columns.items():
        if name not in ("species", "island"):
            chooser.shuffle(values)
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(columns)
    writer.writerows(zip(*columns.values(), strict=True))
    return out.getvalue().encode()


def markdown(report: Report, command: str) -> str:
    s = report.summary()
    lines = [
        "# Serving while models move",
        "",
        f"Measured with `{command}` on this project's machine (2 cores, shared). The local API",
        "serves the prediction function in-process; the numbers are for comparing runs, not",
        "Lambda latencies.",
        "",
        "| | single row | 25 rows |",
        "|---|---:|---:|",
        *(
            f"| {name} | {s['by_kind']['single'][q]}{unit} | {s['by_kind']['batch'][q]}{unit} |"
            for name, q, unit in (
                ("requests", "requests", ""),
                ("p50", "p50_ms", " ms"),
                ("p95", "p95_ms", " ms"),
                ("p99", "p99_ms", " ms"),
            )
        ),
        "",
        f"{s['requests']} requests in {s['seconds']} s from {s['clients']} clients "
        f"({s['requests_per_second']}/s) across {s['moves']} alias moves (promote, canary 30 %, "
        f"clear, shadow, clear, rollback): {s['server_errors']} 5xx, {s['dropped']} without an "
        f"answer, {s['violations']} answers from a version outside the routing of the last "
        f"ALIAS_TTL_SECONDS ({TTL_SECONDS} s here) plus {SLACK_SECONDS} s.",
        "",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=180)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--move-every", type=float, default=3.0)
    parser.add_argument("--write", type=Path)
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT))
    from mlstack.cli.stack import StackClient
    from mlstack.localcloud import LocalCloud, quiet_local_logs

    quiet_local_logs()
    # As deployed: drift counts written every 5 minutes, not after every request.
    with LocalCloud(parameters={"DriftFlushSeconds": "300"}, emit_metrics=False) as cloud:
        stack = StackClient(cloud.stack_name)
        instances = prepare(cloud, stack, "moving")
        with cloud.function_environment("PredictFunction", ALIAS_TTL_SECONDS=str(TTL_SECONDS)):
            report = run_load(
                cloud.api_url,
                "moving",
                instances,
                alias_mover(stack, "moving", [1, 2]),
                seconds=args.seconds,
                clients=args.clients,
                move_every=args.move_every,
            )
    print(json.dumps(report.summary(), indent=2))
    for problem in report.violations[:10]:
        print("violation:", problem)
    if args.write:
        command = "python benchmarks/serving_under_moves.py " + " ".join(sys.argv[1:])
        args.write.write_text(markdown(report, command.strip()))
    if report.server_errors or report.dropped or report.violations:
        sys.exit(1)


if __name__ == "__main__":
    main()
