"""The gateway's OpenAPI document, built from what serves: each model's input from its MLflow signature."""

from __future__ import annotations

from typing import Any

from serving.inputs import JSON_TYPES, MAX_ROWS, V2_DATATYPES, InputSchema
from serving.table import Snapshot

ERRORS = {"400": "Malformed or empty body", "401": "Missing, unknown or revoked token", "403": "Token not scoped "
          "to this model", "404": "Unknown model, or no version of it serves", "413": "Body or row count over the "
          "limit", "422": "A field is missing, unknown or of the wrong type (the message names it)"}


def row_schema(schema: InputSchema) -> dict[str, Any]:
    properties: dict[str, Any] = {}
    for name, kind in schema.columns:
        json_type = JSON_TYPES.get(kind, "string")
        properties[name] = ({"type": "number", "nullable": True, "description": f"{kind}; null where missing"}
                            if json_type == "number" else {"type": json_type, "description": kind})
    properties.setdefault(schema.id_column, {"type": "string", "minLength": 1, "description": "optional "
                          "prediction id (ground truth joins on it); the gateway makes one when absent"})
    properties.setdefault(schema.timestamp_column, {"type": "string", "format": "date-time", "description":
                          "optional event time (ISO 8601); the request time when absent"})
    return {"type": "object", "properties": properties, "required": schema.names, "additionalProperties": False}


def _rows(schema: InputSchema) -> dict[str, Any]:
    return {"type": "array", "items": row_schema(schema), "minItems": 1, "maxItems": MAX_ROWS}


def _error_responses() -> dict[str, Any]:
    return {code: {"description": text, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/"
                                                                                            "Error"}}}}
            for code, text in ERRORS.items()}


def _operation(summary: str, body: dict[str, Any], answer: str, parameters: list[dict[str, Any]]) -> dict[str, Any]:
    return {"post": {"summary": summary, "parameters": parameters, "security": [{"bearer": []}],
                     "requestBody": {"required": True, "content": {"application/json": {"schema": body}}},
                     "responses": {"200": {"description": "Predictions, with the version that answered and an id "
                                                          "per prediction",
                                           "content": {"application/json": {"schema": {"$ref": answer}}}},
                                   **_error_responses()}}}


def _v2_request(schema: InputSchema) -> dict[str, Any]:
    tensors = [{"type": "object", "required": ["name", "shape", "datatype", "data"], "properties": {
        "name": {"type": "string", "enum": [name]},
        "shape": {"type": "array", "items": {"type": "integer", "minimum": 1, "maximum": MAX_ROWS},
                  "minItems": 1, "maxItems": 1},
        "datatype": {"type": "string", "enum": [V2_DATATYPES.get(kind, "BYTES")]},
        "data": {"type": "array", "items": row_schema(schema)["properties"][name], "minItems": 1}}}
        for name, kind in schema.columns]
    return {"type": "object", "required": ["inputs"], "properties": {
        "id": {"type": "string"}, "parameters": {"type": "object", "properties": {"routing_key": {"type": "string"}}},
        "inputs": {"type": "array", "items": {"anyOf": tensors}, "minItems": len(tensors),
                   "maxItems": len(tensors)}}}


def document(snapshot: Snapshot) -> dict[str, Any]:
    paths: dict[str, Any] = {}
    schemas: dict[str, Any] = {
        "Error": {"type": "object", "properties": {"error": {"type": "object", "properties": {
            "kind": {"type": "string"}, "field": {"type": "string"}, "message": {"type": "string"}}}}},
        "Predictions": {"type": "object", "required": ["model", "version", "role", "predictions"], "properties": {
            "model": {"type": "string"}, "version": {"type": "string"}, "role": {"type": "string"},
            "predictions": {"type": "array", "items": {"type": "object", "properties": {
                "prediction_id": {"type": "string"}, "prediction": {"type": "number"}, "score": {"type": "number"}}}}}},
        "MlflowPredictions": {"type": "object", "required": ["predictions"], "properties": {
            "predictions": {"type": "array", "items": {"type": "number"}}, "model_version": {"type": "string"},
            "prediction_ids": {"type": "array", "items": {"type": "string"}}}},
        "InferenceResponse": {"type": "object", "required": ["model_name", "outputs"], "properties": {
            "model_name": {"type": "string"}, "model_version": {"type": "string"}, "id": {"type": "string"},
            "outputs": {"type": "array"}}},
    }
    version = {"name": "version", "in": "path", "required": True, "schema": {"type": "string", "pattern": "^[0-9]+$"}}
    alias = {"name": "alias", "in": "path", "required": True, "schema": {"type": "string",
                                                                         "enum": ["champion", "challenger"]}}
    key = {"name": "X-Routing-Key", "in": "header", "required": False, "schema": {"type": "string"},
           "description": "Sticky champion/challenger split: the same key always reaches the same version"}
    for name, route in sorted(snapshot.routes.items()):
        served = route.champion or route.challenger
        if served is None:
            continue
        schema = served.schema
        title = name.replace("-", "_").title().replace("_", "")
        schemas[f"{title}Request"] = {"type": "object", "required": ["rows"], "additionalProperties": False,
                                      "properties": {"rows": _rows(schema), "routing_key": {"type": "string"}}}
        schemas[f"{title}MlflowRequest"] = {"type": "object", "required": ["dataframe_records"],
                                            "additionalProperties": False,
                                            "properties": {"dataframe_records": _rows(schema)}}
        schemas[f"{title}InferenceRequest"] = _v2_request(schema)
        native, mlflow = f"#/components/schemas/{title}Request", f"#/components/schemas/{title}MlflowRequest"
        base = f"/v1/models/{name}"
        paths[f"{base}/predict"] = _operation(f"{name}: the champion answers (or the challenger, by the split)",
                                              {"$ref": native}, "#/components/schemas/Predictions", [key])
        paths[f"{base}/versions/{{version}}/predict"] = _operation(f"{name}: a version by number", {"$ref": native},
                                                                   "#/components/schemas/Predictions", [version])
        paths[f"{base}/aliases/{{alias}}/predict"] = _operation(f"{name}: the version serving as champion or "
                                                                "challenger", {"$ref": native},
                                                                "#/components/schemas/Predictions", [alias])
        paths[f"{base}/invocations"] = _operation(f"{name}: MLflow's scoring protocol", {"$ref": mlflow},
                                                  "#/components/schemas/MlflowPredictions", [key])
        paths[f"/v2/models/{name}/infer"] = _operation(f"{name}: Open Inference Protocol v2",
                                                       {"$ref": f"#/components/schemas/{title}InferenceRequest"},
                                                       "#/components/schemas/InferenceResponse", [])
    for path, summary in (("/healthz", "Alive"), ("/v2/health/live", "Alive (v2)")):
        paths[path] = {"get": {"summary": summary, "responses": {"200": {"description": "alive"}}}}
    return {"openapi": "3.0.3",
            "info": {"title": "ModelOps gateway", "version": "1",
                     "description": "Every deployed model behind one service: the governance store decides which "
                                    "version answers."},
            "paths": paths,
            "components": {"schemas": schemas, "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}}}}
