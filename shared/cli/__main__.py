"""``python -m shared.cli``: the ``automations`` command."""

from shared.cli import main

main()
