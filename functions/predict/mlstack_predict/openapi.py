"""The OpenAPI 3.1 document of the prediction API, generated from the function's own settings.

Served at ``GET /openapi.json`` (and rendered by Swagger UI at ``GET /docs``). The limits in it
(rows, bytes, alias TTL) are the ones this function enforces, read from its environment. A test
validates it as OpenAPI 3 and runs schemathesis against the local API with it, so the document and
the handler cannot drift apart silently.

Written as data rather than derived from Powertools' OpenAPI support: that needs pydantic, whose
import and size the serving path cannot afford (README, "Prediction API").
"""

from __future__ import annotations

from typing import Any

from mlstack_core.settings import ServingSettings

VERSION_PATTERN = "^[1-9][0-9]{0,8}$"


def _error(description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
    }


def _json(description: str, ref: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{ref}"}}},
    }


_MODEL = {
    "name": "model",
    "in": "path",
    "required": True,
    "description": "Model name (the datasets/<model>/ prefix it was trained from).",
    "schema": {"type": "string", "minLength": 1},
    "example": "penguins",
}

# A penguin as a client sends it: the API document's example, the README's and the tests'.
EXAMPLE_RECORD = {
    "island": "Biscoe",
    "bill_length_mm": 48.6,
    "bill_depth_mm": 16.0,
    "flipper_length_mm": 230,
    "body_mass_g": 5800,
    "sex": "male",
    "year": 2009,
}


