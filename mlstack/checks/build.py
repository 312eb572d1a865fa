"""Size check of a ``sam build`` output: each function with its layers against Lambda's limit.

Lambda refuses a function whose code plus layers exceed 250 MiB unzipped; this catches it before
``sam deploy`` does. The serving path has a tighter budget of its own (cold start,
docs/performance.md).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

LAMBDA_LIMIT_MIB = 250.0
# Serving: 90 MB keeps the cold start small; see docs/performance.md.
BUDGETS_MIB = {"PredictFunction": 90e6 / 2**20}
DEFAULT_BUDGET_MIB = 240.0  # 10 MiB of margin under the hard limit


def runtime_python() -> str | None:
    """python3.12 (the functions' runtime) on PATH, else pyenv's newest 3.12, as the Makefile finds
    it; None when neither runs."""
    found = shutil.which("python3.12")
    if found and subprocess.run([found, "-V"], capture_output=True, check=False).returncode == 0:
        return found
    done = subprocess.run(
        ["bash", "-c", "v=$(pyenv versions --bare | grep '^3\\.12' | tail -1) && pyenv prefix $v"],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode == 0 and done.stdout.strip():
        return f"{done.stdout.strip()}/bin/python3.12"
    return None


def directory_mib(path: Path) -> float:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) / 2**20


def function_sizes(build_dir: Path) -> list[dict[str, Any]]:
    """Unzipped size of each function with the layers it references (Globals included)."""
    from samtranslator.yaml_helper import yaml_parse

    template = yaml_parse((build_dir / "template.yaml").read_text())
    global_layers = template.get("Globals", {}).get("Function", {}).get("Layers", [])
    resources = template["Resources"]
    rows = []
    for logical_id, resource in resources.items():
        if resource["Type"] != "AWS::Serverless::Function":
            continue
        properties = resource["Properties"]
        layers = [layer["Ref"] for layer in global_layers + properties.get("Layers", [])]
        code = directory_mib(build_dir / properties["CodeUri"])
        layer_sizes = {
            name: directory_mib(build_dir / resources[name]["Properties"]["ContentUri"])
            for name in layers
        }
        total = code + sum(layer_sizes.values())
        budget = BUDGETS_MIB.get(logical_id, DEFAULT_BUDGET_MIB)
        rows.append(
            {
                "function": logical_id,
                "code": code,
                "layers": layer_sizes,
                "total": total,
                "budget": budget,
                "ok": total <= budget,
            }
        )
    return rows


RUNTIME_PROVIDED = ["boto3"]  # what the Lambda Python runtime ships besides the standard library


def import_check(build_dir: Path, runtime_python: str) -> list[str]:
    """Import every handler with only its own package on the path, as Lambda would.

    Catches a dependency missing from a function's layers (or one that sneaked in through a
    development install) before deploying. Runs ``python3.12 -I -S``: no site-packages at all.
    """
    from samtranslator.yaml_helper import yaml_parse

    runtime_dir = build_dir.parent / "runtime-provided"
    if not (runtime_dir / "boto3").is_dir():
        subprocess.run(
            [
                runtime_python,
                "-m",
                "pip",
                "install",
                "--quiet",
                "--target",
                str(runtime_dir),
                *RUNTIME_PROVIDED,
            ],
            check=True,
        )
    template = yaml_parse((build_dir / "template.yaml").read_text())
    global_layers = template.get("Globals", {}).get("Function", {}).get("Layers", [])
    resources = template["Resources"]
    failures = []
    for logical_id, resource in resources.items():
        if resource["Type"] != "AWS::Serverless::Function":
            continue
        properties = resource["Properties"]
        code_dir = build_dir / properties["CodeUri"]
        layer_dirs = [
            build_dir / resources[layer["Ref"]]["Properties"]["ContentUri"] / "python"
            for layer in global_layers + properties.get("Layers", [])
        ]
        module, _, attribute = properties["Handler"].rpartition(".")
        path = [str(code_dir), *map(str, layer_dirs), str(runtime_dir)]
        program = (
            f"import sys; sys.path[:0] = {path!r}; import {module}; "
            f"assert callable({module}.{attribute})"
        )
        environment = {
            "AWS_DEFAULT_REGION": "us-east-1",
            "POWERTOOLS_TRACE_DISABLED": "true",
            "POWERTOOLS_SERVICE_NAME": logical_id,
            "PATH": os.environ.get("PATH", ""),
        }
        result = subprocess.run(
            [runtime_python, "-I", "-S", "-B", "-c", program],
            capture_output=True,
            text=True,
            env=environment,
            check=False,
        )
        status = "ok" if result.returncode == 0 else "FAILED"
        print(f"import {logical_id:20} {status}")
        if result.returncode != 0:
            print(result.stderr.strip().splitlines()[-1] if result.stderr else "")
            failures.append(logical_id)
    return failures


def render_sizes(rows: list[dict[str, Any]]) -> str:
    """The sizes as the Markdown page ``make build`` writes (docs/sizes.md)."""
    lines = [
        "# Function sizes",
        "",
        "<!-- Generated by `make build` (`python -m mlstack.checks.build --write docs/sizes.md`)",
        "     from the `sam build` output. Do not edit by hand. -->",
        "",
        f"Unzipped, each function with the layers it carries; Lambda refuses more than "
        f"{LAMBDA_LIMIT_MIB:.0f} MiB.",
        "",
        "| function | code MiB | layers (MiB) | total MiB | budget MiB |",
        "|---|---:|---|---:|---:|",
    ]
    for row in rows:
        layers = ", ".join(f"{name} {size:.1f}" for name, size in row["layers"].items())
        lines.append(
            f"| {row['function']} | {row['code']:.2f} | {layers} | {row['total']:.1f} | "
            f"{row['budget']:.0f} |"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("build_dir", nargs="?", default=".aws-sam/build", type=Path)
    parser.add_argument("--runtime-python", help="also import each handler with this Python")
    parser.add_argument(
        "--write", type=Path, help="write the sizes as a generated Markdown page (docs/sizes.md)"
    )
    args = parser.parse_args(argv)
    failures = import_check(args.build_dir, args.runtime_python) if args.runtime_python else []
    rows = function_sizes(args.build_dir)
    print(f"{'function':20} {'code':>7} {'+ layers':>9} {'total MiB':>10} {'budget':>7}  layers")
    for row in rows:
        layers = ", ".join(f"{name} {size:.1f}" for name, size in row["layers"].items())
        print(
            f"{row['function']:20} {row['code']:7.2f} {sum(row['layers'].values()):9.1f} "
            f"{row['total']:10.1f} {row['budget']:7.0f}  {layers}"
            + ("" if row["ok"] else "   OVER BUDGET")
        )
    if args.write:
        args.write.write_text(render_sizes(rows))
    over = [row["function"] for row in rows if not row["ok"]]
    if over:
        print(f"over budget (Lambda's hard limit is {LAMBDA_LIMIT_MIB:.0f} MiB): {', '.join(over)}")
    return 1 if over or failures else 0


if __name__ == "__main__":
    sys.exit(main())
