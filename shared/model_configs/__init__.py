"""Model configs (SPEC 9): the model endpoints an organization's chats run against."""

from __future__ import annotations

from shared.model_configs.service import (
    ModelConfigChanges,
    NewModelConfig,
    PingOutcome,
    create_model_config,
    delete_model_config,
    get_model_config,
    list_model_configs,
    ping_model_config,
    provider_config,
    update_model_config,
)

__all__ = [
    "ModelConfigChanges",
    "NewModelConfig",
    "PingOutcome",
    "create_model_config",
    "delete_model_config",
    "get_model_config",
    "list_model_configs",
    "ping_model_config",
    "provider_config",
    "update_model_config",
]
