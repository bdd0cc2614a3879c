"""Long-running processes: gateway, stream, worker, beat, and ``up`` which supervises all of
them (see ``supervisor``); each of the others replaces this process with its server."""

from __future__ import annotations

import os
import sys

import click

from shared.cli.settings import settings_or_exit
from shared.cli.supervisor import supervise
from shared.infra.config import Settings
from shared.infra.db import migrate
from shared.infra.queues import ALL_QUEUES


def gateway_argv(settings: Settings) -> list[str]:
    return [
        sys.executable,
        "-m",
        "gunicorn",
        "--config",
        "python:webhook_gateway.gunicorn_conf",
        "webhook_gateway.wsgi:app",
    ]


#: threads of one stream process: one per open live stream (they wait on sockets)
STREAM_THREADS = 500


def default_stream_bind(settings: Settings) -> str:
    """The gateway's host with the next port: 127.0.0.1:8081 next to 127.0.0.1:8080."""
    host, _, port = settings.bind.rpartition(":")
    return f"{host}:{int(port) + 1}"


def stream_argv(
    settings: Settings, bind: str | None = None, threads: int = STREAM_THREADS, workers: int = 1
) -> list[str]:
    """gunicorn serving live chat streams (webhook_gateway.stream): many threads, one each."""
    return [
        sys.executable,
        "-m",
        "gunicorn",
        "--config",
        "python:webhook_gateway.stream_gunicorn_conf",
        "--bind",
        bind or default_stream_bind(settings),
        "--workers",
        str(workers),
        "--threads",
        str(threads),
        "--worker-connections",
        str(threads * 2),
        "webhook_gateway.stream:app",
    ]


def worker_argv(settings: Settings, extra: tuple[str, ...] = ()) -> list[str]:
    # --quiet: no start-up banner on stdout (the logs on stderr are JSON lines)
    argv = [sys.executable, "-m", "celery", "-A", "worker.app", "--quiet", "worker"]
    argv += ["--loglevel", settings.log_level]
    if "-Q" not in extra and "--queues" not in extra:
        argv += ["-Q", ",".join(ALL_QUEUES)]
    has_concurrency = any(a.startswith(("-c", "--concurrency")) for a in extra)
    if not has_concurrency:
        argv += ["--concurrency", str(settings.effective_worker_concurrency)]
    return argv + list(extra)


def beat_argv(settings: Settings, extra: tuple[str, ...] = ()) -> list[str]:
    schedule_file = settings.data_dir.resolve() / "celerybeat-schedule"
    schedule_file.parent.mkdir(parents=True, exist_ok=True)
    return [
        sys.executable,
        "-m",
        "celery",
        "-A",
        "worker.app",
        "--quiet",
        "beat",
        "--loglevel",
        settings.log_level,
        "--schedule",
        str(schedule_file),
        "--pidfile=",
        *extra,
    ]


def _exec(argv: list[str]) -> None:
    sys.stdout.flush()
    sys.stderr.flush()
    os.execv(argv[0], argv)


@click.command()
def gateway() -> None:
    """Run the HTTP gateway (gunicorn) in the foreground.

    Listens on AUTOMATIONS_BIND with AUTOMATIONS_GATEWAY_WORKERS processes of
    AUTOMATIONS_GATEWAY_THREADS threads each. SIGTERM finishes in-flight requests.
    """
    _exec(gateway_argv(settings_or_exit()))


@click.command()
@click.option(
    "--bind", default=None, help="HOST:PORT to listen on [default: the gateway's port + 1]."
)
@click.option(
    "--threads",
    type=click.IntRange(1, 10_000),
    default=STREAM_THREADS,
    show_default=True,
    help="Threads per process: open streams it holds at once.",
)
@click.option("--workers", type=click.IntRange(1, 64), default=1, show_default=True)
def stream(bind: str | None, threads: int, workers: int) -> None:
    """Serve live chat streams (GET /api/v1/chats/<id>/stream) in the foreground.

    A process of its own so that open streams never take the gateway's threads: route
    /api/v1/chats/*/stream to it at the reverse proxy (docs/operations.md, "Live streams").
    """
    _exec(stream_argv(settings_or_exit(), bind, threads, workers))


@click.command(context_settings={"ignore_unknown_options": True, "allow_extra_args": True})
@click.argument("celery_args", nargs=-1, type=click.UNPROCESSED)
def worker(celery_args: tuple[str, ...]) -> None:
    """Run a Celery worker in the foreground.

    Without -Q it consumes every queue (events, chats, maintenance, notifications): one
    worker runs the event pipeline and the chat runner. -Q narrows it, e.g. a separate
    chat-runner deployment with `automations worker -Q chats` and event workers with
    `-Q events,maintenance,notifications`. Extra arguments go to `celery worker`.
    """
    _exec(worker_argv(settings_or_exit(), celery_args))


@click.command(context_settings={"ignore_unknown_options": True, "allow_extra_args": True})
@click.argument("celery_args", nargs=-1, type=click.UNPROCESSED)
def beat(celery_args: tuple[str, ...]) -> None:
    """Run celery beat (cron dispatch, sweeper, retention purge, chat recovery) in the
    foreground.

    One beat is recommended; a second one is harmless (every job is idempotent).
    """
    _exec(beat_argv(settings_or_exit(), celery_args))


@click.command()
@click.option("--no-migrate", is_flag=True, help="Skip applying database migrations first.")
def up(no_migrate: bool) -> None:
    """Migrate, then run gateway + stream + worker + beat together in the foreground.

    With no configuration this is the embedded mode: SQLite and a file-backed broker in
    AUTOMATIONS_DATA_DIR (default ./var). Ctrl-C stops everything cleanly.
    """
    settings = settings_or_exit()
    if not no_migrate:
        click.echo("applying migrations…", err=True)
        migrate.upgrade(settings.effective_database_url)
    commands = {
        "gateway": gateway_argv(settings),
        "stream": stream_argv(settings),
        "worker": worker_argv(settings),
        "beat": beat_argv(settings),
    }
    sys.exit(supervise(commands, settings, stream_bind=default_stream_bind(settings)))
