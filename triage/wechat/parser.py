"""Parse a push body (XML or JSON) into an :class:`IncomingMessage`, safely.

XML goes through defusedxml with DTDs and entities forbidden, so an XML bomb
or an external entity is refused before anything is expanded.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass

from defusedxml import ElementTree as SafeET
from defusedxml.common import DefusedXmlException

SUPPORTED_TYPES = {"text", "image", "miniprogrampage", "event"}
MAX_TEXT_CHARS = 2000


class PushError(Exception):
    """A push we refuse; ``status`` is the HTTP status to answer with."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


@dataclass(frozen=True)
class IncomingMessage:
    msg_type: str
    from_user: str
    to_user: str
    create_time: int
    msg_id: str = ""
    content: str = ""
    event: str = ""
    pic_url: str = ""
    media_id: str = ""
    title: str = ""
    page_path: str = ""

    @property
    def dedup_key(self) -> str:
        """MsgId when WeChat gives one; events are identified by sender and time."""
        return self.msg_id or f"{self.from_user}:{self.create_time}:{self.event or self.msg_type}"

    @property
    def is_supported(self) -> bool:
        if self.msg_type == "event":
            return self.event == "user_enter_tempsession"
        return self.msg_type in SUPPORTED_TYPES

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


def parse_xml_fields(body: bytes) -> dict[str, str]:
    try:
        root = SafeET.fromstring(body, forbid_dtd=True, forbid_entities=True, forbid_external=True)
    except DefusedXmlException as exc:
        raise PushError(400, f"forbidden XML construct: {type(exc).__name__}") from exc
    except SafeET.ParseError as exc:
        raise PushError(400, "malformed XML") from exc
    if root.tag != "xml":
        raise PushError(400, "root element must be <xml>")
    return {child.tag: (child.text or "").strip() for child in root}


def parse_json_fields(body: bytes) -> dict[str, str]:
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise PushError(400, "malformed JSON") from exc
    if not isinstance(data, dict):
        raise PushError(400, "JSON body must be an object")
    return {str(k): "" if v is None else str(v) for k, v in data.items() if not isinstance(v, (dict, list))}


def parse_fields(body: bytes, fmt: str) -> dict[str, str]:
    return parse_json_fields(body) if fmt == "json" else parse_xml_fields(body)


def to_message(fields: dict[str, str]) -> IncomingMessage:
    msg_type = fields.get("MsgType", "").strip().lower()
    from_user = fields.get("FromUserName", "").strip()
    if not msg_type or not from_user:
        raise PushError(400, "MsgType and FromUserName are required")
    try:
        create_time = int(fields.get("CreateTime") or 0)
    except ValueError as exc:
        raise PushError(400, "CreateTime must be an integer") from exc
    return IncomingMessage(
        msg_type=msg_type,
        from_user=from_user[:128],
        to_user=fields.get("ToUserName", "")[:128],
        create_time=create_time,
        msg_id=fields.get("MsgId", "")[:64],
        content=fields.get("Content", "")[:MAX_TEXT_CHARS],
        event=fields.get("Event", ""),
        pic_url=fields.get("PicUrl", "")[:1024],
        media_id=fields.get("MediaId", "")[:256],
        title=fields.get("Title", "")[:256],
        page_path=fields.get("PagePath", "")[:512],
    )
