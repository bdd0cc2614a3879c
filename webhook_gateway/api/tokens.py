"""``/tokens``: the caller's own API tokens: list and revoke (SPEC 8a).

Tokens are created by the operator (``automations tokens create``); the API never shows a
token or its hash, only its metadata and first characters."""

from __future__ import annotations

import uuid

from shared.accounts import tokens
from webhook_gateway.api import schemas as s
from webhook_gateway.api.framework import Ctx, operation


@operation(
    "GET",
    "/tokens",
    summary="List the caller's tokens",
    tag="tokens",
    response=s.TokenPage,
    query=s.TokenListQuery,
    errors=s.READ_ERRORS,
)
def list_tokens(ctx: Ctx) -> s.TokenPage:
    """The caller's own tokens, newest first: revoked ones only with `include_revoked=true`;
    expired ones are listed (see `expires_at`). Any token may list its user's tokens."""
    q: s.TokenListQuery = ctx.query
    page = tokens.list_tokens(
        ctx.session,
        user_id=ctx.principal.user_id,
        include_revoked=q.include_revoked,
        limit=q.limit,
        cursor=q.cursor,
    )
    return s.TokenPage(
        items=[s.Token.model_validate(k, from_attributes=True) for k in page.items],
        next_cursor=page.next_cursor,
    )


@operation(
    "DELETE",
    "/tokens/{token_id}",
    summary="Revoke one of the caller's tokens",
    tag="tokens",
    response=None,
    status=204,
    errors=s.READ_ERRORS,
)
def revoke_token(ctx: Ctx, token_id: uuid.UUID) -> None:
    """Every process refuses the token from its next request on (401). A token may revoke
    itself; revoking the caller's other tokens needs the `*` scope (403). Another user's or
    an unknown token is 404. Revoking a revoked token changes nothing (204)."""
    tokens.revoke_token(ctx.session, ctx.clock, ctx.principal, token_id)
