"""Model configs (SPEC 9): the request bodies, the answer (``api_key_set``, never the key) and
the test result."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any, Literal, cast

from pydantic import BeforeValidator, Field

from shared.model_configs.service import ModelConfigChanges, NewModelConfig
from webhook_gateway.api.schemas.base import (
    NO_NUL,
    Body,
    Name,
    PageQuery,
    Response,
    whole_number,
)

Provider = Annotated[
    Literal["openai", "anthropic"],
    Field(
        description="`openai`: any OpenAI-compatible chat-completions endpoint (OpenAI, vLLM, "
        "Ollama, llama.cpp, LiteLLM); `anthropic`: the Anthropic Messages API"
    ),
]
BaseUrl = Annotated[
    str,
    Field(
        min_length=1,
        max_length=2000,
        pattern=NO_NUL,
        description="http or https; checked against the outbound-address rules when saved "
        "and again when connecting (link-local and metadata addresses always refused, "
        "loopback and private ones unless AUTOMATIONS_OUTBOUND_ALLOW_PRIVATE)",
        examples=["https://api.openai.com/v1"],
    ),
]
ModelName = Annotated[str, Field(min_length=1, max_length=200, pattern=r"^[^\x00\s]+$")]
ApiKey = Annotated[
    str,
    Field(
        max_length=4000,
        pattern=r"^[^\x00\r\n]*$",
        description="write-only: encrypted at rest and never answered (see `api_key_set`); "
        "empty or null: no key (a local Ollama or vLLM)",
    ),
]
MaxOutputTokens = Annotated[int, Field(ge=1, le=1_000_000), BeforeValidator(whole_number)]
Temperature = Annotated[float, Field(ge=0, le=2, allow_inf_nan=False)]
ContextWindow = Annotated[int, Field(ge=1, le=100_000_000), BeforeValidator(whole_number)]


class ModelConfigCreate(Body):
    organization_id: uuid.UUID
    name: Name
    provider: Provider
    base_url: BaseUrl
    model: ModelName
    api_key: ApiKey | None = None
    max_output_tokens: MaxOutputTokens | None = None
    temperature: Temperature | None = None
    context_window: ContextWindow | None = None

    def domain(self) -> NewModelConfig:
        return NewModelConfig(**self.model_dump())


class ModelConfigUpdate(Body):
    """Only the fields given change. `api_key`: a new key, or null to remove it; a config
    holding a key needs it again when `base_url` or `provider` changes."""

    # A ``None`` default is never validated: it only marks the field as absent.
    name: Name = None  # type: ignore[assignment]
    provider: Provider = None  # type: ignore[assignment]
    base_url: BaseUrl = None  # type: ignore[assignment]
    model: ModelName = None  # type: ignore[assignment]
    api_key: ApiKey | None = None
    max_output_tokens: MaxOutputTokens | None = None
    temperature: Temperature | None = None
    context_window: ContextWindow | None = None

    def changes(self) -> ModelConfigChanges:
        """The fields given (and only those)."""
        return cast(ModelConfigChanges, self.model_dump(include=self.model_fields_set))


class ModelConfig(Response):
    id: uuid.UUID
    organization_id: uuid.UUID
    name: str
    provider: str
    base_url: str
    model: str
    api_key_set: bool = Field(description="whether an API key is stored (it is never answered)")
    max_output_tokens: int | None
    temperature: float | None
    context_window: int | None
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, row: Any) -> ModelConfig:
        return cls(
            id=row.id,
            organization_id=row.organization_id,
            name=row.name,
            provider=row.provider,
            base_url=row.base_url,
            model=row.model,
            api_key_set=row.api_key is not None,
            max_output_tokens=row.max_output_tokens,
            temperature=row.temperature,
            context_window=row.context_window,
            created_at=row.created_at,
            updated_at=row.updated_at,
        )


class ModelConfigPage(Response):
    items: list[ModelConfig]
    next_cursor: str | None


class ModelConfigListQuery(PageQuery):
    organization_id: uuid.UUID | None = Field(
        None, description="one organization (default: every organization you belong to)"
    )


class ChatErrorOut(Response):
    """A classified failure (SPEC 9 "Errors"), as stored in a chat's `last_error`."""

    message: str
    kind: str = Field(
        examples=["auth"],
        description="overloaded | usage_limit | auth | rate_limit | timeout | "
        "startup_timeout | config | generic",
    )
    provider: str | None
    retryable: bool
    status_code: int | None
    detail: str | None


class ModelConfigTestResult(Response):
    ok: bool
    latency_ms: int = Field(description="from sending the prompt to the end of the reply")
    error: ChatErrorOut | None


__all__ = [
    "ChatErrorOut",
    "ModelConfig",
    "ModelConfigCreate",
    "ModelConfigListQuery",
    "ModelConfigPage",
    "ModelConfigTestResult",
    "ModelConfigUpdate",
]
