"""What every benchmark's document shares: the block a benchmark rewrites between its markers
(the prose around it is the reader's and stays), and the machine it ran on."""

from __future__ import annotations

import os
import platform
from pathlib import Path


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
