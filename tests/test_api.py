"""The mini-program's REST API against the running stack (real worker, fake WeChat login)
and, for the parts that need no worker, against the app alone."""

from __future__ import annotations

import json
import secrets
import time

import pytest
import requests


def poll(base: str, token: str, after: int, timeout: float = 90) -> list[dict]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        turns = requests.get(f"{base}/api/v1/messages", params={"after": after}, timeout=5,
                             headers={"Authorization": f"Bearer {token}"}).json()["turns"]  # fmt: skip
        if turns:
            return turns
        time.sleep(0.3)
    raise AssertionError("no turn arrived")


@pytest.mark.slow
def test_login_consent_chat_summary_and_delete(stack):
    base = stack.web_url
    assert requests.post(f"{base}/api/v1/login", json={"code": "invalid-code"}, timeout=10).status_code == 401
    token = requests.post(f"{base}/api/v1/login", json={"code": "dev-" + secrets.token_hex(4)}, timeout=10).json()["token"]
    auth = {"Authorization": f"Bearer {token}"}
    assert "session_key" not in json.dumps(requests.get(f"{base}/api/v1/consent", headers=auth, timeout=5).json())
    assert requests.get(f"{base}/api/v1/consent", headers=auth, timeout=5).json()["agreed"] is False
    requests.post(f"{base}/api/v1/consent", headers=auth, timeout=5).raise_for_status()

    sent = requests.post(f"{base}/api/v1/messages", json={"text": "孩子发烧三天，咳嗽有痰"}, headers=auth, timeout=5)
    assert sent.status_code == 202
    question = poll(base, token, 0)[-1]
    assert question["kind"] == "question" and "直接推荐" in question["quick_replies"]
    requests.post(f"{base}/api/v1/messages", json={"text": "5岁，男"}, headers=auth, timeout=5)
    answer = poll(base, token, question["seq"])[-1]
    assert answer["kind"] == "triage" and answer["card"]["department"] in ("小儿内科", "儿科")
    assert answer["card"]["urgency_colour"] and "仅供参考" in answer["card"]["notice"]

    summary = requests.get(f"{base}/api/v1/summary", headers=auth, timeout=5).json()
    assert summary["code"] == answer["card"]["summary_code"] and summary["age"] == 5

    events = requests.get(f"{base}/api/v1/events", params={"after": 0}, headers=auth, timeout=40, stream=True)
    first = next(line for line in events.iter_lines(decode_unicode=True) if line.startswith("data:"))
    assert json.loads(first[5:])["seq"] == 1
    events.close()

    assert requests.delete(f"{base}/api/v1/me", headers=auth, timeout=5).json()["deleted"] is True
    assert requests.get(f"{base}/api/v1/summary", headers=auth, timeout=5).status_code == 401  # token gone too


def test_errors_are_json_with_a_code_and_chinese_message(client, redis_client, settings):
    assert client.post("/api/v1/messages", json={"text": "头疼"}).json["error"]["code"] == "unauthorized"
    assert client.post("/api/v1/login", json={}).json["error"]["code"] == "missing_code"
    token = "t-" + secrets.token_hex(8)
    redis_client.set(f"triage:api:token:{token}", json.dumps({"openid": "o_rate", "session_key": "k"}))
    auth = {"Authorization": f"Bearer {token}"}
    assert client.post("/api/v1/messages", json={"text": "  "}, headers=auth).json["error"]["code"] == "empty_text"
    codes = [client.post("/api/v1/messages", json={"text": "头疼"}, headers=auth).status_code for _ in range(22)]
    assert codes.count(202) == 20 and codes[-1] == 429  # per-user limit; the rest were queued
    limited = client.post("/api/v1/messages", json={"text": "头疼"}, headers=auth).json["error"]
    assert limited["code"] == "rate_limited" and "频繁" in limited["message"]


def test_openapi_documents_every_route(client):
    spec = client.get("/api/v1/openapi.json").json
    assert spec["openapi"].startswith("3.")
    documented = {(path, method.upper()) for path, ops in spec["paths"].items() for method in ops}
    routes = {(rule.rule.removeprefix("/api/v1"), method) for rule in client.application.url_map.iter_rules()
              if rule.rule.startswith("/api/v1") for method in rule.methods - {"HEAD", "OPTIONS"}}  # fmt: skip
    assert routes == documented
