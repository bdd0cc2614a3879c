"""Accounts: users, organizations and memberships (:mod:`.users`), API tokens (:mod:`.tokens`)
and who may see and change what (:mod:`.authz`)."""

from shared.accounts.tokens import SCOPES, TOKEN_PREFIX, create_token, hash_token
from shared.accounts.users import ROLE_CHOICES, AccountError, create_user, get_or_create_org

__all__ = [
    "ROLE_CHOICES",
    "SCOPES",
    "TOKEN_PREFIX",
    "AccountError",
    "create_token",
    "create_user",
    "get_or_create_org",
    "hash_token",
]
