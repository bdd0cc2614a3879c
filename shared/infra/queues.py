"""Task and queue names, shared by the producers (gateway, beat) and the worker."""

PROCESS_EVENT = "automations.process_event"
SWEEP_PENDING_EVENTS = "automations.sweep_pending_events"
DISPATCH_CRON = "automations.dispatch_cron"
PURGE_EVENTS = "automations.purge_events"
PING = "automations.ping"
#: one chat turn (SPEC 9): claim a pending chat and hand its turn to the process's runner
RUN_CHAT = "automations.run_chat"
#: beat: stale heartbeats back to pending, lost publishes published again
RECOVER_CHATS = "automations.recover_chats"

QUEUE_EVENTS = "events"
QUEUE_MAINTENANCE = "maintenance"
QUEUE_CHATS = "chats"
QUEUE_NOTIFICATIONS = "notifications"
#: what ``automations worker`` (and ``automations up``) consumes without ``-Q``
ALL_QUEUES = (QUEUE_EVENTS, QUEUE_CHATS, QUEUE_MAINTENANCE, QUEUE_NOTIFICATIONS)
