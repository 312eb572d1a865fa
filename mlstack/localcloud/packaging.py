"""What ``sam package`` does, locally: each CodeUri/ContentUri zipped into an artifacts bucket in
moto, and the state machine definition inlined.
"""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path
from typing import Any

ARTIFACT_BUCKET = "mlstack-local-artifacts"


def _zip_directory(directory: Path) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for file in sorted(directory.rglob("*")):
            if file.is_file() and "__pycache__" not in file.parts:
                archive.write(file, file.relative_to(directory).as_posix())
    return buffer.getvalue()


def package_code(template: dict[str, Any], root: Path, s3: Any) -> dict[str, Path]:
    """Upload each CodeUri/ContentUri as a zip and point the template at it, like ``sam package``.

    Returns the S3 key → local directory map that the in-process runner uses to find a
    function's code from what moto stored.
    """
    s3.create_bucket(Bucket=ARTIFACT_BUCKET)
    code_dirs: dict[str, Path] = {}
    for resource in template["Resources"].values():
        properties = resource.get("Properties", {})
        for uri_key in ("CodeUri", "ContentUri"):
            uri = properties.get(uri_key)
            if isinstance(uri, str) and not uri.startswith("s3://"):
                directory = (root / uri).resolve()
                key = f"code/{directory.relative_to(root).as_posix()}.zip"
                s3.put_object(Bucket=ARTIFACT_BUCKET, Key=key, Body=_zip_directory(directory))
                properties[uri_key] = f"s3://{ARTIFACT_BUCKET}/{key}"
                code_dirs[key] = directory
        definition_uri = properties.get("DefinitionUri")
        if isinstance(definition_uri, str) and not definition_uri.startswith("s3://"):
            properties["Definition"] = json.loads((root / definition_uri).read_text())
            del properties["DefinitionUri"]
    return code_dirs