def document(settings: ServingSettings, server_url: str | None = None) -> dict[str, Any]:
    """The OpenAPI document, with this function's limits written into it."""
    max_rows = settings.max_rows
    scalar = {"type": ["number", "string", "null"]}
    value = {
        "description": (
            "Numeric columns: a number or null (missing). Categorical columns: a string, a number "
            "(sent as its text) or null (missing). Booleans, arrays and objects are refused; "
            "NaN/Infinity are not JSON."
        ),
        **scalar,
    }
    schemas: dict[str, Any] = {
        "Records": {
            "type": "object",
            "title": "Records",
            "required": ["instances"],
            "additionalProperties": False,
            "properties": {
                "instances": {
                    "type": "array",
                    "minItems": 1,
                    "maxItems": max_rows,
                    "description": (
                        "One object per row with exactly the model's input columns (see "
                        "GET /models/{model}/versions/{version}: schema.numeric, "
                        "schema.categorical, schema.datetime (a date or time as a string) and "
                        "schema.text); schema.identifiers may ride along and are ignored."
                    ),
                    "items": {"type": "object", "additionalProperties": value},
                }
            },
            "example": {"instances": [EXAMPLE_RECORD]},
        },
        "Columnar": {
            "type": "object",
            "title": "Columnar",
            "required": ["columns", "data"],
            "additionalProperties": False,
            "description": "The compact form: column names once, then one array per row.",
            "properties": {
                "columns": {"type": "array", "items": {"type": "string"}, "uniqueItems": True},
                "data": {
                    "type": "array",
                    "minItems": 1,
                    "maxItems": max_rows,
                    "items": {"type": "array", "items": value},
                },
            },
            "example": {
                "columns": list(EXAMPLE_RECORD),
                "data": [list(EXAMPLE_RECORD.values())],
            },
        },
        "Prediction": {
            "type": "object",
            "required": ["model", "version", "variant", "request_id", "predictions"],
            "properties": {
                "model": {"type": "string"},
                "version": {"type": "integer", "minimum": 1},
                "variant": {
                    "enum": ["production", "canary", "pinned"],
                    "description": "Which alias answered: production, the canary (its share of "
                    "requests), or the version pinned by ?version=.",
                },
                "request_id": {"type": ["string", "null"]},
                "predictions": {
                    "type": "array",
                    "description": "One per instance; a regressor's NaN output is null.",
                    "items": {"type": ["string", "number", "integer", "boolean", "null"]},
                },
                "classes": {
                    "type": "array",
                    "description": "Classifiers only: the order of each probabilities row.",
                    "items": {"type": ["string", "number", "integer", "boolean"]},
                },
                "probabilities": {
                    "type": "array",
                    "description": (
                        "Classifiers only: one row per instance, aligned to classes; the model's "
                        "float32 values in their shortest decimal text."
                    ),
                    "items": {"type": "array", "items": {"type": "number"}},
                },
                "shadow_version": {
                    "type": "integer",
                    "description": "Present when a shadow version was scored beside this request.",
                },
            },
        },
        "Explanation": {
            "type": "object",
            "required": ["model", "version", "request_id", "predictions", "explanations", "method"],
            "description": (
                "The answer /predict gives for these rows, and why: per row, a base value and one "
                "contribution per input column as the request names it. Base plus the "
                "contributions is the explained output: a regressor's prediction, or each class's "
                "probability (a list aligned to classes). Shapley values of the served ONNX model "
                "against training rows stored with the version (the base is its mean answer on "
                "them): exact when every coalition of the row's columns fits the budget, Kernel "
                "SHAP on sampled coalitions (paired, sizes drawn uniformly) otherwise; the budget "
                "grows with the columns whose value differs from a background row's."
            ),
            "properties": {
                "model": {"type": "string"},
                "version": {"type": "integer", "minimum": 1},
                "request_id": {"type": ["string", "null"]},
                "predictions": {"$ref": "#/components/schemas/Prediction/properties/predictions"},
                "classes": {"$ref": "#/components/schemas/Prediction/properties/classes"},
                "probabilities": {
                    "$ref": "#/components/schemas/Prediction/properties/probabilities"
                },
                "explanations": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "required": ["base", "contributions", "exact"],
                        "properties": {
                            "base": {
                                "oneOf": [
                                    {"type": "number"},
                                    {"type": "array", "items": {"type": "number"}},
                                ]
                            },
                            "contributions": {
                                "type": "object",
                                "description": "Input column -> its contribution (a list "
                                "aligned to classes for a classifier).",
                                "additionalProperties": {
                                    "oneOf": [
                                        {"type": "number"},
                                        {"type": "array", "items": {"type": "number"}},
                                    ]
                                },
                            },
                            "exact": {
                                "type": "boolean",
                                "description": "Every coalition was evaluated (no sampling).",
                            },
                        },
                    },
                },
                "method": {
                    "type": "object",
                    "properties": {
                        "name": {"const": "shapley"},
                        "background_rows": {"type": "integer"},
                        "coalitions": {
                            "type": "integer",
                            "description": "The most coalitions a row was evaluated on.",
                        },
                        "coalition_budget": {
                            "type": "integer",
                            "description": "The most coalitions a row was allowed.",
                        },
                    },
                },
            },
        },
        "Error": {
            "type": "object",
            "required": ["error", "details"],
            "properties": {
                "error": {"type": "string", "description": "One sentence; never a stack trace."},
                "details": {
                    "type": "array",
                    "maxItems": 20,
                    "description": (
                        "Field-level problems: {row, column, field, message}; column-set problems "
                        "add missing and unknown; a 500 carries {request_id}."
                    ),
                    "items": {"type": "object"},
                },
            },
        },
        "VersionSummary": {
            "type": "object",
            "properties": {
                "version": {"type": "integer"},
                "status": {"type": ["string", "null"]},
                "created_at": {"type": ["string", "null"]},
                "metric": {"type": ["object", "null"]},
            },
        },
        "Model": {
            "type": "object",
            "required": ["model", "production_version", "versions"],
            "properties": {
                "model": {"type": "string"},
                "production_version": {"type": ["integer", "null"]},
                "production": {"type": ["object", "null"]},
                "canary": {
                    "type": ["object", "null"],
                    "properties": {"version": {"type": "integer"}, "share": {"type": "number"}},
                },
                "shadow": {
                    "type": ["object", "null"],
                    "properties": {"version": {"type": "integer"}},
                },
                "versions": {
                    "type": "array",
                    "items": {"$ref": "#/components/schemas/VersionSummary"},
                },
            },
        },
        "Version": {
            "type": "object",
            "required": ["model", "version", "status"],
            "description": (
                "What a client may know of a version: status, metrics and the feature schema "
                "(no storage locations, hashes, lineage or data warnings)."
            ),
            "properties": {
                "model": {"type": "string"},
                "version": {"type": "integer"},
                "status": {"type": "string"},
                "metrics": {"type": "object"},
                "schema": {"type": "object"},
                "aliases": {"type": "array", "items": {"type": "string"}},
            },
        },
    }
    parameters: list[dict[str, Any]] = [
        _MODEL,
        {
            "name": "version",
            "in": "query",
            "required": False,
            "description": "Pin a registered version instead of production.",
            "schema": {"type": "string", "pattern": VERSION_PATTERN},
        },
    ]
    content: dict[str, Any] = {
        "application/json": {
            "schema": {
                "oneOf": [
                    {"$ref": "#/components/schemas/Records"},
                    {"$ref": "#/components/schemas/Columnar"},
                ]
            }
        }
    }
    unavailable: dict[str, Any] = {
        **_error(
            "The version cannot be loaded, or the registry cannot be reached, and nothing "
            "loaded can answer"
        ),
        "headers": {
            "Retry-After": {
                "description": "Seconds until the version is tried again",
                "schema": {"type": "integer"},
            }
        },
    }
    predict = {
        "summary": "Predict with the production model (or its canary, or a pinned version)",
        "operationId": "predict",
        "parameters": parameters,
        "requestBody": {
            "required": True,
            "description": (
                f"At most {max_rows} rows and {settings.max_body_bytes} bytes per request."
            ),
            "content": content,
        },
        "responses": {
            "200": _json("Predictions, one per row", "Prediction"),
            "400": _error("Malformed body; details name each field and reason"),
            "404": _error("No such model (in production) or version"),
            "413": _error(f"More than {max_rows} rows or {settings.max_body_bytes} bytes"),
            "503": unavailable,
            "500": _error("Unexpected; details carry the request id"),
        },
    }
    explain_rows = settings.explain_max_rows
    explain = {
        "summary": "Explain the production model's answers (or a pinned version's) per column",
        "operationId": "explain",
        "parameters": parameters,
        "requestBody": {
            "required": True,
            "description": (
                f"The body /predict takes, at most {explain_rows} rows per request; each row "
                f"costs {settings.explain_graph_rows} to {settings.explain_max_graph_rows} rows "
                "of the model's graph, more for more columns."
            ),
            "content": content,
        },
        "responses": {
            "200": _json("Predictions and their explanations, one per row", "Explanation"),
            "400": _error("Malformed body; details name each field and reason"),
            "404": _error("No such model (in production) or version"),
            "409": _error("The version has no background rows to explain against"),
            "413": _error(f"More than {explain_rows} rows"),
            "503": unavailable,
            "500": _error("Unexpected; details carry the request id"),
        },
    }
    get_model = {
        "summary": "Production version, challengers and all versions of a model",
        "operationId": "describeModel",
        "parameters": [_MODEL],
        "responses": {
            "200": _json("The model", "Model"),
            "404": _error("No such model"),
            "500": _error("Unexpected"),
        },
    }
    get_version = {
        "summary": "One version: metadata, metrics and feature schema",
        "operationId": "describeVersion",
        "parameters": [
            _MODEL,
            {
                "name": "version",
                "in": "path",
                "required": True,
                "schema": {"type": "string", "pattern": VERSION_PATTERN},
                "example": "1",
            },
        ],
        "responses": {
            "200": _json("The version document", "Version"),
            "404": _error("No such model or version"),
            "500": _error("Unexpected"),
        },
    }
    doc: dict[str, Any] = {
        "openapi": "3.1.0",
        "info": {
            "title": "mlstack prediction API",
            "version": "1",
            "description": (
                "Serves the production ONNX model of each model name with onnxruntime. A promotion "
                f"or rollback is served within {settings.alias_ttl_seconds:g} s without a "
                "redeploy. Errors are always {error, details}."
            ),
        },
        "paths": {
            "/models/{model}/predict": {"post": predict},
            "/models/{model}/explain": {"post": explain},
            "/models/{model}": {"get": get_model},
            "/models/{model}/versions/{version}": {"get": get_version},
            "/models": {
                "get": {
                    "summary": "Model names with their production versions",
                    "operationId": "listModels",
                    "responses": {
                        "200": {
                            "description": "Every model in the registry",
                            "content": {
                                "application/json": {
                                    "schema": {
                                        "type": "object",
                                        "required": ["models"],
                                        "properties": {
                                            "models": {"type": "array", "items": {"type": "object"}}
                                        },
                                    }
                                }
                            },
                        },
                        "500": _error("Unexpected"),
                    },
                }
            },
            "/health": {
                "get": {
                    "summary": "Liveness",
                    "operationId": "health",
                    "responses": {
                        "200": {
                            "description": "ok",
                            "content": {
                                "application/json": {
                                    "schema": {
                                        "type": "object",
                                        "required": ["status"],
                                        "properties": {"status": {"const": "ok"}},
                                    }
                                }
                            },
                        }
                    },
                }
            },
            "/openapi.json": {
                "get": {
                    "summary": "This document",
                    "operationId": "openapi",
                    "responses": {
                        "200": {
                            "description": "OpenAPI 3.1",
                            "content": {"application/json": {"schema": {"type": "object"}}},
                        }
                    },
                }
            },
            "/docs": {
                "get": {
                    "summary": "Swagger UI for this document",
                    "operationId": "docs",
                    "responses": {
                        "200": {
                            "description": "HTML",
                            "content": {"text/html": {"schema": {"type": "string"}}},
                        }
                    },
                }
            },
        },
        "components": {"schemas": schemas},
    }
    if server_url:
        doc["servers"] = [{"url": server_url}]
    return doc


