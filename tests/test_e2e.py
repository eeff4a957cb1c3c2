"""The whole path on real parts: signed push → gunicorn/Flask → Redis → Celery worker
→ llama.cpp model → customer-service message at the fake WeChat API."""

from __future__ import annotations

import re
import secrets
import time

import pytest
import redis
import requests
from conftest import department_for

from triage.guardrails import AI_LABEL, NOTICE
from triage.inbox import Inbox
from triage.wechat.parser import to_message
from triage.wechat.pusher import message_fields, push, replies_for, wait_for_replies

pytestmark = pytest.mark.slow


def answers(stack, openid: str, count: int = 1, timeout: float = 90) -> list[dict]:
    """Replies after the consent thanks."""
    return wait_for_replies(stack.fake_url, openid, count + 1, timeout)[1:]


def fail(stack, endpoint: str, **how) -> None:
    requests.post(stack.fake_url + "_fake/fail", json={"endpoint": endpoint, **how}, timeout=5).raise_for_status()


def calls(stack, endpoint: str, touser: str) -> int:
    found = requests.get(stack.fake_url + "_fake/calls", timeout=5).json()
    return sum(1 for c in found if c["endpoint"] == endpoint and (c["payload"] or {}).get("touser") == touser)


def test_a_message_whose_task_was_lost_is_still_answered(stack, openid):
    """The broker lost the task (popped in the instant Redis went down): the inbox still holds
    the message, and a worker's sweeper queues it again. One reply, never two."""
    message = to_message({k: str(v) for k, v in message_fields(openid, "头疼三天").items()})
    inbox = Inbox(redis.Redis.from_url(stack.settings.redis_url))
    assert inbox.accept(message.dedup_key, "triage.handle_message", [message.to_dict(), "lost-task", time.time()])
    inbox.due_now(message.dedup_key)  # as the web process does when queueing failed
    assert len(answers(stack, openid, 1, timeout=90)) == 1
    time.sleep(3)
    assert len(answers(stack, openid, 1)) == 1 and not inbox.is_pending(message.dedup_key)


@pytest.mark.parametrize("fmt", ["xml", "json"])
def test_encrypted_push_gets_exactly_one_reply(stack, crypto, openid, fmt):
    response = push(stack.web_url, crypto, message_fields(openid, "孩子发烧三天，咳嗽有痰"), fmt=fmt)
    assert response.status_code == 200 and response.text == "success"
    found = answers(stack, openid)
    assert len(found) == 1
    question = found[0]["text"]["content"]
    assert "年龄" in question and AI_LABEL in question and NOTICE in question  # a child: the age first
    push(stack.web_url, crypto, message_fields(openid, "5岁，男"), fmt=fmt)
    content = answers(stack, openid, 2)[1]["text"]["content"]
    assert "建议科室：小儿内科" in content or "建议科室：儿科" in content
    assert AI_LABEL in content and NOTICE in content
    time.sleep(1.0)
    assert len(replies_for(stack.fake_url, openid)) == 3


def test_summary_reaches_staff_and_a_risky_text_gets_a_neutral_reply(stack, crypto, openid):
    push(stack.web_url, crypto, message_fields(openid, "牙疼好几天了，牙龈也肿"))
    answers(stack, openid)
    push(stack.web_url, crypto, message_fields(openid, "直接推荐"))
    content = answers(stack, openid, 2)[1]["text"]["content"]
    code = re.search(r"编号 ([A-Z0-9]{6})", content).group(1)
    staff = requests.get(f"{stack.web_url}/staff/api/consultations/{code}", timeout=10,
                         headers={"Authorization": "Bearer e2e-token"})  # fmt: skip
    assert staff.status_code == 200 and "口腔科" in staff.json()["departments"][0]
    push(stack.web_url, crypto, message_fields(openid, "违禁词测试"))  # the fake msgSecCheck calls it risky
    assert "无法处理" in answers(stack, openid, 3)[2]["text"]["content"]


def test_same_push_three_times_gets_one_reply(stack, crypto, openid):
    fields = message_fields(openid, "最近总是胃疼，吃完饭胀气")
    for _ in range(3):
        assert push(stack.web_url, crypto, fields).text == "success"
    assert len(answers(stack, openid)) == 1
    time.sleep(1.5)
    assert len(replies_for(stack.fake_url, openid)) == 2


def test_red_flag_is_answered_from_the_rule(stack, crypto, openid):
    push(stack.web_url, crypto, message_fields(openid, "我爸突然胸口剧痛，满头大汗"))
    content = answers(stack, openid)[0]["text"]["content"]
    assert "120" in content and NOTICE in content


def test_expired_token_is_refreshed_once_and_the_message_resent(stack, crypto, openid):
    fail(stack, "message/custom/send", errcode=40001, times=1)
    push(stack.web_url, crypto, message_fields(openid, "牙疼好几天了"))
    found = answers(stack, openid)
    assert len(found) == 1 and AI_LABEL in found[0]["text"]["content"]


def test_system_errors_are_retried_with_backoff(stack, crypto, openid):
    fail(stack, "message/custom/send", errcode=-1, times=2)
    push(stack.web_url, crypto, message_fields(openid, "眼睛红肿发痒"))
    found = answers(stack, openid)
    assert len(found) == 1
    assert calls(stack, "message/custom/send", openid) == 4  # consent thanks, two failures, one success


