"""Triggers: webhook and cron triggers of an automation (:mod:`.service`), their signatures and
secrets (:mod:`.signatures`, :mod:`.secrets`), the ingress's cached lookup (:mod:`.lookup`),
and the filters and labels evaluated over a payload (:mod:`.filters`)."""