SWAGGER_HTML = """<!doctype html>
<html><head><meta charset="utf-8"><title>mlstack prediction API</title>
<style>{css}</style></head>
<body><div id="swagger-ui"></div>
<script>{js}</script>
<script>
SwaggerUIBundle({{url: {spec_url}, dom_id: "#swagger-ui", deepLinking: true}});
</script></body></html>
"""


def swagger_html(spec_url: str) -> str:
    """Swagger UI, self-contained: Powertools ships the UI bundle, so /docs needs no CDN."""
    import json
    from importlib import resources

    try:
        folder = resources.files("aws_lambda_powertools.event_handler.openapi") / "swagger_ui"
        js = (folder / "swagger-ui-bundle.min.js").read_text(encoding="utf-8")
        css = (folder / "swagger-ui.min.css").read_text(encoding="utf-8")
    except (FileNotFoundError, ModuleNotFoundError, OSError):
        return (
            "<!doctype html><html><head><title>mlstack prediction API</title></head><body>"
            f'<p>Swagger UI is not packaged here; the document is at <a href="{spec_url}">'
            f"{spec_url}</a>.</p></body></html>"
        )
    return SWAGGER_HTML.format(
        css=css, js=js.replace("</script", "<\\/script"), spec_url=json.dumps(spec_url)
    )
