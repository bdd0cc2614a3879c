"""The OpenAPI 3.1 document, generated from the operations and pydantic models that serve
and validate the requests (so it always matches the implementation)."""

from __future__ import annotations

import copy
from functools import lru_cache
from typing import Any, Literal

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from webhook_gateway.api import schemas as s
from webhook_gateway.api.framework import OPERATIONS, PREFIX, Operation

__all__ = ["build_openapi"]

REF = "#/components/schemas/{model}"
_STATUS_TEXT = {
    200: "OK",
    201: "Created",
    204: "No content",
    400: "Invalid request: the message names the field",
    401: "Missing, unknown, revoked or expired token, or a deactivated user",
    403: "The token lacks the scope this operation needs",
    404: "Not found, or not visible to the caller",
    409: "Conflict (e.g. duplicate name)",
    413: "Request body too large",
    415: "Content-Type is not application/json",
    429: "Too many failed authentications from this address; retry after Retry-After seconds",
    503: (
        "Temporarily unavailable (the database, or too many dry runs at once); "
        "retry after Retry-After seconds"
    ),
}


def _models() -> list[tuple[type[BaseModel], Literal["validation", "serialization"]]]:
    seen: dict[tuple[type[BaseModel], str], None] = {}
    for op in OPERATIONS:
        if op.body is not None:
            seen[(op.body, "validation")] = None
        if op.query is not None:
            seen[(op.query, "validation")] = None
        if op.response is not None:
            seen[(op.response, "serialization")] = None
    seen[(s.Error, "serialization")] = None
    return list(seen)  # type: ignore[arg-type]


def _strip_null(schema: dict[str, Any]) -> dict[str, Any]:
    """A query parameter cannot be null: drop the null branch and the null default."""
    schema = copy.deepcopy(schema)
    any_of = schema.pop("anyOf", None)
    if any_of is not None:
        rest = [branch for branch in any_of if branch != {"type": "null"}]
        if len(rest) == 1:
            schema.update(rest[0])
        else:
            schema["anyOf"] = rest
    if schema.get("default", 0) is None:
        del schema["default"]
    return schema


def _parameters(op: Operation, components: dict[str, Any], names: dict[Any, str]) -> list[Any]:
    params: list[dict[str, Any]] = [
        {
            "name": name,
            "in": "path",
            "required": True,
            "schema": {"type": "string", "format": "uuid"},
        }
        for name in op.path_params
    ]
    if op.query is not None:
        schema = components[names[(op.query, "validation")]]
        required = set(schema.get("required", []))
        for name, prop in schema.get("properties", {}).items():
            prop = _strip_null(prop)
            param: dict[str, Any] = {
                "name": name,
                "in": "query",
                "required": name in required,
                "schema": prop,
            }
            if prop.get("description"):
                param["description"] = prop["description"]
            if prop.get("type") == "array":
                param["style"] = "form"
                param["explode"] = True
            params.append(param)
    return params


@lru_cache(maxsize=4)
def build_openapi(server_url: str = "") -> dict[str, Any]:
    keys, top = models_json_schema(_models(), ref_template=REF)
    components: dict[str, Any] = top.get("$defs", {})
    names = {key: value["$ref"].rsplit("/", 1)[-1] for key, value in keys.items()}
    error_ref = {"$ref": REF.format(model=names[(s.Error, "serialization")])}
    paths: dict[str, dict[str, Any]] = {}
    for op in OPERATIONS:
        responses: dict[str, Any] = {}
        if op.response is None and op.status == 204:
            responses[str(op.status)] = {"description": _STATUS_TEXT[204]}
        elif op.response is None:
            responses[str(op.status)] = {
                "description": _STATUS_TEXT.get(op.status, "OK"),
                "content": {"application/json": {"schema": {"type": "object"}}},
            }
        else:
            ref = {"$ref": REF.format(model=names[(op.response, "serialization")])}
            responses[str(op.status)] = {
                "description": _STATUS_TEXT.get(op.status, "OK"),
                "content": {"application/json": {"schema": ref}},
            }
        for code in op.errors:
            responses[str(code)] = {
                "description": _STATUS_TEXT[code],
                "content": {"application/json": {"schema": error_ref}},
            }
        entry: dict[str, Any] = {
            "operationId": op.name,
            "summary": op.summary,
            "tags": [op.tag],
            "parameters": _parameters(op, components, names),
            "responses": responses,
        }
        if op.description:
            entry["description"] = op.description
        if op.body is not None:
            entry["requestBody"] = {
                "required": op.body_required,
                "content": {
                    "application/json": {
                        "schema": {"$ref": REF.format(model=names[(op.body, "validation")])}
                    }
                },
            }
        if op.public:
            entry["security"] = []
        paths.setdefault(PREFIX + op.path, {})[op.method.lower()] = entry
    doc: dict[str, Any] = {
        "openapi": "3.1.0",
        "info": {
            "title": "Chat Automations management API",
            "version": "1.0.0",
            "description": (
                "Manage automations, triggers, events and chats. Authenticate with "
                "`Authorization: Bearer <token>`. Lists take `limit` (default 50, at most 200) "
                "and `cursor` and answer `{items, next_cursor}`. Errors are "
                "`{code, message, field}`."
            ),
        },
        "paths": paths,
        "components": {
            "schemas": components,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
        "security": [{"bearer": []}],
    }
    if server_url:
        doc["servers"] = [{"url": server_url}]
    return doc
