"""Shared building blocks of the API schemas: field types, base classes, errors."""

from __future__ import annotations

import json
from typing import Annotated, Any, Self

from pydantic import (
    AfterValidator,
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


def whole_number(value: Any) -> Any:
    """JSON Schema counts 20.0 as an integer; accept it as 20 (but never ``true``)."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


Text = Annotated[str, Field(pattern=NO_NUL)]
#: stored without surrounding whitespace
Name = Annotated[
    str,
    Field(min_length=1, max_length=NAME_MAX, pattern=r"^[^\x00]*[^\x00\s][^\x00]*$"),
    AfterValidator(str.strip),
]
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
READ_ERRORS = (400, 401, 403, 404, 503)
WRITE_ERRORS = (400, 401, 403, 404, 413, 415, 503)


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
