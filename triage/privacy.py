"""Pseudonymous user references: logs and Redis keys carry a keyed hash, never an openid."""

from __future__ import annotations

import hashlib
import hmac


def user_ref(openid: str, secret: str) -> str:
    return hmac.new(secret.encode(), openid.encode(), hashlib.sha256).hexdigest()[:16]