def test_closed_window_is_not_retried(stack, crypto, openid):
    fail(stack, "message/custom/send", errcode=45015, times=1)
    push(stack.web_url, crypto, message_fields(openid, "膝盖疼"))
    deadline = time.monotonic() + 60
    while calls(stack, "message/custom/send", openid) < 2 and time.monotonic() < deadline:
        time.sleep(0.1)
    time.sleep(5)  # longer than the first backoff: a retry would have happened by now
    assert calls(stack, "message/custom/send", openid) == 2  # consent thanks, then the refused one
    assert len(replies_for(stack.fake_url, openid)) == 1


def test_image_message_gets_a_kind_text_request(stack, crypto, openid):
    fields = {**message_fields(openid, ""), "MsgType": "image", "PicUrl": "http://x/y.jpg", "MediaId": "m"}
    push(stack.web_url, crypto, fields)
    content = answers(stack, openid)[0]["text"]["content"]
    assert "文字" in content and NOTICE in content


def test_first_contact_gets_the_privacy_notice_and_deletion_is_confirmed(stack, crypto):
    user = "o_e2e_new_" + secrets.token_hex(6)
    push(stack.web_url, crypto, message_fields(user, "嗓子疼"))
    notice = wait_for_replies(stack.fake_url, user, 1, timeout=60)[0]["text"]["content"]
    assert "同意" in notice and "删除我的数据" in notice and NOTICE in notice
    push(stack.web_url, crypto, message_fields(user, "删除我的数据"))
    assert "已全部删除" in wait_for_replies(stack.fake_url, user, 2, timeout=60)[1]["text"]["content"]


def test_patient_images_can_be_downloaded_for_a_vision_model(stack):
    import redis

    from triage.wechat.client import WeChatSender

    s = stack.settings
    sender = WeChatSender(redis.Redis.from_url(stack.redis_url), s.wechat_appid, s.wechat_secret, stack.fake_url)
    image, mime = sender.download_media("media-1")
    assert image.startswith(b"\x89PNG") and mime == "image/png"


def _editor_session(stack, username: str, password: str) -> tuple[requests.Session, str]:
    client = requests.Session()
    token = re.search(r'name="csrf_token" value="([^"]+)"', client.get(f"{stack.web_url}/editor/login").text).group(1)
    client.post(f"{stack.web_url}/editor/login", data={"username": username, "password": password, "csrf_token": token})
    page = client.get(f"{stack.web_url}/editor/publish").text
    return client, re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)


def _workers_serve(stack, version: str, timeout: float = 60) -> bool:
    """Every worker process announces the version it serves; a publish is picked up by their
    watchers, with no message needed to trigger it."""
    import json

    client = redis.Redis.from_url(stack.settings.redis_url)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        served = [json.loads(v)["kb_version"] for v in client.mget(list(client.scan_iter("triage:worker:*"))) if v]
        if served and all(v == version for v in served):
            return True
        time.sleep(0.5)
    return False


def test_a_published_edit_changes_the_answer_and_rollback_restores_it(stack, crypto, openid):
    from triage.services import open_database
    from triage.store.users import UserStore

    users = UserStore(open_database(stack.settings))
    users.create("e2e-editor", "editor", "editor-password-1")
    users.create("e2e-chief", "reviewer", "chief-password-1")
    complaint = "我的咕嘟病又犯了"  # a word no department knows yet
    before = department_for(stack, crypto, openid, complaint)
    assert before != "眼科"
    live = int(requests.get(f"{stack.web_url}/healthz", timeout=5).json()["kb_version"][1:])

    editor, token = _editor_session(stack, "e2e-editor", "editor-password-1")
    editor.post(f"{stack.web_url}/editor/departments/ophthalmology/entries",
                data={"csrf_token": token, "term": "咕嘟病", "kind": "condition", "weight": "1.0"})  # fmt: skip
    chief, chief_token = _editor_session(stack, "e2e-chief", "chief-password-1")
    published = chief.post(f"{stack.web_url}/editor/publish", data={"csrf_token": chief_token}).text
    number = int(re.search(r"已发布 v(\d+)", published).group(1))
    assert _workers_serve(stack, f"v{number}"), "the workers did not rebuild before any message came"
    assert department_for(stack, crypto, openid, complaint) == "眼科"  # the worker reloaded, no restart
    assert requests.get(f"{stack.web_url}/readyz", timeout=5).json()["checks"]["knowledge_base"] == f"v{number}"

    chief.post(f"{stack.web_url}/editor/rollback/{live}", data={"csrf_token": chief_token})
    assert department_for(stack, crypto, openid, complaint) == before
    assert requests.get(f"{stack.web_url}/healthz", timeout=5).json()["kb_version"] == f"v{live}"
    metrics = requests.get(f"{stack.web_url}/metrics", timeout=5).text  # every process reports
    assert re.search(r'triage_replies_total\{kind="triage"\} [1-9]', metrics)
    assert re.search(r'triage_stage_seconds_count\{stage="retrieve"\} [1-9]', metrics)
