"""Celery worker entry point: ``celery -A triage.worker worker``.

The engine and model are loaded in ``worker_process_init``, after the fork,
once per worker process.
"""

from __future__ import annotations

import logging

import redis
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
    try:
        _redeliver_lost_messages(runtime)
    except redis.RedisError as exc:  # Redis restarting: the next heartbeat sweeps
        logging.getLogger(__name__).warning("inbox sweep skipped: %s", type(exc).__name__)
    except Exception:
        logging.getLogger(__name__).exception("inbox sweep failed")


def _redeliver_lost_messages(runtime) -> None:
    """Messages accepted but never answered (their task was lost) are queued again."""
    from triage import metrics
    from triage.inbox import Inbox, Pending, sweep

    def publish(pending: Pending) -> None:
        celery_app.send_task(pending.task, args=pending.args, retry=False)

    settings = runtime.settings
    done = sweep(Inbox(runtime.redis, settings.redeliver_after_s), publish, settings.give_up_after_s)
    for outcome, count in done.items():
        metrics.REDELIVERIES.labels(outcome).inc(count)
