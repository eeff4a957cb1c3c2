"""The webhook against a real Redis: verification, refusals, dedup, queueing.
No worker consumes this Redis database, so the queue length shows what was queued."""

from __future__ import annotations

import json

import pytest

from triage.wechat.crypto import PushCrypto, _signature
from triage.wechat.pusher import build_push, message_fields, render

QUEUE = "triage"


@pytest.fixture()
def crypto(settings) -> PushCrypto:
    return PushCrypto(settings.wechat_token, settings.wechat_aes_key, settings.wechat_appid)


def post(client, crypto, fields, fmt="xml", encrypted=True):
    body, query, headers = build_push(crypto, fields, fmt, encrypted)
    return client.post("/wechat/push", query_string=query, data=body, headers=headers)


def queued(redis_client) -> int:
    return redis_client.llen(QUEUE)


def test_url_verification_plain_and_safe_mode(client, crypto):
    query = {"timestamp": "1700000000", "nonce": "abc", "echostr": "hello123"}
    query["signature"] = crypto.sign(query["timestamp"], query["nonce"])
    assert client.get("/wechat/push", query_string=query).get_data(as_text=True) == "hello123"

    encrypted, msg_signature, _ = crypto.encrypt("echo-plain", "abc", "1700000000")
    safe = {**query, "echostr": encrypted, "msg_signature": msg_signature}
    assert client.get("/wechat/push", query_string=safe).get_data(as_text=True) == "echo-plain"

    assert client.get("/wechat/push", query_string={**query, "signature": "0" * 40}).status_code == 403


@pytest.mark.parametrize("fmt", ["xml", "json"])
@pytest.mark.parametrize("encrypted", [True, False])
def test_valid_push_is_acknowledged_and_queued(client, crypto, redis_client, fmt, encrypted):
    response = post(client, crypto, message_fields("o_user_a", "孩子发烧三天，咳嗽有痰"), fmt, encrypted)
    assert response.status_code == 200 and response.get_data(as_text=True) == "success"
    assert queued(redis_client) == 1
    task = json.loads(redis_client.lindex(QUEUE, 0))
    body = json.loads(__import__("base64").b64decode(task["body"]))
    assert body[0][0]["content"] == "孩子发烧三天，咳嗽有痰"  # ids and small fields only


def test_retried_push_is_queued_once(client, crypto, redis_client):
    fields = message_fields("o_user_b", "头疼两天", msg_id=424242)
    for _ in range(3):
        assert post(client, crypto, fields).get_data(as_text=True) == "success"
    assert queued(redis_client) == 1


def test_event_dedup_uses_sender_and_time(client, crypto, redis_client):
    event = {"ToUserName": "gh", "FromUserName": "o_user_c", "CreateTime": 1700000001, "MsgType": "event",
             "Event": "user_enter_tempsession", "SessionFrom": "menu"}  # fmt: skip
    for _ in range(3):
        post(client, crypto, event)
    assert queued(redis_client) == 1


def test_forged_signature_is_refused(client, crypto, redis_client):
    body, query, headers = build_push(crypto, message_fields("o_x", "胸痛"), "xml", encrypted=False)
    query["signature"] = "f" * 40
    assert client.post("/wechat/push", query_string=query, data=body, headers=headers).status_code == 403
    body, query, headers = build_push(crypto, message_fields("o_x", "胸痛"), "xml", encrypted=True)
    query["msg_signature"] = "0" * 40
    assert client.post("/wechat/push", query_string=query, data=body, headers=headers).status_code == 403
    assert queued(redis_client) == 0


def _signed_raw(client, crypto, raw: bytes, content_type="text/xml"):
    _body, query, _headers = build_push(crypto, message_fields("o", "x"), "xml", encrypted=False)
    return client.post("/wechat/push", query_string=query, data=raw, headers={"Content-Type": content_type})


