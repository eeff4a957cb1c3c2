"""The single Celery app, configured from settings (cf. Flask's ``examples/celery``)."""

from __future__ import annotations

from celery import Celery, Task
from flask import Flask

from triage.config import Settings


def celery_config(settings: Settings, redis_url: str) -> dict:
    return {
        "broker_url": redis_url,
        "task_ignore_result": True,
        "task_acks_late": True,  # a task is acknowledged only when it finished ...
        "task_reject_on_worker_lost": True,  # ... and redelivered if its worker died
        "worker_prefetch_multiplier": 1,  # one slow model call never holds other messages back
        "task_serializer": "json",
        "accept_content": ["json"],
        "task_default_queue": "triage",
        "worker_send_task_events": True,  # Flower and the operator page
        # No "task-sent" event: it is a second publish on every push (13 % of the webhook's time);
        # Flower sees each task from "received" on, and the queue depth comes from Redis.
        "task_send_sent_event": False,
        "broker_connection_retry_on_startup": True,
        "broker_transport_options": {
            "visibility_timeout": 120,  # redelivery of a task whose worker vanished
            "socket_timeout": 2,
            "socket_connect_timeout": 2,
        },
        # The webhook must answer fast even when Redis is down: no long publish retries.
        "task_publish_retry_policy": {"max_retries": 1, "interval_start": 0, "interval_step": 0.2},
        "worker_hijack_root_logger": False,
    }


def celery_init_app(app: Flask, settings: Settings, redis_url: str) -> Celery:
    class FlaskTask(Task):
        def __call__(self, *args: object, **kwargs: object) -> object:
            with app.app_context():
                return self.run(*args, **kwargs)

    celery_app = Celery(app.name, task_cls=FlaskTask)
    celery_app.config_from_object(celery_config(settings, redis_url))
    celery_app.set_default()
    app.extensions["celery"] = celery_app
    return celery_app
