"""Secrets at rest: sealing new secrets with the active key, and the key-management operations
of ``automations keys`` (see :mod:`.operations`)."""

from shared.keys.operations import (
    DEFAULT_BATCH_SIZE,
    KeyCheckError,
    KeyOpSummary,
    Progress,
    check_keys,
    decrypt_all,
    delete_secrets,
    digests_in_use,
    record_key,
    rotate,
    seal,
)

__all__ = [
    "DEFAULT_BATCH_SIZE",
    "KeyCheckError",
    "KeyOpSummary",
    "Progress",
    "check_keys",
    "decrypt_all",
    "delete_secrets",
    "digests_in_use",
    "record_key",
    "rotate",
    "seal",
]
