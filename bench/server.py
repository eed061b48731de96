"""gunicorn serving the app for the HTTP scenarios, the way production runs it: production
settings (DEBUG off, ManifestStaticFiles, real PostgreSQL, Redis broker), sync workers
(2 × cores + 1, gunicorn's own rule), persistent database connections, on a free loopback port.

    with serve(ctx, name="rush") as server:
        server.url("/api/v1/me/")
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

from bench.core import Context

READY_SECONDS = 60


def default_workers() -> int:
    return int(os.environ.get("BENCH_GUNICORN_WORKERS") or 2 * (os.cpu_count() or 1) + 1)


def free_port() -> int:
    """A port nobody listens on now. gunicorn binds it a moment later; on loopback of a
    benchmark machine nothing else races for it."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class Server:
    port: int
    process: subprocess.Popen
    log: Path
    workers: int

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def url(self, path: str) -> str:
        return self.base_url + path

    def cpu_seconds(self) -> float:
        """CPU time (user + system) the workers have used so far: on a shared machine, CPU
        per request is steadier than requests per second."""
        ticks = os.sysconf("SC_CLK_TCK")
        total = 0
        try:
            children = Path(f"/proc/{self.process.pid}/task/{self.process.pid}/children")
            for pid in children.read_text().split():
                fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
                total += int(fields[11]) + int(fields[12])  # utime, stime
        except (OSError, IndexError, ValueError):
            return 0.0
        return total / ticks

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


def server_env(ctx: Context, port: int, extra: dict | None = None) -> dict:
    env = ctx.subprocess_env()
    env.update(
        {
            # bench.settings = production settings + the baseline endpoint's URL.
            "DJANGO_SETTINGS_MODULE": "bench.settings",
            "SITE_URL": f"http://127.0.0.1:{port}",
            # One connection per worker, kept across requests, as production runs.
            "DB_CONN_MAX_AGE": "600",
        }
    )
    env.update(extra or {})
    return env


def start(
    ctx: Context,
    *,
    name: str = "app",
    workers: int | None = None,
    env: dict | None = None,
    profile_dir: Path | None = None,
):
    """Start gunicorn and wait until it answers. With profile_dir, every worker is profiled
    with pyinstrument and writes its report there when it stops (bench/gunicorn_profile.py)."""
    workers = workers or default_workers()
    port = free_port()
    ctx.workdir.mkdir(parents=True, exist_ok=True)
    log = ctx.workdir / f"gunicorn-{name}.log"
    python = ctx.python or sys.executable
    command = [
        python,
        "-m",
        "gunicorn",
        "config.wsgi:application",
        "--bind",
        f"127.0.0.1:{port}",
        "--workers",
        str(workers),
        "--worker-class",
        "sync",
        # 32 clients queue in the listen backlog of sync workers; keep the default 2048.
        "--timeout",
        "60",
        "--graceful-timeout",
        "10",
        "--log-level",
        "warning",
        "--error-logfile",
        "-",
    ]
    env = dict(env or {})
    if profile_dir is not None:
        command += ["--config", str(Path(__file__).with_name("gunicorn_profile.py"))]
        env["BENCH_PROFILE_DIR"] = str(profile_dir)
    with log.open("w") as out:
        process = subprocess.Popen(
            command,
            cwd=Path(__file__).resolve().parent.parent,
            env=server_env(ctx, port, env),
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: stopped as one, never by name
        )
    server = Server(port=port, process=process, log=log, workers=workers)
    try:
        _wait_ready(server)
    except BaseException:
        stop(server)
        raise
    return server


def _ready(response: httpx.Response) -> bool:
    """Ready when the app answers and its database, cache and broker do. A Celery worker is not
    required: the scenarios that need one start their own, and /healthz/ reports it missing."""
    if response.status_code == 200:
        return True
    try:
        checks = response.json()["checks"]
    except (ValueError, KeyError, TypeError):
        return False
    return all(checks.get(name) in ("ok", "eager") for name in ("database", "cache", "broker"))


def _wait_ready(server: Server) -> None:
    deadline = time.monotonic() + READY_SECONDS
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise RuntimeError(
                f"gunicorn exited ({server.process.returncode}):\n{server.log_tail()}"
            )
        try:
            if _ready(httpx.get(server.url("/healthz/"), timeout=5)):
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise RuntimeError(
        f"gunicorn did not answer /healthz/ in {READY_SECONDS} s:\n{server.log_tail()}"
    )


def stop(server: Server) -> None:
    """TERM the master (it stops its workers gracefully), KILL its process group if it hangs."""
    if server.process.poll() is None:
        server.process.send_signal(signal.SIGTERM)
        try:
            server.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(server.process.pid, signal.SIGKILL)
            server.process.wait(timeout=5)


@contextmanager
def serve(ctx: Context, **kwargs) -> Iterator[Server]:
    server = start(ctx, **kwargs)
    try:
        yield server
    finally:
        stop(server)
