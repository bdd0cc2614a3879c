"""The thin layer between Flask and :mod:`shared.automations`.

``@operation(...)`` registers a view on the blueprint *and* records what the OpenAPI
document says about it, from the same pydantic models that validate the request. Each
request runs in one unit of work (``shared.infra.db.uow``): authenticate → parse path ids,
query and body → call the domain → commit → publish what the view enqueued → serialise.
Errors become ``{"code", "message", "field"}`` JSON; a transient database error is 503 with
``Retry-After`` (``shared.errors``).
"""

from __future__ import annotations

import logging
import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import orjson
from flask import Blueprint, Response, request
from pydantic import BaseModel, ValidationError
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from shared.accounts import authz
from shared.accounts.authz import Principal
from shared.errors import (
    RETRY_AFTER_SECONDS,
    UNAVAILABLE,
    DomainError,
    describe_error,
    error_body,
    is_transient_db_error,
)
from shared.infra.clock import Clock
from shared.infra.config import Settings
from shared.infra.crypto import Keyring
from shared.infra.db.uow import UnitOfWork
from webhook_gateway.context import Gateway, gateway

__all__ = [
    "OPERATIONS",
    "ApiError",
    "Ctx",
    "Operation",
    "authenticate",
    "bp",
    "error_response",
    "operation",
    "parse_id",
    "too_many_failures",
]

log = logging.getLogger(__name__)
bp = Blueprint("api_v1", __name__, url_prefix="/api/v1")
PREFIX = "/api/v1"
#: management requests are small; the dry run may carry a webhook-sized payload
API_BODY_LIMIT_FLOOR = 256 * 1024


class ApiError(Exception):
    def __init__(
        self, status: int, code: str, message: str, field: str | None = None, **headers: str
    ) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.field = status, code, message, field
        self.headers = headers


@dataclass
class Operation:
    method: str
    path: str  # OpenAPI form, relative to /api/v1: /automations/{automation_id}
    name: str
    summary: str
    tag: str
    status: int
    response: type[BaseModel] | None
    body: type[BaseModel] | None = None
    body_required: bool = True
    query: type[BaseModel] | None = None
    errors: tuple[int, ...] = ()
    public: bool = False
    description: str = ""
    path_params: list[str] = field(default_factory=list)


@dataclass
class Ctx:
    uow: UnitOfWork
    session: Session
    clock: Clock
    settings: Settings
    keyring: Keyring
    principal: Principal
    query: Any = None
    body: Any = None
    body_fields: set[str] = field(default_factory=set)

    def webhook_url(self, trigger_id: uuid.UUID) -> str:
        from shared.triggers.service import webhook_path

        return self.settings.effective_public_url + webhook_path(trigger_id)


OPERATIONS: list[Operation] = []
_PARAM = re.compile(r"\{(\w+)\}")
_KEYRINGS: dict[int, Keyring] = {}


def keyring_for(settings: Settings) -> Keyring:
    ring = _KEYRINGS.get(id(settings))
    if ring is None:
        ring = _KEYRINGS[id(settings)] = Keyring(settings.keys)
    return ring


def body_limit(settings: Settings) -> int:
    return max(settings.max_body_bytes, API_BODY_LIMIT_FLOOR)


