"""Traditional to Simplified Chinese: patients from Hong Kong, Taiwan and overseas (and some
phone keyboards) type traditional characters; the knowledge base and the rules are written
in simplified ones. OpenCC (its phrase tables ship in the wheel) does the conversion."""

from __future__ import annotations

import functools

from opencc import OpenCC


@functools.cache
def _converter() -> OpenCC:
    return OpenCC("t2s")


def to_simplified(text: str) -> str:
    """The text with traditional characters written as simplified ones; simplified text is unchanged."""
    return _converter().convert(text) if text else text
