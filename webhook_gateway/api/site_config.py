"""``/site-config``: the site-wide chat lifecycle settings (SPEC 11 "Site config").

Anyone signed in reads them (clients show when chats will be archived or deleted); only
site-admins change them, with a token carrying the ``*`` scope. Each change is audited as
``site_config.update`` with the old and new values (:mod:`shared.site_config`).
"""

from __future__ import annotations

from dataclasses import asdict

from shared.accounts.authz import Principal
from shared.errors import Forbidden
from shared.site_config import SiteSettings, read_site_config, write_site_config
from webhook_gateway.api import schemas as s
from webhook_gateway.api.framework import Ctx, operation


def site_config_out(settings: SiteSettings) -> s.SiteConfig:
    return s.SiteConfig.model_validate(asdict(settings))


def require_site_admin(principal: Principal, what: str) -> None:
    """403 ``forbidden`` unless a site-admin; 403 ``insufficient_scope`` for a narrow token."""
    if not principal.is_site_admin:
        raise Forbidden(f"only site-admins may {what}", code="forbidden")
    if "*" not in principal.scopes:
        raise Forbidden(
            f"{what} needs a token with the '*' scope "
            f"(this one has: {', '.join(sorted(principal.scopes))})"
        )


@operation(
    "GET",
    "/site-config",
    summary="The site-wide chat lifecycle settings",
    tag="site",
    response=s.SiteConfig,
    errors=(401, 429, 503),
)
def get_site_config(ctx: Ctx) -> s.SiteConfig:
    """`auto_archive_days` (0: off) and `chat_retention_days` (0: keep archived chats
    forever). Any signed-in user may read them."""
    return site_config_out(read_site_config(ctx.session))


@operation(
    "PUT",
    "/site-config",
    summary="Change the site-wide chat lifecycle settings (site-admins)",
    tag="site",
    response=s.SiteConfig,
    body=s.SiteConfigUpdate,
    errors=(400, 401, 403, 413, 415, 429, 503),
)
def put_site_config(ctx: Ctx) -> s.SiteConfig:
    """Fields not given stay as they are; each is 0 to 3650 days (400 naming the field
    otherwise). Site-admins only (403 `forbidden`); audited as `site_config.update`."""
    require_site_admin(ctx.principal, "change the site config")
    body: s.SiteConfigUpdate = ctx.body
    given = {name: getattr(body, name) for name in ctx.body_fields}
    return site_config_out(
        write_site_config(ctx.session, ctx.clock.now(), ctx.principal.user_id, **given)
    )
