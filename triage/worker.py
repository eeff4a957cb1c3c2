"""Celery worker entry point: ``celery -A triage.worker worker``.

The engine and model are loaded in ``worker_process_init``, after the fork,
once per worker process.
"""

from __future__ import annotations

from celery.signals import worker_process_init

from triage.web.app import create_app

flask_app = create_app()
celery_app = flask_app.extensions["celery"]


@worker_process_init.connect
def _load_engine(**_kwargs: object) -> None:
    from triage.runtime import runtime

    runtime.init_worker_process()
