"""Per-process singletons: the Redis client and the database everywhere; in worker
processes the engine (knowledge base, indexes, model) and the WeChat sender.

The model is created by :func:`init_worker_process`, called from Celery's
``worker_process_init`` signal: a llama.cpp model loaded before the fork hangs
the children.

Live reload: publishing a knowledge-base version writes its number to Redis
(``KB_ACTIVE_KEY``). A watcher thread in every worker process polls it and, when it
changes, builds the new engine in the background (the model is reused, embeddings
come from the per-passage cache; about 5 s on 2 cores) and swaps it in between two
messages, so no message in flight is dropped or answered from a half-built index.
Before each message the worker checks the key too: a message that arrives after a
publish is always answered from the new version (waiting for a build under way
rather than starting a second one).
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time

import redis
from sqlalchemy.orm import sessionmaker

from triage.config import Settings
from triage.llm import LanguageModel
from triage.pipeline import TriageEngine, TriagePipeline
from triage.sessions import SessionStore
from triage.store.consultations import AuditLog, ConsultationStore
from triage.store.knowledge import KnowledgeRepo
from triage.store.users import UserStore
from triage.vision import ImageDescriber
from triage.wechat.client import WeChatSender

log = logging.getLogger(__name__)
KB_ACTIVE_KEY = "triage:kb:active"
RELOAD_POLL_S = 2.0


class Runtime:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._reload_lock = threading.Lock()  # one engine build at a time
        self.settings: Settings | None = None
        self.redis_url: str | None = None
        self.model: LanguageModel | None = None
        self.engine: TriageEngine | None = None
        self.vision: ImageDescriber | None = None
        self._redis: redis.Redis | None = None
        self._sender: WeChatSender | None = None
        self._sessions: sessionmaker | None = None

    def configure(self, settings: Settings, redis_url: str) -> None:
        if redis_url != self.redis_url:
            self._redis = self._sender = None
        self.settings, self.redis_url = settings, redis_url
        self._sessions = None  # the database may differ between configurations

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

    # --- the database -----------------------------------------------------------------------
    @property
    def db(self) -> sessionmaker:
        if self._sessions is None:
            from triage.services import open_database

            assert self.settings is not None
            self._sessions = open_database(self.settings)
        return self._sessions

    @property
    def consultations(self) -> ConsultationStore:
        assert self.settings is not None
        return ConsultationStore(self.db, self.settings.retention_days)

    @property
    def audit(self) -> AuditLog:
        return AuditLog(self.db)

    @property
    def knowledge(self) -> KnowledgeRepo:
        return KnowledgeRepo(self.db)

    @property
    def users(self) -> UserStore:
        return UserStore(self.db)

    def announce_version(self, number: int) -> None:
        """Tell every process which knowledge-base version is live (after publish/rollback)."""
        self.redis.set(KB_ACTIVE_KEY, number)

    # --- the worker ------------------------------------------------------------------------------
    def init_worker_process(self) -> None:
        from triage.services import build_engine, build_model, build_vision, load_knowledge

        assert self.settings is not None
        with self._lock:
            if self.engine is None:
                self.model = build_model(self.settings)
                kb = load_knowledge(self.settings, self.knowledge)
                self.engine = build_engine(self.settings, kb=kb, model=self.model)
                self.vision = build_vision(self.settings)
                self.announce_ready()
                log.info("worker ready", extra={"kb_version": self.engine.kb.version})
                self._watch_published()

    def _watch_published(self) -> None:
        """Rebuild as soon as a version is published, not when the next patient writes."""

        def watch() -> None:
            while True:
                time.sleep(RELOAD_POLL_S)
                try:
                    self.reload_if_published()
                except Exception as exc:  # Redis restarting, a broken version: keep serving, try again
                    log.warning("knowledge-base watch: %s", type(exc).__name__)

        threading.Thread(target=watch, name="kb-reload", daemon=True).start()

    def reload_if_published(self) -> None:
        """Swap in the live knowledge-base version if another one was published."""
        from triage.services import build_engine
        from triage.store.knowledge import to_knowledge_base

        assert self.engine is not None and self.settings is not None
        wanted = self.redis.get(KB_ACTIVE_KEY)
        if wanted is None or f"v{int(wanted)}" == self.engine.kb.version:
            return
        with self._reload_lock:  # a build under way finishes first; then the version is checked again
            if f"v{int(wanted)}" == self.engine.kb.version:
                return
            content = self.knowledge.version_content(int(wanted))
            if content is None:
                log.error("published version missing from the database", extra={"kb_version": f"v{int(wanted)}"})
                return
            engine = build_engine(self.settings, kb=to_knowledge_base(content, f"v{int(wanted)}"), model=self.model)
            with self._lock:
                self.engine = engine
        self.announce_ready()
        log.info("knowledge base reloaded", extra={"kb_version": engine.kb.version})

    def announce_ready(self) -> None:
        """A key per worker process, so `triage run`, the tests and /readyz can see it."""
        assert self.engine is not None
        info = {"pid": os.getpid(), "kb_version": self.engine.kb.version,
                "model": self.model.name if self.model and self.model.loaded else None}  # fmt: skip
        self.redis.set(f"triage:worker:{os.getpid()}", json.dumps(info), ex=24 * 3600)

    def pipeline(self) -> TriagePipeline:
        if self.engine is None:
            self.init_worker_process()
        try:
            self.reload_if_published()
        except Exception:  # a broken reload keeps the version that works; patients still get answers
            log.exception("knowledge-base reload failed; still serving %s", self.engine and self.engine.kb.version)
        assert self.engine is not None and self.settings is not None
        sessions = SessionStore(self.redis, self.settings.session_ttl_s)
        return TriagePipeline(self.engine, sessions, self.consultations, self.settings.lock_ttl_s,
                              self.settings.retention_days)  # fmt: skip


runtime = Runtime()
