"""Per-process singletons: the Redis client everywhere, and in worker processes the
engine (knowledge base, indexes, model) and the WeChat sender.

The model is created by :func:`init_worker_process`, called from Celery's
``worker_process_init`` signal: a llama.cpp model loaded before the fork hangs
the children.
"""

from __future__ import annotations

import logging
import threading

import redis

from triage.config import Settings
from triage.llm import LanguageModel
from triage.pipeline import TriageEngine, TriagePipeline
from triage.sessions import SessionStore
from triage.store.consultations import ConsultationStore
from triage.vision import ImageDescriber
from triage.wechat.client import WeChatSender

log = logging.getLogger(__name__)


class Runtime:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.settings: Settings | None = None
        self.redis_url: str | None = None
        self.model: LanguageModel | None = None
        self.engine: TriageEngine | None = None
        self._redis: redis.Redis | None = None
        self._sender: WeChatSender | None = None
        self._consultations: ConsultationStore | None = None
        self.vision: ImageDescriber | None = None

    def configure(self, settings: Settings, redis_url: str) -> None:
        self.settings, self.redis_url = settings, redis_url
        self._consultations = None  # the database may differ between configurations

    @property
    def redis(self) -> redis.Redis:
        if self._redis is None:
            assert self.redis_url, "runtime not configured"
            # Short timeouts: a dead Redis must make a request fail fast, never hang it.
            self._redis = redis.Redis.from_url(
                self.redis_url, socket_timeout=2, socket_connect_timeout=1, health_check_interval=10
            )
        return self._redis

    @property
    def sender(self) -> WeChatSender:
        if self._sender is None:
            s = self.settings
            assert s is not None
            self._sender = WeChatSender(self.redis, s.wechat_appid, s.wechat_secret, s.wechat_api_base,
                                        s.wechat_timeout_s)  # fmt: skip
        return self._sender

    def init_worker_process(self) -> None:
        from triage.services import build_engine, build_model, build_vision

        assert self.settings is not None
        with self._lock:
            if self.engine is None:
                self.model = build_model(self.settings)
                self.engine = build_engine(self.settings, model=self.model)
                self.vision = build_vision(self.settings)
                self.announce_ready()
                log.info("worker ready", extra={"kb_version": self.engine.kb.version})

    def announce_ready(self) -> None:
        """A key per worker process, so `triage run`, the tests and /readyz can see it."""
        import json
        import os

        assert self.engine is not None
        info = {"pid": os.getpid(), "kb_version": self.engine.kb.version,
                "model": self.model.name if self.model and self.model.loaded else None}  # fmt: skip
        self.redis.set(f"triage:worker:{os.getpid()}", json.dumps(info), ex=24 * 3600)

    @property
    def consultations(self) -> ConsultationStore:
        if self._consultations is None:
            from triage.services import build_consultations

            assert self.settings is not None
            self._consultations = build_consultations(self.settings)
        return self._consultations

    def pipeline(self) -> TriagePipeline:
        if self.engine is None:
            self.init_worker_process()
        assert self.engine is not None and self.settings is not None
        sessions = SessionStore(self.redis, self.settings.session_ttl_s)
        return TriagePipeline(self.engine, sessions, self.consultations, self.settings.lock_ttl_s,
                              self.settings.retention_days)  # fmt: skip


runtime = Runtime()
