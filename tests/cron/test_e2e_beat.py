"""End to end: real beat processes and a real worker fire a ``* * * * *`` trigger exactly once.

Two beats run (as after a botched failover) to show a second one is harmless. The trigger is
made due at once (its ``next_fire_at`` set to the current minute's slot, as the fault
scenarios do) instead of waiting for the next minute to start.
"""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from shared.cron.dispatch import cron_delivery_id
from shared.cron.scheduling import refresh_next_fire
from shared.infra.clock import system_clock
from shared.infra.db.engine import make_engine
from shared.infra.queues import DISPATCH_CRON
from shared.models import AutomationEvent, AutomationStatus, AutomationTrigger, EventStatus
from tests import factories
from tests.harness.processes import Proc, service_env, start_beat, start_worker
from tests.pipeline.helpers import wait_until

_DISPATCHED = re.compile(rf"Task {re.escape(DISPATCH_CRON)}\[[0-9a-f-]+\] succeeded")

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.postgres, pytest.mark.redis]


def test_real_beat_and_worker_fire_a_cron_trigger_once(
    pg_committed: str, redis_url: str, tmp_path: Path
) -> None:
    extra = {
        "AUTOMATIONS_CRON_DISPATCH_INTERVAL_SECONDS": "1",
        "AUTOMATIONS_SWEEPER_INTERVAL_SECONDS": "5",
        # the worker's "Task ... succeeded" lines of periodic ticks are DEBUG (quiet when idle)
        "AUTOMATIONS_LOG_LEVEL": "DEBUG",
    }
    engine = make_engine(pg_committed)
    procs: list[Proc] = []
    try:
        with Session(engine, expire_on_commit=False) as session:
            auto = factories.automation(
                session, system_clock, instructions="Summarise the day", status="active"
            )
            trigger = factories.cron_trigger(session, system_clock, auto, cron_schedule="* * * * *")
            refresh_next_fire(session, trigger, AutomationStatus.ACTIVE, system_clock.now())
            session.commit()
        assert trigger.next_fire_at is not None

        for i in range(2):
            env = service_env(
                database_url=pg_committed,
                broker_url=redis_url,
                data_dir=tmp_path / f"var{i}",
                extra=extra,
            )
            if i == 0:
                procs.append(start_worker(env, tmp_path, "--concurrency", "2"))
            procs.append(start_beat(env, tmp_path, name=f"beat{i}"))
        worker = procs[0]

        # Due now: the current minute's slot (if that minute ends before a dispatch claims
        # it, the claim coalesces it into the next minute's slot, which is just as good).
        armed = datetime.now(UTC).replace(second=0, microsecond=0)
        with engine.begin() as conn:
            conn.execute(
                update(AutomationTrigger)
                .where(AutomationTrigger.id == trigger.id)
                .values(next_fire_at=armed)
            )

        deadline = time.monotonic() + 30
        fired: list[AutomationEvent] = []
        while time.monotonic() < deadline:
            with Session(engine) as session:
                fired = list(
                    session.scalars(
                        select(AutomationEvent).where(AutomationEvent.trigger_id == trigger.id)
                    )
                )
            if fired and all(e.status != EventStatus.PENDING for e in fired):
                break
            for proc in procs:
                assert proc.alive(), proc.log()[-4000:]
            time.sleep(0.5)
        logs = "\n".join(p.log()[-3000:] for p in procs)
        assert fired, f"nothing fired for the slot at {armed}:\n{logs}"
        first = min(str(e.delivery_id) for e in fired)  # the next minute may have fired too
        slot = datetime.fromisoformat(first.removeprefix("cron:"))
        assert slot in (armed, armed + timedelta(minutes=1)), first
        # A few more dispatch ticks of both beats (run by the worker): still one event for
        # that slot.
        ticks = len(_DISPATCHED.findall(worker.log()))
        wait_until(
            lambda: len(_DISPATCHED.findall(worker.log())) >= ticks + 4,
            30,
            what="four more cron dispatch ticks",
        )
        with Session(engine) as session:
            same_slot = list(
                session.scalars(
                    select(AutomationEvent).where(
                        AutomationEvent.trigger_id == trigger.id,
                        AutomationEvent.delivery_id == cron_delivery_id(slot),
                    )
                )
            )
        assert len(same_slot) == 1
        [event] = same_slot
        assert event.status not in (EventStatus.PENDING, EventStatus.ERROR), (
            f"{event.status}: {event.error}\n{logs}"
        )
        assert event.payload["trigger"] == "cron"
        assert event.payload["scheduled_at"] == cron_delivery_id(slot).removeprefix("cron:")
    finally:
        for proc in reversed(procs):
            proc.stop()
        engine.dispose()
