"""Signatures and AES safe mode for message pushes.

wechatpy provides the signature and the AES cipher; this module only adds the
JSON flavour of the push (which wechatpy parses as XML only) and the
encryption side that the demo and tests use to push exactly as WeChat does.
"""

from __future__ import annotations

import base64
import hmac
import json
import time

from wechatpy.crypto import PrpCrypto
from wechatpy.exceptions import InvalidAppIdException
from wechatpy.utils import WeChatSigner


def _signature(*parts: str) -> str:
    """WeChat's SHA1 over the sorted parts (wechatpy's signer)."""
    signer = WeChatSigner()
    signer.add_data(*parts)
    return str(signer.signature)


class SignatureError(Exception):
    """The request was not signed with our Token."""


class DecryptError(Exception):
    """The ciphertext could not be decrypted or belongs to another app."""


class PushCrypto:
    def __init__(self, token: str, aes_key: str, appid: str) -> None:
        self.token = token
        self.appid = appid
        self._prp = PrpCrypto(_decode_key(aes_key))

    # --- plain mode -------------------------------------------------------------------
    def check_signature(self, signature: str, timestamp: str, nonce: str) -> None:
        expected = _signature(self.token, timestamp, nonce)
        if not hmac.compare_digest(expected, signature or ""):
            raise SignatureError("bad signature")

    # --- safe mode --------------------------------------------------------------------
    def decrypt(self, encrypt: str, msg_signature: str, timestamp: str, nonce: str) -> str:
        expected = _signature(self.token, timestamp, nonce, encrypt)
        if not hmac.compare_digest(expected, msg_signature or ""):
            raise SignatureError("bad msg_signature")
        try:
            return self._prp.decrypt(encrypt, self.appid)
        except InvalidAppIdException as exc:
            raise DecryptError("message for another appid") from exc
        except Exception as exc:  # bad base64, padding, length: all mean a forged body
            raise DecryptError("cannot decrypt") from exc

    def encrypt(self, plaintext: str, nonce: str, timestamp: str | None = None) -> tuple[str, str, str]:
        """Return ``(encrypt, msg_signature, timestamp)`` as WeChat would send them."""
        timestamp = timestamp or str(int(time.time()))
        encrypt = self._prp.encrypt(plaintext, self.appid).decode()
        return encrypt, _signature(self.token, timestamp, nonce, encrypt), timestamp

    def sign(self, timestamp: str, nonce: str) -> str:
        return _signature(self.token, timestamp, nonce)

    def encrypted_body(self, plaintext: str, fmt: str, to_user: str, nonce: str) -> tuple[bytes, dict[str, str]]:
        """Build a safe-mode push body and its query string (demo, tests, bench)."""
        encrypt, msg_signature, timestamp = self.encrypt(plaintext, nonce)
        if fmt == "json":
            body = json.dumps({"ToUserName": to_user, "Encrypt": encrypt}).encode()
        else:
            body = f"<xml><ToUserName><![CDATA[{to_user}]]></ToUserName><Encrypt><![CDATA[{encrypt}]]></Encrypt></xml>"
            body = body.encode()
        query = {
            "signature": self.sign(timestamp, nonce),
            "timestamp": timestamp,
            "nonce": nonce,
            "encrypt_type": "aes",
            "msg_signature": msg_signature,
        }
        return body, query


def _decode_key(aes_key: str) -> bytes:
    key = base64.b64decode(aes_key + "=")
    if len(key) != 32:
        raise ValueError("EncodingAESKey must decode to 32 bytes")
    return key