def operation(
    method: str,
    path: str,
    *,
    summary: str,
    tag: str,
    response: type[BaseModel] | None,
    status: int = 200,
    body: type[BaseModel] | None = None,
    body_required: bool = True,
    query: type[BaseModel] | None = None,
    errors: tuple[int, ...] = (),
    public: bool = False,
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    def decorate(fn: Callable[..., Any]) -> Callable[..., Any]:
        op = Operation(
            method=method.upper(),
            path=path,
            name=fn.__name__,
            summary=summary,
            tag=tag,
            status=status,
            response=response,
            body=body,
            body_required=body_required,
            query=query,
            errors=errors,
            public=public,
            description=(fn.__doc__ or "").strip(),
            path_params=_PARAM.findall(path),
        )
        OPERATIONS.append(op)

        def view(**path_values: str) -> Response:
            return _dispatch(op, fn, path_values)

        view.__name__ = fn.__name__
        bp.add_url_rule(
            _PARAM.sub(r"<\1>", path), endpoint=fn.__name__, view_func=view, methods=[op.method]
        )
        return fn

    return decorate


# Responses --------------------------------------------------------------------------------


def json_response(status: int, body: Any, headers: dict[str, str] | None = None) -> Response:
    resp = Response(orjson.dumps(body), status=status, mimetype="application/json")
    for name, value in (headers or {}).items():
        resp.headers[name] = value
    return resp


def error_response(
    status: int, code: str, message: str, field: str | None = None, **headers: str
) -> Response:
    return json_response(status, error_body(code, message, field=field), headers)


# Request parsing --------------------------------------------------------------------------


def authenticate(session: Session, gw: Gateway) -> Principal:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.strip().partition(" ")
    challenge = {"WWW-Authenticate": 'Bearer realm="automations"'}
    if not header:
        raise ApiError(
            401,
            "unauthorized",
            "Authorization: missing; send 'Authorization: Bearer <token>'",
            "Authorization",
            **challenge,
        )
    if scheme.lower() != "bearer" or not token.strip():
        raise ApiError(
            401,
            "unauthorized",
            "Authorization: expected 'Bearer <token>'",
            "Authorization",
            **challenge,
        )
    principal = authz.authenticate(session, gw.clock, token.strip())
    if principal is None:
        # Looked up even when the address is throttled: a valid token always works
        # (webhook_gateway.auth_throttle explains the policy).
        retry_after = gw.auth_throttle.record_failure(request.remote_addr)
        if retry_after is not None:
            raise too_many_failures(retry_after)
        raise ApiError(
            401,
            "invalid_token",
            "Authorization: token is unknown, revoked or expired, or its user is deactivated",
            "Authorization",
            **challenge,
        )
    return principal


def too_many_failures(retry_after: int) -> ApiError:
    """429 for an invalid credential from an address over the failed-authentication limit."""
    return ApiError(
        429,
        "too_many_requests",
        "Authorization: too many failed authentications from this address; "
        f"retry in {retry_after} s",
        "Authorization",
        **{"Retry-After": str(retry_after)},
    )


def _loc(loc: tuple[Any, ...]) -> str:
    return ".".join(str(part) for part in loc) or "body"


def validation_message(exc: ValidationError, where: str) -> tuple[str, str, str | None]:
    """``(code, message, field)`` from the first errors of a pydantic ValidationError."""
    errors = exc.errors(include_url=False, include_input=False)
    first = errors[0]
    if first["type"] == "json_invalid":
        return "invalid_json", f"{where}: not valid JSON ({first['msg']})", None
    parts = []
    code = "validation_error"
    for err in errors[:3]:
        name = _loc(err["loc"]) if err["loc"] else where
        if err["type"] == "extra_forbidden":
            parts.append(f"{name}: unknown field")
            code = "unknown_field" if len(errors) == 1 else code
        elif err["type"] == "string_pattern_mismatch" and "\\x00" in str(err.get("ctx", {})):
            parts.append(f"{name}: must not contain NUL characters")
        else:
            msg = str(err["msg"]).removeprefix("Value error, ")
            parts.append(f"{name}: {msg[:1].lower() + msg[1:]}")
    if len(errors) > 3:
        parts.append(f"and {len(errors) - 3} more")
    field_name = _loc(errors[0]["loc"]) if errors[0]["loc"] else None
    return code, "; ".join(parts), field_name


def _parse_query(model: type[BaseModel] | None) -> Any:
    args = request.args
    if model is None:
        if args:
            name = next(iter(args))
            raise ApiError(400, "unknown_field", f"{name}: unknown query parameter", name)
        return None
    data: dict[str, Any] = {}
    for name in args:
        values = args.getlist(name)
        info = model.model_fields.get(name)
        if info is None:
            raise ApiError(400, "unknown_field", f"{name}: unknown query parameter", name)
        if "list" in str(info.annotation):
            data[name] = values
        elif len(values) > 1:
            raise ApiError(400, "validation_error", f"{name}: given more than once", name)
        else:
            data[name] = values[0]
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        code, message, field_name = validation_message(exc, "query")
        raise ApiError(400, code, message, field_name) from None


def _read_body(limit: int) -> bytes:
    length = request.content_length
    if length is not None and length > limit:
        raise ApiError(413, "payload_too_large", f"body: larger than {limit} bytes")
    data = request.stream.read(limit + 1)
    if len(data) > limit:
        raise ApiError(413, "payload_too_large", f"body: larger than {limit} bytes")
    return data


def _parse_body(op: Operation, raw: bytes) -> tuple[Any, set[str]]:
    if op.body is None:
        return None, set()
    if not raw.strip():
        if op.body_required:
            raise ApiError(400, "validation_error", "body: a JSON object is required", "body")
        raw = b"{}"
    ctype = request.mimetype
    if ctype and ctype != "application/json" and not ctype.endswith("+json"):
        raise ApiError(
            415,
            "unsupported_media_type",
            f"Content-Type: expected application/json, got {ctype}",
            "Content-Type",
        )
    try:
        obj = op.body.model_validate_json(raw)
    except ValidationError as exc:
        code, message, field_name = validation_message(exc, "body")
        raise ApiError(400, code, message, field_name) from None
    return obj, set(obj.model_fields_set)


def parse_id(name: str, value: str) -> uuid.UUID:
    try:
        if len(value) > 64:
            raise ValueError
        return uuid.UUID(value)
    except ValueError:
        noun = name.removesuffix("_id")
        raise ApiError(404, "not_found", f"{noun} {value[:64]} not found", name) from None


def _dispatch(op: Operation, fn: Callable[..., Any], path_values: dict[str, str]) -> Response:
    gw = gateway()
    try:
        raw = _read_body(body_limit(gw.settings)) if op.body is not None else b""
        if op.public:
            return _finish(op, fn(gw))
        with gw.unit_of_work() as uow:
            session = uow.session
            principal = authenticate(session, gw)
            ids = {name: parse_id(name, value) for name, value in path_values.items()}
            query = _parse_query(op.query)
            body, fields = _parse_body(op, raw)
            ctx = Ctx(
                uow=uow,
                session=session,
                clock=gw.clock,
                settings=gw.settings,
                keyring=keyring_for(gw.settings),
                principal=principal,
                query=query,
                body=body,
                body_fields=fields,
            )
            result = fn(ctx, **ids)
        return _finish(op, result)
    except ApiError as exc:
        return error_response(exc.status, exc.code, exc.message, exc.field, **exc.headers)
    except DomainError as exc:
        return error_response(exc.status, exc.code, exc.message, exc.field)
    except SQLAlchemyError as exc:
        if not is_transient_db_error(exc):
            raise
        log.warning("database unavailable: %s", describe_error(exc))
        return error_response(503, *UNAVAILABLE, None, **{"Retry-After": str(RETRY_AFTER_SECONDS)})


def _finish(op: Operation, result: Any) -> Response:
    if isinstance(result, Response):
        return result
    if op.status == 204 or result is None:
        return Response(status=204)
    if isinstance(result, BaseModel):
        return json_response(op.status, result.model_dump(mode="json"))
    return json_response(op.status, result)
