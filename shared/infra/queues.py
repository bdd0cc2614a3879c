"""Task and queue names, shared by the producers (gateway, beat) and the worker."""

PROCESS_EVENT = "automations.process_event"
SWEEP_PENDING_EVENTS = "automations.sweep_pending_events"
DISPATCH_CRON = "automations.dispatch_cron"
PURGE_EVENTS = "automations.purge_events"
PING = "automations.ping"

QUEUE_EVENTS = "events"
QUEUE_MAINTENANCE = "maintenance"
QUEUE_CHATS = "chats"
ALL_QUEUES = (QUEUE_EVENTS, QUEUE_MAINTENANCE)
