"""Reliability under faults, on real parts: a burst of 500 pushes while a worker process is
SIGKILLed mid-task and Redis is restarted once. Every accepted message gets exactly one
reply (or its fallback), none twice; a push refused while Redis was down is retried, as
WeChat does, and answered once."""

from __future__ import annotations

import json
import os
import secrets
import signal
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import pytest
import redis
import requests
from conftest import ARTIFACTS, make_settings

from triage.privacy import user_ref
from triage.redis_server import EmbeddedRedis, free_port
from triage.sessions import SessionStore
from triage.wechat.crypto import PushCrypto
from triage.wechat.pusher import message_fields, push

pytestmark = pytest.mark.slow
MESSAGES = 500
CONSENTED = 60  # these run the whole pipeline with the model; the others get the privacy notice
BURST_START = [0.0]
COMPLAINTS = ["头疼三天", "咳嗽有痰一周", "肚子疼拉肚子", "膝盖疼上下楼更疼", "皮肤起红疹很痒", "牙龈肿痛",
              "失眠心情差", "尿频尿急", "眼睛红痒", "腰疼两周"]  # fmt: skip


@pytest.fixture(scope="module")
def fault_stack(tmp_path_factory):
    """Its own stack on a persistent (AOF) Redis that the test can restart."""
    from triage.services import warm_index
    from triage.stack import Stack

    server = EmbeddedRedis(tmp_path_factory.mktemp("redis-aof"), persistent=True).start()
    web_port, fake_port = free_port(), free_port()
    settings = make_settings(server.url, web_port=web_port, fake_wechat_port=fake_port,
                             database_url=f"sqlite:///{tmp_path_factory.mktemp('db')}/faults.db",
                             wechat_api_base=f"http://127.0.0.1:{fake_port}/")  # fmt: skip
    stack = Stack(settings, persistent=True, web_port=web_port, fake_port=fake_port,
                  log_dir=ARTIFACTS / "fault-logs", extra_env={"TRIAGE_ENV": "test"})  # fmt: skip
    warm_index(settings)
    stack.start(wait=300)
    yield stack, server
    stack.stop()
    server.stop()


def _push_until_accepted(stack, crypto, fields, delay: float) -> int:
    """WeChat retries a push that did not get a 200 (here: while Redis was down)."""
    time.sleep(max(0.0, delay - (time.monotonic() - BURST_START[0])))  # spread over ~10 s: some meet the restart
    for attempt in range(60):
        try:
            if push(stack.web_url, crypto, fields).status_code == 200:
                return attempt
        except requests.RequestException:
            pass
        time.sleep(0.5)
    raise AssertionError("push never accepted")


def test_burst_with_a_killed_worker_and_a_redis_restart(fault_stack):
    stack, server = fault_stack
    s = stack.settings
    crypto = PushCrypto(s.wechat_token, s.wechat_aes_key, s.wechat_appid)
    users = [f"o_fault_{i}_{secrets.token_hex(3)}" for i in range(MESSAGES)]
    sessions = SessionStore(redis.Redis.from_url(server.url))
    for openid in users[:CONSENTED]:  # consented beforehand: their messages run the whole pipeline
        sessions.grant_consent(user_ref(openid, s.secret_key), "test")

    retried = Counter()
    faults: dict[str, object] = {}

    def inject_faults() -> None:
        time.sleep(3)
        client = redis.Redis.from_url(server.url)
        pids = [json.loads(v)["pid"] for v in client.mget(list(client.scan_iter("triage:worker:*"))) if v]
        os.kill(pids[0], signal.SIGKILL)  # a worker process dies mid-task
        faults["killed_pid"] = pids[0]
        time.sleep(3)
        server.stop()  # Redis goes away ...
        time.sleep(2)
        server.start()  # ... and comes back with its AOF
        faults["redis_restarted"] = True

    BURST_START[0] = time.monotonic()
    injector = threading.Thread(target=inject_faults)
    injector.start()
    with ThreadPoolExecutor(64) as pool:
        for openid, attempts in zip(users, pool.map(
                lambda i: _push_until_accepted(stack, crypto, message_fields(users[i], COMPLAINTS[i % 10],
                                                                             msg_id=10_000 + i), delay=i * 0.02),
                range(MESSAGES)), strict=True):  # fmt: skip
            retried[openid] = attempts
    injector.join()
    assert faults.get("redis_restarted") and faults.get("killed_pid")

    deadline = time.monotonic() + 300
    counts: Counter = Counter()
    while time.monotonic() < deadline:
        found = requests.get(stack.fake_url + "_fake/messages", timeout=5).json()
        counts = Counter(m["touser"] for m in found if m["touser"] in set(users))
        if len(counts) == MESSAGES:
            break
        time.sleep(1)
    time.sleep(5)  # a duplicate would arrive by now
    found = requests.get(stack.fake_url + "_fake/messages", timeout=5).json()
    counts = Counter(m["touser"] for m in found if m["touser"] in set(users))
    report = {"messages": MESSAGES, "answered": len(counts), "answered_twice": sum(1 for c in counts.values() if c > 1),
              "pushes_retried_by_wechat": sum(1 for a in retried.values() if a), **faults}  # fmt: skip
    (ARTIFACTS / "fault-report.json").write_text(json.dumps(report, indent=2))
    assert len(counts) == MESSAGES, report
    assert all(c == 1 for c in counts.values()), report
