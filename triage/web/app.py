"""``create_app(test_config)``, as in Flask's tutorial: settings, Redis, Celery, blueprints."""

from __future__ import annotations

import os
from typing import Any

from flask import Flask, jsonify

from triage.celery_app import celery_init_app
from triage.config import Settings
from triage.logs import configure_logging
from triage.runtime import runtime


def create_app(test_config: dict[str, Any] | None = None) -> Flask:
    settings = Settings(**(test_config or {}).get("SETTINGS", {}))
    redis_url = settings.redis_url or os.environ.get("TRIAGE_REDIS_URL")
    if not redis_url:
        raise RuntimeError("TRIAGE_REDIS_URL is not set: start everything with `make run` or `triage run`")
    configure_logging()
    app = Flask("triage", instance_path=str(settings.instance_dir.resolve()))
    app.config.from_mapping(
        SECRET_KEY=settings.secret_key,
        MAX_CONTENT_LENGTH=settings.max_body_bytes,
        TRIAGE_SETTINGS=settings,
    )
    if test_config:
        app.config.update({k: v for k, v in test_config.items() if k != "SETTINGS"})
    runtime.configure(settings, redis_url)
    celery_init_app(app, settings, redis_url)

    from triage import tasks  # noqa: F401  (registers the shared tasks with this Celery app)
    from triage.web import staff, webhook

    app.register_blueprint(webhook.bp)
    app.register_blueprint(staff.bp)

    @app.get("/healthz")
    def healthz():
        return jsonify({"status": "ok"})

    @app.errorhandler(413)
    def too_large(_e):
        return jsonify({"error": "body too large"}), 413

    return app
