"""The chat runner's building blocks (SPEC 9), pure and free of the database and Celery.

* :mod:`~shared.runner.errors`: :class:`ChatError` (the chat's ``last_error``) and
  :func:`classify`, SPEC 9's error table; the runner's own failure signals.
* :mod:`~shared.runner.retry`: ``Retry-After`` parsing, backoff and :func:`decide`.
* :mod:`~shared.runner.providers`: :func:`stream_turn` and :func:`ping` over the official
  ``openai`` / ``anthropic`` SDKs (``providers_openai``, ``providers_anthropic``).
* :mod:`~shared.runner.clients`: :class:`ProviderConfig`, SDK clients (one shared TLS
  context, no redirects, ``max_retries=0``) and :class:`ClientPool` to reuse them.
* :mod:`~shared.runner.outbound`: which URLs and addresses the service may connect to.
"""
