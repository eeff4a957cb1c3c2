"""Push messages to the webhook exactly as WeChat does (signed, optionally AES
encrypted, XML or JSON), and read replies back from the fake WeChat API.
Used by ``triage demo``, the tests and the benchmarks."""

from __future__ import annotations

import json
import secrets
import time
from typing import Any

import requests

from triage.wechat.crypto import PushCrypto


def message_fields(openid: str, text: str, msg_id: int | None = None, to_user: str = "gh_triage") -> dict[str, Any]:
    return {
        "ToUserName": to_user,
        "FromUserName": openid,
        "CreateTime": int(time.time()),
        "MsgType": "text",
        "Content": text,
        "MsgId": msg_id if msg_id is not None else secrets.randbits(62),
    }


def render(fields: dict[str, Any], fmt: str) -> str:
    if fmt == "json":
        return json.dumps(fields, ensure_ascii=False)
    inner = "".join(
        f"<{k}>{v}</{k}>" if isinstance(v, int) else f"<{k}><![CDATA[{v}]]></{k}>" for k, v in fields.items()
    )
    return f"<xml>{inner}</xml>"


def build_push(
    crypto: PushCrypto, fields: dict[str, Any], fmt: str = "xml", encrypted: bool = True
) -> tuple[bytes, dict[str, str], dict[str, str]]:
    """Return ``(body, query, headers)`` for one push."""
    nonce = secrets.token_hex(5)
    headers = {"Content-Type": "application/json" if fmt == "json" else "text/xml"}
    if encrypted:
        body, query = crypto.encrypted_body(render(fields, fmt), fmt, str(fields.get("ToUserName", "")), nonce)
        return body, query, headers
    timestamp = str(int(time.time()))
    query = {"signature": crypto.sign(timestamp, nonce), "timestamp": timestamp, "nonce": nonce}
    return render(fields, fmt).encode(), query, headers


def push(
    web_url: str, crypto: PushCrypto, fields: dict[str, Any], fmt: str = "xml", encrypted: bool = True,
    session: requests.Session | None = None,
) -> requests.Response:  # fmt: skip
    body, query, headers = build_push(crypto, fields, fmt, encrypted)
    return (session or requests).post(f"{web_url}/wechat/push", params=query, data=body, headers=headers, timeout=10)


def replies_for(fake_url: str, openid: str) -> list[dict[str, Any]]:
    return requests.get(f"{fake_url}_fake/messages", params={"touser": openid}, timeout=5).json()


def wait_for_replies(fake_url: str, openid: str, count: int = 1, timeout: float = 60.0) -> list[dict[str, Any]]:
    deadline = time.monotonic() + timeout
    while True:
        found = replies_for(fake_url, openid)
        if len(found) >= count or time.monotonic() > deadline:
            return found
        time.sleep(0.05)
