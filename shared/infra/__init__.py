"""Infrastructure every process uses and no domain rule lives in: settings, clock, logging,
encryption, the database (engine, models' base, unit of work), the broker (Celery app and
publishing) and the names of tasks and queues."""
