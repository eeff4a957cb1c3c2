"""Start and stop the whole system as child processes: embedded Redis, the fake
WeChat API, one Celery worker with the model, and the Flask app under gunicorn.

``triage run`` (and so ``make run``), the end-to-end tests and the benchmarks
all use this one launcher.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import redis
import requests

from triage.config import Settings
from triage.redis_server import EmbeddedRedis, free_port


@dataclass
class Stack:
    settings: Settings
    persistent: bool = True
    web_port: int | None = None
    fake_port: int | None = None
    worker_concurrency: int = 1
    log_dir: Path | None = None
    extra_env: dict[str, str] = field(default_factory=dict)
    redis_server: EmbeddedRedis | None = None
    processes: dict[str, subprocess.Popen] = field(default_factory=dict)
    redis_url: str = ""

    @property
    def web_url(self) -> str:
        return f"http://127.0.0.1:{self.web_port}"

    @property
    def metrics_dir(self) -> Path:
        return self.settings.instance_dir / "prometheus"

    @property
    def fake_url(self) -> str:
        return f"http://127.0.0.1:{self.fake_port}/"

    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        env.update(
            TRIAGE_REDIS_URL=self.redis_url,
            TRIAGE_WECHAT_API_BASE=self.fake_url,
            TRIAGE_FAKE_WECHAT_PORT=str(self.fake_port),
            TRIAGE_INSTANCE_DIR=str(self.settings.instance_dir),
            TRIAGE_DATABASE_URL=self.settings.database,
            PROMETHEUS_MULTIPROC_DIR=str(self.metrics_dir),
            HF_HUB_OFFLINE="1",
            PYTHONUNBUFFERED="1",
        )
        env.update(self.extra_env)
        return env

    def _spawn(self, name: str, args: list[str]) -> None:
        out = None
        if self.log_dir:
            self.log_dir.mkdir(parents=True, exist_ok=True)
            out = open(self.log_dir / f"{name}.log", "ab")  # noqa: SIM115 - closed with the process
        self.processes[name] = subprocess.Popen(
            args, env=self.env(), stdout=out, stderr=subprocess.STDOUT if out else None, start_new_session=True
        )

    def start_redis(self) -> None:
        if self.settings.redis_url:
            self.redis_url = self.settings.redis_url
            return
        self.redis_server = EmbeddedRedis(self.settings.instance_dir / "redis", persistent=self.persistent).start()
        self.redis_url = self.redis_server.url

    def start(self, web: bool = True, worker: bool = True, fake: bool = True, wait: float = 180) -> Stack:
        self.settings.instance_dir.mkdir(parents=True, exist_ok=True)
        self.web_port = self.web_port or self.settings.web_port
        self.fake_port = self.fake_port or self.settings.fake_wechat_port
        self.start_redis()
        shutil.rmtree(self.metrics_dir, ignore_errors=True)  # counters start from zero each run
        self.metrics_dir.mkdir(parents=True)
        # Migrate and seed the database once, before the web and worker processes open it.
        from triage.runtime import KB_ACTIVE_KEY
        from triage.services import prepare_database

        active = prepare_database(self.settings).active_number()
        stale = redis.Redis.from_url(self.redis_url)
        if active is not None:
            stale.set(KB_ACTIVE_KEY, active)
        for key in stale.scan_iter("triage:worker:*"):  # readiness marks of an earlier run
            stale.delete(key)
        bin_dir = Path(sys.executable).parent
        if fake:
            self._spawn("fake-wechat", [sys.executable, "-m", "triage.wechat.fake_api"])
        if worker:
            self.start_worker()
        if web:
            self._spawn("web", [str(bin_dir / "gunicorn"), "--workers", "2", "--bind", f"127.0.0.1:{self.web_port}",
                                "--access-logfile", "-", "--graceful-timeout", "10", "triage:create_app()"])  # fmt: skip
        self.wait_ready(web=web, worker=worker, fake=fake, timeout=wait)
        return self

    def start_worker(self, name: str = "worker") -> None:
        bin_dir = Path(sys.executable).parent
        self._spawn(name, [str(bin_dir / "celery"), "-A", "triage.worker", "worker", "--loglevel", "INFO",
                           "--concurrency", str(self.worker_concurrency), "--queues", "triage", "--events",
                           "--hostname", f"{name}@%h", "--without-gossip", "--without-mingle"])  # fmt: skip

    def ready_workers(self) -> int:
        client = redis.Redis.from_url(self.redis_url)
        return sum(1 for _ in client.scan_iter("triage:worker:*"))

    def wait_ready(self, web: bool, worker: bool, fake: bool, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        pending = {"web": web, "worker": worker, "fake-wechat": fake}
        while any(pending.values()):
            for name, proc in self.processes.items():
                if proc.poll() is not None:
                    raise RuntimeError(f"{name} exited with code {proc.returncode}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"not ready: {[k for k, v in pending.items() if v]}")
            if pending["fake-wechat"]:
                pending["fake-wechat"] = not _http_ok(self.fake_url + "_fake/calls")
            if pending["web"]:
                pending["web"] = not _http_ok(self.web_url + "/healthz")
            if pending["worker"]:
                pending["worker"] = self.ready_workers() == 0
            time.sleep(0.2)

    def stop(self) -> None:
        for name in reversed(list(self.processes)):
            proc = self.processes[name]
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        for proc in self.processes.values():
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        self.processes.clear()
        if self.redis_server:
            client = redis.Redis.from_url(self.redis_url)
            for key in client.scan_iter("triage:worker:*"):
                client.delete(key)
            self.redis_server.stop()


def _http_ok(url: str) -> bool:
    try:
        return requests.get(url, timeout=0.5).status_code == 200
    except requests.RequestException:
        return False


def pick_ports(stack: Stack) -> Stack:
    """Free ports for a test or benchmark stack that must not collide with `make run`."""
    stack.web_port, stack.fake_port = free_port(), free_port()
    return stack
