"""Passive replies: the body returned to WeChat in the push response itself. We use one
only to hand a conversation to a human agent (``transfer_customer_service``); every
other answer goes out later through the customer-service message API."""

from __future__ import annotations

import json
import secrets
import time

from triage.wechat.crypto import PushCrypto
from triage.wechat.parser import IncomingMessage


def transfer_to_agent(message: IncomingMessage, fmt: str, crypto: PushCrypto | None) -> tuple[str, str]:
    """Return ``(body, mimetype)``; encrypted when the push came in safe mode."""
    now = str(int(time.time()))
    fields = {"ToUserName": message.from_user, "FromUserName": message.to_user, "CreateTime": now,
              "MsgType": "transfer_customer_service"}  # fmt: skip
    plain = _render(fields, fmt)
    if crypto is None:
        return plain, _mimetype(fmt)
    nonce = secrets.token_hex(8)
    encrypt, signature, timestamp = crypto.encrypt(plain, nonce, now)
    wrapped = {"Encrypt": encrypt, "MsgSignature": signature, "TimeStamp": timestamp, "Nonce": nonce}
    return _render(wrapped, fmt), _mimetype(fmt)


def _render(fields: dict[str, str], fmt: str) -> str:
    if fmt == "json":
        return json.dumps(fields, ensure_ascii=False)
    inner = "".join(
        f"<{k}>{v}</{k}>" if k in ("CreateTime", "TimeStamp") else f"<{k}><![CDATA[{v}]]></{k}>"
        for k, v in fields.items()
    )
    return f"<xml>{inner}</xml>"


def _mimetype(fmt: str) -> str:
    return "application/json" if fmt == "json" else "application/xml"
