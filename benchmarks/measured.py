"""What every benchmark's document shares: the block a benchmark rewrites between its markers
(the prose around it is the reader's and stays), and the machine it ran on."""

from __future__ import annotations

import os
import platform
import random
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

# The prediction function's environment in an in-process moto account: what the serving
# benchmarks set before they import the function.
PREDICT_ENVIRONMENT = {
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "POWERTOOLS_SERVICE_NAME": "predict",
    "POWERTOOLS_METRICS_NAMESPACE": "mlstack",
    "POWERTOOLS_LOG_LEVEL": "WARNING",
    "MODEL_BUCKET": "bench-models",
    "REGISTRY_TABLE": "bench-registry",
    "OMP_NUM_THREADS": "1",
}


def use_predict_environment() -> None:
    """Point this process at moto as the prediction function (``PREDICT_ENVIRONMENT``)."""
    os.environ.update(PREDICT_ENVIRONMENT)
    os.environ.pop("AWS_ENDPOINT_URL", None)


def markers(script: str) -> tuple[str, str]:
    return (f"<!-- measured: benchmarks/{script} writes from here -->", "<!-- /measured -->")


def write_measured(path: Path, measured: str, script: str, prose: str = "") -> None:
    """Replace ``script``'s measured block of ``path``, keeping the prose around it (a new file
    starts with ``prose``)."""
    start, end = markers(script)
    text = path.read_text() if path.exists() else f"{prose}{start}\n{end}\n"
    before, _, rest = text.partition(start)
    _, _, after = rest.partition(end)
    body = measured if measured.endswith("\n") else f"{measured}\n"
    path.write_text(f"{before}{start}\n{body}{end}{after}")


def cpu_model() -> str:
    model = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return model


def machine() -> str:
    return f"{os.cpu_count()} cores ({cpu_model()}), Python {platform.python_version()}"


def interleaved_rounds(
    timers: dict[str, Callable[[], Any]], budget_s: float
) -> dict[str, list[float]]:
    """Seconds per call of each callable, one sample per round.

    Rounds alternate between the callables in a shuffled order, so the machine's noise hits all
    of them alike and none always runs right after another (a forest scored by scikit-learn
    evicts the CPU caches of the next one). Within a round, a callable runs a block of
    consecutive calls (~2 ms worth), as a busy function serves request after request. Every
    round is kept, so ratios can be taken within a round.
    """
    once: dict[str, float] = {}
    for name, fn in timers.items():  # warm, and size the blocks
        fn()
        t0 = time.perf_counter()
        fn()
        once[name] = time.perf_counter() - t0
    block = {name: max(1, min(200, int(0.002 / max(t, 1e-9)))) for name, t in once.items()}
    per_round = sum(once[name] * block[name] for name in timers)
    rounds = int(max(3 if per_round > 1 else 5, min(300, budget_s / max(per_round, 1e-9))))
    samples: dict[str, list[float]] = {name: [] for name in timers}
    order = list(timers)
    shuffler = random.Random(0)
    for _ in range(rounds):
        shuffler.shuffle(order)
        for name in order:
            fn, calls = timers[name], block[name]
            t0 = time.perf_counter()
            for _ in range(calls):
                fn()
            samples[name].append((time.perf_counter() - t0) / calls)
    return samples
