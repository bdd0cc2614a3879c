"""Start real gateway / worker / beat processes for end-to-end tests and benchmarks."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path

import requests

from tests.harness.services import free_port

REPO = Path(__file__).resolve().parents[2]


def service_env(
    *,
    database_url: str,
    broker_url: str,
    data_dir: Path,
    bind: str | None = None,
    extra: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """Environment for a child process: the parent's minus any AUTOMATIONS_* plus these."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AUTOMATIONS_")}
    env.update(
        AUTOMATIONS_DATABASE_URL=database_url,
        AUTOMATIONS_BROKER_URL=broker_url,
        AUTOMATIONS_DATA_DIR=str(data_dir),
        AUTOMATIONS_BIND=bind or f"127.0.0.1:{free_port()}",
        AUTOMATIONS_LOG_LEVEL="INFO",
        PYTHONUNBUFFERED="1",
    )
    env.update(extra or {})
    return env


class Proc:
    def __init__(self, name: str, argv: list[str], env: Mapping[str, str], log_dir: Path) -> None:
        self.name = name
        self.log_path = log_dir / f"{name}-{time.monotonic_ns()}.log"
        self._log = open(self.log_path, "wb")  # noqa: SIM115
        self.popen = subprocess.Popen(
            argv,
            env=dict(env),
            cwd=REPO,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    @property
    def pid(self) -> int:
        return self.popen.pid

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def alive(self) -> bool:
        return self.popen.poll() is None

    def signal(self, sig: int) -> None:
        if self.alive():
            self.popen.send_signal(sig)

    def kill_group(self) -> None:
        """SIGKILL the process and everything in its session (e.g. prefork children)."""
        try:
            os.killpg(self.popen.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.popen.wait()

    def stop(self, timeout: float = 20) -> int | None:
        self.signal(signal.SIGTERM)
        try:
            self.popen.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill_group()
        self._log.close()
        return self.popen.returncode

    def wait_for_log(self, needle: str, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if needle in self.log():
                return
            if not self.alive():
                raise RuntimeError(f"{self.name} exited early:\n{self.log()[-4000:]}")
            time.sleep(0.1)
        raise TimeoutError(
            f"{self.name} did not log {needle!r} in {timeout}s:\n{self.log()[-4000:]}"
        )


def cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "shared.cli", *args]


def start_gateway(env: Mapping[str, str], log_dir: Path, timeout: float = 30) -> tuple[Proc, str]:
    proc = Proc("gateway", cli("gateway"), env, log_dir)
    base = f"http://{env['AUTOMATIONS_BIND']}"
    wait_http(f"{base}/healthz", proc, timeout)
    return proc, base


def start_worker(
    env: Mapping[str, str], log_dir: Path, *extra: str, name: str = "worker", timeout: float = 60
) -> Proc:
    proc = Proc(name, cli("worker", *extra), env, log_dir)
    proc.wait_for_log(" ready.", timeout)
    return proc


def start_beat(env: Mapping[str, str], log_dir: Path, name: str = "beat") -> Proc:
    proc = Proc(name, cli("beat"), env, log_dir)
    proc.wait_for_log("beat: Starting", 30)
    return proc


def wait_http(url: str, proc: Proc | None = None, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if requests.get(url, timeout=1).status_code < 500:
                return
        except requests.RequestException:
            pass
        if proc is not None and not proc.alive():
            raise RuntimeError(f"{proc.name} exited early:\n{proc.log()[-4000:]}")
        time.sleep(0.1)
    raise TimeoutError(f"{url} did not answer in {timeout}s")
