"""``create_app(test_config)``, as in Flask's tutorial: settings, Redis, Celery, blueprints."""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path
from typing import Any

from flask import Flask, Response, jsonify, send_from_directory

from triage.celery_app import celery_init_app
from triage.config import Settings
from triage.logs import configure_logging
from triage.runtime import runtime


def create_app(test_config: dict[str, Any] | None = None) -> Flask:
    settings = Settings(**(test_config or {}).get("SETTINGS", {}))
    # `make run` / `triage run` start Redis and set TRIAGE_REDIS_URL; the database commands
    # (`flask --app triage kb ...`) do not need Redis at all.
    redis_url = settings.redis_url or os.environ.get("TRIAGE_REDIS_URL") or "redis://127.0.0.1:6379/0"
    configure_logging()
    app = Flask("triage", instance_path=str(settings.instance_dir.resolve()))
    app.config.from_mapping(
        SECRET_KEY=settings.secret_key,
        MAX_CONTENT_LENGTH=settings.max_body_bytes,
        TRIAGE_SETTINGS=settings,
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=settings.env == "production",  # behind TLS in production
        PERMANENT_SESSION_LIFETIME=timedelta(hours=8),
    )
    if test_config:
        app.config.update({k: v for k, v in test_config.items() if k != "SETTINGS"})
    runtime.configure(settings, redis_url)
    celery_init_app(app, settings, redis_url)

    from triage import tasks  # noqa: F401  (registers the shared tasks with this Celery app)
    from triage.web import api, auth, commands, editor, ops, staff, webhook

    app.register_blueprint(webhook.bp)
    app.register_blueprint(staff.bp)
    app.register_blueprint(auth.bp, url_prefix="/editor")
    app.register_blueprint(editor.bp)
    app.register_blueprint(ops.bp)
    app.register_blueprint(api.bp)
    app.before_request(auth.load_staff)
    commands.init_app(app)

    @app.get("/healthz")
    def healthz():
        """The process is alive (no dependency is checked here)."""
        return jsonify({"status": "ok", "kb_version": _live_version()})

    @app.get("/chat")
    def chat_page():
        """The phone-sized chat page: the mini-program's behaviour, on the public REST API only."""
        return send_from_directory(Path(__file__).with_name("static"), "chat.html")

    @app.get("/readyz")
    def readyz():
        """Ready to take patients: Redis, a live worker with its model and knowledge base."""
        checks, ready = readiness(settings)
        return jsonify({"ready": ready, "checks": checks}), 200 if ready else 503

    @app.get("/metrics")
    def metrics_view():
        from triage import metrics

        try:
            metrics.record_queue_depth(runtime.redis)
            client = runtime.redis
        except Exception:
            client = None
        return Response(metrics.exposition(client, _live_version()), mimetype="text/plain; version=0.0.4")

    @app.errorhandler(413)
    def too_large(_e):
        return jsonify({"error": "body too large"}), 413

    return app


def readiness(settings: Settings) -> tuple[dict[str, str], bool]:
    import json

    from triage.runtime import KB_ACTIVE_KEY

    checks: dict[str, str] = {}
    try:
        client = runtime.redis
        client.ping()
        checks["redis"] = "ok"
    except Exception as exc:
        return {"redis": f"unreachable ({type(exc).__name__})"}, False
    alive = sum(1 for _ in client.scan_iter("triage:heartbeat:*"))
    workers = [json.loads(v) for v in client.mget(list(client.scan_iter("triage:worker:*"))) if v] if alive else []
    with_model = [w for w in workers if w.get("model") or settings.model_mode == "off"]
    checks["workers"] = f"{len(with_model)} ready" if with_model else ("no worker alive" if not alive else
                                                                        "no worker has loaded its model")  # fmt: skip
    active = client.get(KB_ACTIVE_KEY)
    versions = sorted({w.get("kb_version") for w in with_model})
    checks["knowledge_base"] = ", ".join(versions) if versions else "not loaded"
    if active and versions and f"v{int(active)}" not in versions:
        checks["knowledge_base"] += f" (v{int(active)} published, reloading on the next message)"
    return checks, bool(with_model)


def _live_version() -> str | None:
    """The knowledge-base version the workers serve, as announced in Redis."""
    from triage.runtime import KB_ACTIVE_KEY

    try:
        number = runtime.redis.get(KB_ACTIVE_KEY)
    except Exception:  # health must answer even when Redis does not
        return None
    return f"v{int(number)}" if number else None
