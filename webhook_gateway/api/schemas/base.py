"""Shared building blocks of the API schemas: field types, base classes, errors."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Annotated, Any, Self

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
)

from shared.automations.service import (
    NAME_MAX,
    RATE_LIMIT_MAX,
    RATE_LIMIT_MIN,
    canonical_name,
    unique_ids,
)
from shared.errors import Invalid
from shared.infra.db.pagination import DEFAULT_LIMIT, MAX_LIMIT
from shared.triggers.service import (
    SCHEDULE_MAX,
)
from webhook_gateway.api.framework import validation_message

NO_NUL = r"^[^\x00]*$"


def no_nul_json(value: Any) -> Any:
    """Reject NUL anywhere in a JSON value (keys too): PostgreSQL JSONB cannot hold it."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            if "\x00" in item:
                raise ValueError("strings must not contain NUL (\\u0000) characters")
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return value


def in_utc(value: datetime) -> datetime:
    """An aware time converted to UTC, the zone it is compared and stored in. Converting is
    where an extreme time fails (``0001-01-01T00:00:00+01:00`` is before year 1 in UTC), so it
    happens here, during validation, and a time out of range is a 400 naming the parameter."""
    try:
        return value.astimezone(UTC)
    except OverflowError:
        raise ValueError(
            "out of range: in UTC it must fall between 0001-01-01T00:00:00Z and "
            "9999-12-31T23:59:59Z"
        ) from None


def whole_number(value: Any) -> Any:
    """JSON Schema counts 20.0 as an integer; accept it as 20 (but never ``true``)."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


#: every control (Cc) and format (Cf) character, as inclusive ranges (Unicode 14, Python
#: 3.11's ``unicodedata``; tests/api/test_names.py checks the table against it)
HIDDEN_RANGES: tuple[tuple[int, int], ...] = (
    (0x0000, 0x001F), (0x007F, 0x009F), (0x00AD, 0x00AD), (0x0600, 0x0605), (0x061C, 0x061C),
    (0x06DD, 0x06DD), (0x070F, 0x070F), (0x0890, 0x0891), (0x08E2, 0x08E2), (0x180E, 0x180E),
    (0x200B, 0x200F), (0x202A, 0x202E), (0x2060, 0x2064), (0x2066, 0x206F), (0xFEFF, 0xFEFF),
    (0xFFF9, 0xFFFB), (0x110BD, 0x110BD), (0x110CD, 0x110CD), (0x13430, 0x13438),
    (0x1BCA0, 0x1BCA3), (0x1D173, 0x1D17A), (0xE0001, 0xE0001), (0xE0020, 0xE007F),
)  # fmt: skip


def _hidden_class() -> str:
    """The body of a regex character class matching :data:`HIDDEN_RANGES`: ``\\uXXXX``
    escapes in the Basic Multilingual Plane, the characters themselves above it (ECMA-262 in
    unicode mode, Python ``re`` and Rust ``regex`` all read those the same)."""

    def char(point: int) -> str:
        return f"\\u{point:04x}" if point <= 0xFFFF else chr(point)

    return "".join(char(a) if a == b else f"{char(a)}-{char(b)}" for a, b in HIDDEN_RANGES)


_HIDDEN = _hidden_class()
#: what the OpenAPI document says about names, so clients (and schemathesis) know the rule;
#: :func:`canonical_name` enforces it, with a message saying which character is refused and
#: why (a pattern mismatch would only repeat this pattern)
NAME_PATTERN = rf"^[^{_HIDDEN}]*[^{_HIDDEN}\s][^{_HIDDEN}]*$"

Text = Annotated[str, Field(pattern=NO_NUL)]
#: a user-chosen name (automations; agents too): stored canonical, i.e. without surrounding
#: whitespace and NFKC-normalized; control, zero-width, bidi and other format characters are
#: refused (:func:`shared.automations.service.canonical_name`)
Name = Annotated[
    str,
    Field(
        min_length=1,
        max_length=NAME_MAX,
        pattern=r"^[^\x00]*[^\x00\s][^\x00]*$",
        json_schema_extra={"pattern": NAME_PATTERN},
    ),
    AfterValidator(canonical_name),
]
#: every time the API accepts (query parameters and bodies): with an offset, answered in UTC
UtcDatetime = Annotated[AwareDatetime, AfterValidator(in_utc)]
LongText = Annotated[str, Field(max_length=100_000, pattern=NO_NUL)]
ShortText = Annotated[str, Field(max_length=10_000, pattern=NO_NUL)]
Ident = Annotated[str, Field(min_length=1, max_length=200, pattern=r"^[^\x00]*$")]
RateLimit = Annotated[
    int, Field(ge=RATE_LIMIT_MIN, le=RATE_LIMIT_MAX), BeforeValidator(whole_number)
]
JsonObject = Annotated[dict[str, Any], AfterValidator(no_nul_json)]
LabelPaths = Annotated[
    dict[
        Annotated[str, Field(min_length=1, max_length=200, pattern=NO_NUL)],
        Annotated[str, Field(min_length=1, max_length=1000, pattern=NO_NUL)],
    ],
    Field(max_length=50),
]
#: stored without surrounding whitespace; parsed by the model (it depends on the trigger type)
Schedule = Annotated[
    str, Field(min_length=1, max_length=SCHEDULE_MAX, pattern=NO_NUL), AfterValidator(str.strip)
]
#: a set of ids, kept in the order given
McpServerIds = Annotated[list[Ident], Field(max_length=100), AfterValidator(unique_ids)]
ToolNames = Annotated[list[Ident], Field(max_length=500), AfterValidator(unique_ids)]


class Request(BaseModel):
    model_config = ConfigDict(extra="forbid", protected_namespaces=())


class Body(Request):
    """JSON request bodies: strict types (``true`` is not 1, ``"5"`` is not 5)."""

    model_config = ConfigDict(extra="forbid", protected_namespaces=(), strict=True)

    @classmethod
    def check_json(cls, data: Any) -> Self:
        """Validate ``data`` exactly as the API validates it as a JSON body; every error is an
        ``Invalid`` with the code, message and field the API would answer."""
        try:
            return cls.model_validate_json(json.dumps(data))
        except ValidationError as exc:
            code, message, field = validation_message(exc, "body")
            raise Invalid(message, code=code, field=field) from None


class Response(BaseModel):
    model_config = ConfigDict(protected_namespaces=())


# Errors ------------------------------------------------------------------------------------


#: the error statuses documented for reading and for writing operations
READ_ERRORS = (400, 401, 403, 404, 429, 503)
WRITE_ERRORS = (400, 401, 403, 404, 413, 415, 429, 503)


class Error(Response):
    """Every error: a stable machine code and a human message naming the bad field."""

    code: str = Field(examples=["validation_error"])
    message: str = Field(examples=["name: must not be empty"])
    field: str | None = None


class PageQuery(Request):
    limit: Annotated[int, Field(ge=1, le=MAX_LIMIT)] = DEFAULT_LIMIT
    cursor: (
        Annotated[
            str,
            Field(
                max_length=1000,
                pattern=r"^[A-Za-z0-9_-]*$",
                description="opaque: the next_cursor of the previous page",
            ),
        ]
        | None
    ) = None
