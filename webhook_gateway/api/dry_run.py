"""``/automations/{automation_id}/test``: the dry run of an event, storing nothing."""

from __future__ import annotations

import uuid

from shared.automations import dry_run
from webhook_gateway.api import schemas as s
from webhook_gateway.api.framework import ApiError, Ctx, operation


@operation(
    "POST",
    "/automations/{automation_id}/test",
    summary="Dry-run the filter, labels and chat match on a payload",
    tag="automations",
    response=s.TestResult,
    body=s.TestRequest,
    errors=s.WRITE_ERRORS,
)
def test_automation(ctx: Ctx, automation_id: uuid.UUID) -> s.TestResult:
    """Stores nothing. Uses the supplied `filter` / `label_paths`, else the automation's.

    The filter and labels are evaluated on a small dedicated pool under the same CPU budget
    as an event (`AUTOMATIONS_FILTER_BUDGET_MS`, 50 ms by default); a filter that cannot be
    evaluated answers 400 `filter_evaluation_failed`, and when too many dry runs are in
    progress the answer is 503 with `Retry-After`."""
    body: s.TestRequest = ctx.body
    try:
        result = dry_run.test_automation(
            ctx.session,
            ctx.principal,
            automation_id,
            body.payload,
            trigger_id=body.trigger_id,
            filter=body.filter,  # absent and null alike: the trigger's
            label_paths=body.label_paths,
            event_type=body.event_type,
            budget_ms=ctx.settings.filter_budget_ms,
        )
    except dry_run.DryRunBusy as exc:
        raise ApiError(
            exc.status, exc.code, exc.message, None, **{"Retry-After": str(exc.retry_after)}
        ) from None
    return s.TestResult.model_validate(result)
