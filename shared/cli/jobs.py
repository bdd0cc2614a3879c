"""``automations jobs run JOB``: run one of beat's periodic jobs once, now, in this process
(direct database access; run it where the service's AUTOMATIONS_* configuration is).

Every job is safe to run while beat runs it too: auto-archive, chat retention and the event
purge hold a one-run-at-a-time guard (a second run reports "skipped"), and the sweeper and
chat recovery claim their rows with ``FOR UPDATE SKIP LOCKED``. Follow-up tasks (events to
process, chats to run, e-mails) are published to the configured broker after each commit.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import click

from shared.chats.archive import auto_archive
from shared.chats.recovery import recover_and_publish
from shared.chats.retention import delete_expired_chats
from shared.cli.settings import runtime_or_exit
from shared.events.retention import purge_expired_events
from shared.events.sweeper import sweep_and_republish
from shared.infra.runtime import Runtime


def _auto_archive(rt: Runtime) -> tuple[dict[str, Any], str]:
    r = auto_archive(rt.engine, rt.unit_of_work, rt.clock, smtp_enabled=rt.settings.smtp_enabled)
    if not r.ran:
        return r.as_dict(), "auto-archive: skipped, another run is in progress"
    if r.days == 0:
        return r.as_dict(), "auto-archive: off (auto_archive_days is 0); nothing archived"
    cutoff = r.cutoff.isoformat() if r.cutoff else "?"
    return r.as_dict(), (
        f"auto-archive: archived {r.roots} root chat(s) and {r.descendants} descendant(s) "
        f"inactive since {cutoff} ({r.days} days) in {r.batches} batch(es); "
        f"{r.notified} digest(s) sent"
    )


def _chat_retention(rt: Runtime) -> tuple[dict[str, Any], str]:
    r = delete_expired_chats(rt.engine, rt.unit_of_work, rt.clock)
    if not r.ran:
        return r.as_dict(), "chat-retention: skipped, another run is in progress"
    if r.days == 0:
        return r.as_dict(), "chat-retention: off (chat_retention_days is 0); nothing deleted"
    cutoff = r.cutoff.isoformat() if r.cutoff else "?"
    return r.as_dict(), (
        f"chat-retention: deleted {r.chats} chat(s) archived before {cutoff} "
        f"({r.sub_chats} sub-chat(s)) and {r.messages} message(s) in {r.batches} batch(es)"
    )


def _purge_events(rt: Runtime) -> tuple[dict[str, Any], str]:
    s = rt.settings
    r = purge_expired_events(
        rt.engine, rt.clock, s.event_retention_days, batch_size=s.purge_batch_size
    )
    counts = {
        "ran": r.ran,
        "deleted": r.deleted,
        "deleted_by_status": r.deleted_by_status,
        "batches": r.batches,
        "cutoff": r.cutoff.isoformat() if r.cutoff else None,
    }
    if not r.ran:
        return counts, "purge-events: skipped, another purge is in progress"
    return counts, (
        f"purge-events: deleted {r.deleted} event(s) older than {s.event_retention_days} days "
        f"in {r.batches} batch(es)"
    )


def _sweep_events(rt: Runtime) -> tuple[dict[str, Any], str]:
    with rt.unit_of_work() as uow:
        r = sweep_and_republish(uow, rt.clock, rt.settings)
    counts = {"republished": len(r.republish), "parked": len(r.parked)}
    return counts, (
        f"sweep-events: re-published {len(r.republish)} pending event(s), parked {len(r.parked)}"
    )


def _recover_chats(rt: Runtime) -> tuple[dict[str, Any], str]:
    with rt.unit_of_work() as uow:
        r = recover_and_publish(uow, rt.clock, rt.settings)
    counts = {"stale": len(r.stale), "republished": len(r.republished)}
    return counts, (
        f"recover-chats: {len(r.stale)} stale running chat(s) back to pending, "
        f"{len(r.republished)} pending chat(s) re-published"
    )


#: the jobs (beat's schedule, worker/schedule.py, calls the sweeper "sweep-pending-events")
JOBS: dict[str, Callable[[Runtime], tuple[dict[str, Any], str]]] = {
    "auto-archive": _auto_archive,
    "chat-retention": _chat_retention,
    "purge-events": _purge_events,
    "sweep-events": _sweep_events,
    "recover-chats": _recover_chats,
}


@click.group()
def jobs() -> None:
    """Beat's periodic jobs (direct database access)."""


@jobs.command("run")
@click.argument("job", type=click.Choice(sorted(JOBS)))
@click.option("--json", "as_json", is_flag=True, help="Print the counts as JSON.")
def jobs_run(job: str, as_json: bool) -> None:
    """Run JOB once, now, and print what it did. Safe while beat runs it too."""
    rt = runtime_or_exit()
    try:
        counts, summary = JOBS[job](rt)
    finally:
        rt.dispose()
    if as_json:
        click.echo(json.dumps({"job": job, **counts}, indent=2, sort_keys=True))
    else:
        click.echo(summary)
