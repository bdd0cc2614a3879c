"""``POST /automations/<id>/test``: the pipeline's filter, labels and chat match on a payload,
storing nothing (SPEC 5)."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy.orm import Session

from shared.accounts.authz import Principal
from shared.automations.service import get_automation
from shared.errors import NotFound
from shared.triggers.service import validate_filter, validate_label_paths

__all__ = ["test_automation"]


def test_automation(
    session: Session,
    principal: Principal,
    automation_id: uuid.UUID,
    payload: Any,
    filter: dict[str, Any] | None = None,
    label_paths: dict[str, Any] | None = None,
    trigger_id: uuid.UUID | None = None,
) -> dict[str, Any]:
    """Needs only read access: nothing is written. A supplied filter/label_paths is
    validated like a saved one; when absent, those of ``trigger_id`` or of the automation's
    oldest webhook trigger are used (see :func:`shared.automations.dry_run_engine`)."""
    automation = get_automation(session, principal, automation_id)
    if filter is not None:
        filter = validate_filter(filter)
    if label_paths is not None:
        label_paths = validate_label_paths(label_paths)
    from shared.automations.dry_run_engine import dry_run

    nested = session.begin_nested()
    try:
        result = dry_run(
            session,
            automation,
            payload,
            filter=filter,
            label_paths=label_paths,
            trigger_id=trigger_id,
        )
    except LookupError:
        raise NotFound(f"trigger {trigger_id} not found", field="trigger_id") from None
    finally:
        nested.rollback()  # belt and braces: a dry run stores nothing
    return dict(result)
