"""Events: recording webhook deliveries (:mod:`.ingest`, :mod:`.payload`), the pipeline that
turns one pending event into one outcome (:mod:`.pipeline`), the sweeper, retention, and the
event log as the API lists it (:mod:`.queries`)."""
