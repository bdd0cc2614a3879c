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
#: beat: archive inactive root chats and their descendants (SPEC 11)
AUTO_ARCHIVE = "automations.auto_archive"
#: beat: delete archived chats past chat_retention_days (SPEC 11)
CHAT_RETENTION = "automations.chat_retention"
#: e-mail one notification (SPEC 11), sent once; worker/tasks/notifications.py
SEND_NOTIFICATION_EMAIL = "automations.send_notification_email"
#: beat: publish again the e-mails of notifications left ``pending`` (a lost publish)
REQUEUE_NOTIFICATION_EMAILS = "automations.requeue_notification_emails"

QUEUE_EVENTS = "events"
QUEUE_MAINTENANCE = "maintenance"
QUEUE_CHATS = "chats"
QUEUE_NOTIFICATIONS = "notifications"
#: what ``automations worker`` (and ``automations up``) consumes without ``-Q``
ALL_QUEUES = (QUEUE_EVENTS, QUEUE_CHATS, QUEUE_MAINTENANCE, QUEUE_NOTIFICATIONS)
