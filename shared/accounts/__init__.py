"""Accounts: users, organizations and memberships (:mod:`.users`), API tokens (:mod:`.tokens`)
and who may see and change what (:mod:`.authz`)."""

from shared.accounts.tokens import (
    SCOPES,
    TOKEN_PREFIX,
    create_token,
    hash_token,
    list_tokens,
    revoke_token,
)
from shared.accounts.users import (
    ROLE_CHOICES,
    AccountError,
    create_user,
    emails_by_id,
    find_user,
    get_or_create_org,
    list_users,
    set_user_active,
)

__all__ = [
    "ROLE_CHOICES",
    "SCOPES",
    "TOKEN_PREFIX",
    "AccountError",
    "create_token",
    "create_user",
    "emails_by_id",
    "find_user",
    "get_or_create_org",
    "hash_token",
    "list_tokens",
    "list_users",
    "revoke_token",
    "set_user_active",
]
