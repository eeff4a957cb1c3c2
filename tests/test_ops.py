"""Operators' side on a real Redis and database: /metrics, /readyz, the console, and
property-based fuzzing of the push parser and decryption (no input may become a 500)."""

from __future__ import annotations

import re
import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from triage.runtime import runtime
from triage.wechat.crypto import PushCrypto
from triage.wechat.pusher import build_push, message_fields


@pytest.fixture()
def crypto(settings) -> PushCrypto:  # the webhook's own keys, not the stack's
    return PushCrypto(settings.wechat_token, settings.wechat_aes_key, settings.wechat_appid)


def test_metrics_count_pushes_by_outcome(client, crypto, redis_client):
    body, query, headers = build_push(crypto, message_fields("o_metrics", "头疼"), "xml", True)
    client.post("/wechat/push", query_string=query, data=body, headers=headers)
    client.post("/wechat/push", query_string=query, data=body, headers=headers)  # WeChat's retry
    text = client.get("/metrics").get_data(as_text=True)
    assert re.search(r'triage_pushes_total\{outcome="queued"\} [1-9]', text)
    assert re.search(r'triage_pushes_total\{outcome="duplicate"\} [1-9]', text)
    assert "triage_queue_depth 1" in text


def test_readyz_explains_why_it_is_not_ready(client, redis_client):
    response = client.get("/readyz")
    assert response.status_code == 503
    assert response.json["checks"]["redis"] == "ok" and "worker" in response.json["checks"]["workers"]
    assert client.get("/healthz").status_code == 200


def test_operator_console_needs_the_operator_role(settings, redis_client, tmp_path):
    from triage import create_app

    app = create_app({"TESTING": True, "SETTINGS": settings.model_dump() | {"database_url": f"sqlite:///{tmp_path}/o.db"}})
    runtime.users.create("ops-zhang", "operator", "operator-password-1")
    runtime.users.create("editor-li", "editor", "editor-password-1")
    for user, password, status in (("editor-li", "editor-password-1", 403), ("ops-zhang", "operator-password-1", 200)):
        client = app.test_client()
        page = client.get("/editor/login").get_data(as_text=True)
        token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
        client.post("/editor/login", data={"username": user, "password": password, "csrf_token": token})
        response = client.get("/ops/")
        assert response.status_code == status
    assert "运行状态" in response.get_data(as_text=True) and "<svg" in response.get_data(as_text=True)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(raw=st.one_of(st.binary(max_size=2048), st.text(max_size=1024).map(str.encode),
                     st.from_regex(r"<xml>(<[A-Za-z]{1,12}>[^<]{0,40}</[A-Za-z]{1,12}>){0,6}</xml>").map(str.encode)),
       encrypted=st.booleans(), fmt=st.sampled_from(["xml", "json"]))  # fmt: skip
def test_no_push_body_becomes_a_server_error(client, crypto, raw, encrypted, fmt):
    _body, query, _headers = build_push(crypto, message_fields("o_fuzz", "x"), fmt, encrypted)
    if encrypted:  # a garbage ciphertext in a well-formed envelope
        wrapper = (b'{"ToUserName": "gh", "Encrypt": "%s"}' if fmt == "json"
                   else b"<xml><ToUserName>gh</ToUserName><Encrypt>%s</Encrypt></xml>")  # fmt: skip
        raw = wrapper % raw.hex().encode()[:2000]
    content_type = "application/json" if fmt == "json" else "text/xml"
    response = client.post("/wechat/push", query_string=query, data=raw, headers={"Content-Type": content_type})
    assert response.status_code < 500


def test_the_console_roll_up_counts_replies_per_minute(redis_client):
    from triage import metrics

    metrics.record_reply(redis_client, "triage", 0.5)
    metrics.record_reply(redis_client, "red_flag", 0.05)
    metrics.record_reply(redis_client, "fallback", 1.5, failed="triage_error", user="abc123")
    point = metrics.series(redis_client, 60)[-1]
    assert (point["messages"], point["red_flags"], point["fallbacks"], point["failures"]) == (3, 1, 1, 1)
    assert point["p50"] == 0.5 and point["p95"] == 1.5
    assert metrics.recent_failures(redis_client)[0] == {"at": pytest.approx(time.time(), abs=5), "user": "abc123",
                                                         "reason": "triage_error"}  # fmt: skip