XML_BOMB = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
<!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">]>
<xml><ToUserName>a</ToUserName><FromUserName>b</FromUserName><MsgType>text</MsgType><Content>&lol3;</Content></xml>"""
EXTERNAL_ENTITY = b"""<?xml version="1.0"?><!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]>
<xml><FromUserName>b</FromUserName><MsgType>text</MsgType><Content>&e;</Content></xml>"""


@pytest.mark.parametrize(
    ("raw", "content_type", "status"),
    [
        (XML_BOMB, "text/xml", 400),
        (EXTERNAL_ENTITY, "text/xml", 400),
        (b"<xml><FromUserName>a</FromUserName><MsgType>text", "text/xml", 400),
        (b"<notxml/>", "text/xml", 400),
        (b'{"FromUserName": "a", "MsgType": ', "application/json", 400),
        (b"[1, 2, 3]", "application/json", 400),
        (b'{"MsgType": "text"}', "application/json", 400),
        (b"<xml>" + b"a" * (2 * 1024 * 1024) + b"</xml>", "text/xml", 413),
    ],
    ids=["xml-bomb", "external-entity", "truncated-xml", "wrong-root", "truncated-json", "json-array",
         "missing-sender", "2mb-body"],
)
def test_bad_bodies_are_refused_and_app_keeps_serving(client, crypto, redis_client, raw, content_type, status):
    assert _signed_raw(client, crypto, raw, content_type).status_code == status
    assert queued(redis_client) == 0
    assert post(client, crypto, message_fields("o_next", "嗓子疼")).get_data(as_text=True) == "success"
    assert queued(redis_client) == 1


def test_garbage_ciphertext_is_refused(client, crypto, redis_client):
    fields = {"ToUserName": "gh", "Encrypt": "bm90IGEgcmVhbCBjaXBoZXJ0ZXh0"}
    nonce, timestamp = "n1", "1700000000"
    query = {"signature": crypto.sign(timestamp, nonce), "timestamp": timestamp, "nonce": nonce,
             "encrypt_type": "aes", "msg_signature": _signature(crypto.token, timestamp, nonce, fields["Encrypt"])}  # fmt: skip
    response = client.post("/wechat/push", query_string=query, data=render(fields, "xml").encode())
    assert response.status_code == 400
    assert queued(redis_client) == 0


@pytest.mark.parametrize("msg_type", ["voice", "video", "location", "link", "file"])
def test_unknown_message_types_are_acknowledged_not_queued(client, crypto, redis_client, msg_type):
    fields = {**message_fields("o_y", ""), "MsgType": msg_type}
    assert post(client, crypto, fields).get_data(as_text=True) == "success"
    assert queued(redis_client) == 0


def test_image_and_card_messages_are_queued(client, crypto, redis_client):
    image = {**message_fields("o_img", ""), "MsgType": "image", "PicUrl": "http://x/y.jpg", "MediaId": "m1"}
    card = {**message_fields("o_card", ""), "MsgType": "miniprogrampage", "Title": "挂号", "PagePath": "pages/a"}
    for fields in (image, card):
        assert post(client, crypto, fields).get_data(as_text=True) == "success"
    assert queued(redis_client) == 2


@pytest.mark.parametrize("fmt", ["xml", "json"])
def test_transfer_to_a_human_agent_is_a_passive_reply(client, crypto, redis_client, fmt):
    response = post(client, crypto, message_fields("o_human", "转人工"), fmt=fmt)
    assert response.status_code == 200 and queued(redis_client) == 1  # the hand-off is also recorded
    text = response.get_data(as_text=True)
    if fmt == "json":
        wrapped = json.loads(text)
    else:
        from triage.wechat.parser import parse_fields

        wrapped = parse_fields(text.encode(), "xml")
    plain = crypto.decrypt(wrapped["Encrypt"], wrapped["MsgSignature"], wrapped["TimeStamp"], wrapped["Nonce"])
    assert "transfer_customer_service" in plain and "o_human" in plain
    plain_mode = post(client, crypto, message_fields("o_human2", "人工客服"), fmt=fmt, encrypted=False)
    assert "transfer_customer_service" in plain_mode.get_data(as_text=True)


def test_a_flood_from_one_sender_is_not_queued_ahead_of_others(client, crypto, redis_client):
    for i in range(40):
        post(client, crypto, message_fields("o_flood", f"头疼{i}", msg_id=50_000 + i))
    assert queued(redis_client) == 30  # the rest were acknowledged and dropped
    assert post(client, crypto, message_fields("o_calm", "头疼", msg_id=60_000)).get_data(as_text=True) == "success"
    assert queued(redis_client) == 31  # another patient still gets through at once


def test_redis_down_gives_a_quick_503_so_wechat_retries(settings, crypto):
    import time

    from triage import create_app
    from triage.redis_server import free_port
    from triage.runtime import runtime

    down = f"redis://127.0.0.1:{free_port()}/0"  # nothing listens there
    app = create_app({"TESTING": True, "SETTINGS": settings.model_dump() | {"redis_url": down}})
    started = time.monotonic()
    response = post(app.test_client(), crypto, message_fields("o_down", "头疼"))
    assert response.status_code == 503 and time.monotonic() - started < 5
    assert runtime.redis_url == down
