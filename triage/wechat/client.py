"""Send customer-service messages through wechatpy, against a configurable API base.

The access_token lives in Redis (wechatpy's ``RedisStorage``) so every process
shares it, and only one process refreshes it at a time (a Redis lock).
Errors are sorted into the two kinds the caller acts on: temporary (retry with
backoff) and permanent (give up, do not retry forever).
"""

from __future__ import annotations

import logging

import redis
import requests
from wechatpy import WeChatClient
from wechatpy.exceptions import WeChatClientException
from wechatpy.session.redisstorage import RedisStorage

log = logging.getLogger(__name__)

TOKEN_ERRORS = {40001, 40014, 42001}
TEMPORARY_ERRORS = {-1, 45009, 45011, 45047}


class WeChatSendError(Exception):
    def __init__(self, errcode: int | None, message: str, temporary: bool) -> None:
        super().__init__(f"{errcode}: {message}")
        self.errcode = errcode
        self.temporary = temporary


class _Client(WeChatClient):
    """wechatpy's client, pointed at our base URL, refreshing the token under a lock."""

    def __init__(self, appid: str, secret: str, api_base: str, store: redis.Redis, timeout: float) -> None:
        super().__init__(appid, secret, session=RedisStorage(store, prefix="wechat"), timeout=timeout, auto_retry=False)
        self.api_root = api_base.rstrip("/") + "/"
        self.API_BASE_URL = self.api_root + "cgi-bin/"
        self._redis = store

    def fetch_access_token(self, force: bool = False, stale: str | None = None):  # type: ignore[override]
        with self._redis.lock("wechat:token_refresh", timeout=15, blocking_timeout=10):
            current = self.session.get(self.access_token_key)
            if current and current != stale and not (force and stale is None):
                return {"access_token": current}  # another process refreshed it meanwhile
            res = self._http.post(
                self.api_root + "cgi-bin/stable_token",
                json={"grant_type": "client_credential", "appid": self.appid, "secret": self.secret,
                      "force_refresh": force},
                timeout=self.timeout,
            )  # fmt: skip
            res.raise_for_status()
            result = res.json()
            if result.get("errcode"):
                raise WeChatClientException(result["errcode"], result.get("errmsg"), client=self)
            expires_in = int(result.get("expires_in", 7200))
            # Keep a margin so no process uses a token in its last minutes.
            self.session.set(self.access_token_key, result["access_token"], max(60, expires_in - 300))
            return result


class WeChatSender:
    def __init__(self, store: redis.Redis, appid: str, secret: str, api_base: str, timeout: float = 5.0) -> None:
        self.client = _Client(appid, secret, api_base, store, timeout)

    def send_text(self, openid: str, content: str) -> None:
        self._call("message/custom/send", {"touser": openid, "msgtype": "text", "text": {"content": content}})

    def typing(self, openid: str, on: bool = True) -> None:
        """Best effort: a failed typing indicator never blocks the answer."""
        try:
            self._call("message/custom/typing", {"touser": openid, "command": "Typing" if on else "CancelTyping"})
        except WeChatSendError as exc:
            log.info("typing indicator failed: %s", exc)

    def download_media(self, media_id: str) -> tuple[bytes, str]:
        """A temporary media file (the patient's image): its bytes and content type."""
        try:
            res = self.client._http.get(self.client.api_root + "cgi-bin/media/get", timeout=self.client.timeout,
                                        params={"access_token": self.client.access_token, "media_id": media_id})  # fmt: skip
            res.raise_for_status()
        except requests.RequestException as exc:
            raise WeChatSendError(None, type(exc).__name__, temporary=True) from exc
        kind = res.headers.get("Content-Type", "").split(";")[0]
        if kind.endswith("json") or kind.startswith("text"):  # WeChat answers errors as JSON
            errcode = (res.json() or {}).get("errcode") if kind.endswith("json") else None
            raise WeChatSendError(errcode, "media not available", temporary=False)
        return res.content, kind or "image/jpeg"

    def text_is_safe(self, openid: str, content: str) -> bool:
        """WeChat content security (msgSecCheck v2). Only a "risky" verdict blocks; an outage
        of the check lets the text through, because a patient must never go unanswered."""
        try:
            result = self._call(self.client.api_root + "wxa/msg_sec_check", {"content": content[:2500], "version": 2, "scene": 2,
                                                      "openid": openid})  # fmt: skip
        except WeChatSendError as exc:
            log.warning("msgSecCheck unavailable, text allowed: %s", exc)
            return True
        return (result.get("result") or {}).get("suggest") != "risky"

    def _call(self, endpoint: str, data: dict) -> dict:
        token = None
        for attempt in range(2):  # the second attempt only after a token refresh
            try:
                token = self.client.access_token
                return self.client.post(endpoint, data=data, params={"access_token": token})
            except WeChatClientException as exc:
                errcode = int(exc.errcode) if exc.errcode is not None else None
                if errcode in TOKEN_ERRORS and attempt == 0:
                    self.client.fetch_access_token(force=True, stale=token)
                    continue
                from triage.metrics import WECHAT_ERRORS

                WECHAT_ERRORS.labels(str(errcode)).inc()
                if errcode is None:  # HTTP error status from WeChat's side
                    raise WeChatSendError(None, "HTTP error", temporary=True) from exc
                raise WeChatSendError(errcode, str(exc.errmsg), temporary=errcode in TEMPORARY_ERRORS) from exc
            except (requests.RequestException, redis.exceptions.LockError) as exc:
                raise WeChatSendError(None, type(exc).__name__, temporary=True) from exc
        raise WeChatSendError(40001, "token still invalid after refresh", temporary=True)
