"""Automations: create, list, get, update and delete (:mod:`.service`), and the dry run of the
filter, labels and chat match on a payload (:mod:`.dry_run`)."""
