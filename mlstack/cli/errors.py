"""What the CLI says when a command fails: a sentence or two naming the problem and what to do,
never a traceback (``--debug`` or ``MLSTACK_DEBUG=1`` shows it), and the exit code.

The stack's own errors (``mlstack_core.errors.MlstackError``, the CLI's among them) say it
themselves: their message is the sentence and their class carries the exit code, one of the table
in ``mlstack_core.errors`` (``EXIT_HELP`` shows it in ``mlstack --help``)."""

from __future__ import annotations

import difflib
import json
import os
from typing import Any

from mlstack_core.errors import (
    EXIT_OK,
    EXIT_REFUSED,
    EXIT_RUN_FAILED,
    EXIT_UNREACHABLE,
    EXIT_USAGE,
    MlstackError,
    ModelNotFound,
)

# The extra (pyproject.toml) that brings each optional top-level package, and the commands whose
# whole extra is named instead (it includes those packages).
EXTRA_OF_PACKAGE = {
    "moto": "local",
    "samtranslator": "local",
    "yaml": "local",
    "aws_lambda_powertools": "local",
    "numpy": "local",
    "sklearn": "local",
    "onnxruntime": "local",
    "palmerpenguins": "demo",
    "matplotlib": "report",
}
EXTRA_OF_COMMAND = {"demo": "demo", "local": "local", "report": "report", "card": "report"}
LOCAL_CREDENTIALS = (
    "for the local cloud: export AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing "
    "AWS_DEFAULT_REGION=us-east-1"
)


# The exit-code table, as ``mlstack --help`` ends (the README's "Exit codes" says the same).
EXIT_HELP = f"""exit codes:
  {EXIT_OK}  success
  {EXIT_RUN_FAILED}  the training run or batch job followed with --wait ended FAILED
  {EXIT_USAGE}  usage error: a missing or bad argument, no such file, not valid JSON
  {EXIT_REFUSED}  refused by the stack: no such model or version, a version it does not serve,
     a move it does not allow, a conflicting change, a request it rejects
  {EXIT_UNREACHABLE}  the stack cannot be reached: no region or credentials, nothing answers
     at AWS_ENDPOINT_URL, no such stack
a failure prints one line, "mlstack COMMAND: what went wrong and what to do", on stderr"""


class CommandError(MlstackError):
    """The command as given cannot run; the CLI explains it in words (its message is printed
    as is)."""

    exit_code = EXIT_USAGE


class CommandRefused(CommandError):
    """The stack's state does not allow what the command asks (its message says why)."""

    exit_code = EXIT_REFUSED


class RunFailed(CommandError):
    """Work the command started or asked for on the stack ran and failed."""

    exit_code = EXIT_RUN_FAILED


def require_model(registry: Any, model: str) -> None:
    """Refuse a model name the registry does not know before the command uploads or starts
    anything, naming the models it knows, the closest to ``model`` first (a typo's fix)."""
    models = registry.list_models()
    if model in models:
        return
    raise ModelNotFound(unknown_model(model, models))


def unknown_model(model: str, models: list[str]) -> str:
    """``no model named 'churnn'; models: churn, churn-watch``: the close matches first."""
    if not models:
        return f"no model named {model!r}; no models are registered yet"
    close = difflib.get_close_matches(model, models, n=len(models))
    ordered = [*close, *sorted(name for name in models if name not in close)]
    return f"no model named {model!r}; models: {', '.join(ordered)}"


def exit_code(error: BaseException) -> int:
    """The exit code of a command ``error`` ended (after ``explain`` gave its sentence)."""
    from botocore.exceptions import (
        ClientError,
        EndpointConnectionError,
        NoCredentialsError,
        NoRegionError,
    )

    if isinstance(error, MlstackError):
        return error.exit_code
    if isinstance(error, EndpointConnectionError | NoCredentialsError | NoRegionError):
        return EXIT_UNREACHABLE
    if isinstance(error, ClientError):
        return EXIT_UNREACHABLE if _no_such_stack(error) else EXIT_REFUSED
    return EXIT_USAGE


def _no_such_stack(error: Any) -> bool:
    message = str(error.response.get("Error", {}).get("Message", ""))
    return "does not exist" in message and "Stack" in message


def explain(error: BaseException, command: str, stack: str) -> str | None:
    """The sentence for ``error``, or None when it is not one a user can cause."""
    from botocore.exceptions import (
        ClientError,
        EndpointConnectionError,
        NoCredentialsError,
        NoRegionError,
    )

    from mlstack.sam import TemplateNotFound

    endpoint = os.environ.get("AWS_ENDPOINT_URL")
    if isinstance(error, MlstackError | TemplateNotFound):
        return str(error.args[0] if error.args else error)
    if isinstance(error, NoRegionError):
        return "no AWS region is set: export AWS_DEFAULT_REGION (us-east-1 for the local cloud)"
    if isinstance(error, NoCredentialsError):
        return f"no AWS credentials were found: configure them ({LOCAL_CREDENTIALS})"
    if isinstance(error, EndpointConnectionError):
        if endpoint:
            return (
                f"nothing answers at AWS_ENDPOINT_URL={endpoint}: start the local cloud with "
                "`mlstack local up`, or unset AWS_ENDPOINT_URL to use AWS"
            )
        return f"AWS cannot be reached: {error}"
    if isinstance(error, ClientError):
        code = error.response.get("Error", {}).get("Code", "")
        message = error.response.get("Error", {}).get("Message", str(error))
        if _no_such_stack(error):
            region = os.environ.get("AWS_DEFAULT_REGION") or os.environ.get("AWS_REGION") or "?"
            return (
                f"no stack named {stack!r} in region {region}"
                + (f" at {endpoint}" if endpoint else "")
                + ": check --stack and AWS_DEFAULT_REGION"
            )
        return f"AWS refused the request ({code}): {message}"
    if isinstance(error, ModuleNotFoundError):
        extra = EXTRA_OF_PACKAGE.get((error.name or "").split(".")[0])
        if extra is None:
            return None
        extra = EXTRA_OF_COMMAND.get(command, extra)
        return (
            f"this command needs the {extra!r} extra ({error.name} is not installed): "
            f"pip install 'mlstack[{extra}]'"
        )
    if isinstance(error, FileNotFoundError):
        return f"no such file: {error.filename}"
    if isinstance(error, json.JSONDecodeError):
        return f"not valid JSON: {error}"
    return None


def debugging(args: Any) -> bool:
    return bool(getattr(args, "debug", False)) or os.environ.get("MLSTACK_DEBUG") == "1"
