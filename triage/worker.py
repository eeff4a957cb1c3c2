"""Celery worker entry point: ``celery -A triage.worker worker``.

The engine and model are loaded in ``worker_process_init``, after the fork,
once per worker process.
"""

from __future__ import annotations

from celery.signals import heartbeat_sent, worker_process_init, worker_process_shutdown

from triage.web.app import create_app

flask_app = create_app()
celery_app = flask_app.extensions["celery"]


@worker_process_init.connect
def _load_engine(**_kwargs: object) -> None:
    from triage.runtime import runtime

    runtime.init_worker_process()


@worker_process_shutdown.connect
def _gone(**_kwargs: object) -> None:
    import contextlib
    import os

    from triage.runtime import runtime

    with contextlib.suppress(Exception):  # a dying process must not fail on its way out
        runtime.redis.delete(f"triage:worker:{os.getpid()}")


@heartbeat_sent.connect
def _heartbeat(sender: object = None, **_kwargs: object) -> None:
    """The main worker process is alive (every 2 s with events on): /readyz checks it."""
    import contextlib
    import os
    import socket

    from triage.runtime import runtime

    with contextlib.suppress(Exception):
        runtime.redis.set(f"triage:heartbeat:{socket.gethostname()}:{os.getpid()}", 1, ex=30)
