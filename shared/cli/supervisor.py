"""Running child processes together in the foreground (``automations up``): start them, stop
them all in order when one exits or on SIGINT/SIGTERM, and kill those that do not stop."""

from __future__ import annotations

import signal
import subprocess
import time
from types import FrameType

import click

from shared.infra.config import Settings

STOP_TIMEOUT_SECONDS = 30


def supervise(
    commands: dict[str, list[str]], settings: Settings, stream_bind: str | None = None
) -> int:
    """Run every ``name: argv`` until a signal or the first exit; the exit code for ``up``."""
    stopping = False

    def _on_signal(signum: int, _frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, _on_signal)
    signal.signal(signal.SIGTERM, _on_signal)
    # Children get their own sessions so Ctrl-C reaches only us; we stop them in order.
    procs = {
        name: subprocess.Popen(argv, start_new_session=True) for name, argv in commands.items()
    }
    click.echo(
        f"running {', '.join(f'{n} (pid {p.pid})' for n, p in procs.items())}; "
        f"gateway on http://{settings.bind}"
        + (f", live streams on http://{stream_bind}" if stream_bind else "")
        + "; Ctrl-C to stop",
        err=True,
    )
    exit_code = 0
    while not stopping:
        for name, proc in procs.items():
            if proc.poll() is not None:
                click.echo(
                    f"{name} exited with code {proc.returncode}; stopping the rest", err=True
                )
                exit_code = 1
                stopping = True
                break
        time.sleep(0.3)
    click.echo("stopping…", err=True)
    for proc in procs.values():
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + STOP_TIMEOUT_SECONDS
    for name, proc in procs.items():
        try:
            proc.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            click.echo(f"{name} did not stop in {STOP_TIMEOUT_SECONDS}s; killing it", err=True)
            proc.kill()
            proc.wait()
    click.echo("stopped", err=True)
    return exit_code
