"""Short answers to the question just asked: "3天", "女，28", "没有", "是的".

A reply is read against the slot the question asked for. If it does not answer
that question (the patient wrote something else), ``None`` comes back and the
pipeline treats the text as more of the complaint.
"""

from __future__ import annotations

import re
from typing import Any

from triage.patient import cn_number, read_age, read_duration_days, read_severity

_BARE = re.compile(r"[\s，,。.！!？?、~～…]+")
_NO = re.compile(r"^(?:没有|没|无|不是|不会|不|否|没得|木有|没呢|并没有|都没有|没感觉|不觉得)")
_YES = re.compile(r"^(?:是的|是|有的|有|对|对的|嗯|恩|会|经常|偶尔|有点|有一点|好像有|确实|yes|y)", re.IGNORECASE)
_UNSURE = re.compile(r"不知道|不清楚|不确定|说不清|记不清|忘了|不记得|不太清楚|没注意")
_SEX = re.compile(r"男|女|儿子|闺女|姑娘|小伙")
_SEX_OF = {"儿子": "男", "小伙": "男", "闺女": "女", "姑娘": "女"}
_MONTHS_OLD = re.compile(r"(\d{1,2}|[一两二三四五六七八九十]{1,2})\s*个多?月")
_BARE_NUMBER = re.compile(r"^(\d{1,3})(?:岁|周岁)?$")
_APPROX_AGE = re.compile(r"([一二两三四五六七八九]十|[一二两三四五六七八九]十[一二三四五六七八九]|\d{1,2}0)多")


def is_unsure(text: str) -> bool:
    return bool(_UNSURE.search(text))


def yes_no(text: str) -> bool | None:
    bare = _BARE.sub("", text)
    if not bare:
        return None
    if _NO.match(bare):
        return False
    if _YES.match(bare):
        return True
    return None


def read_age_answer(text: str) -> float | None:
    """An age given on its own: "28", "3岁", "8个月", "六十多了"."""
    age = read_age(text)
    if age is not None:
        return age
    m = _MONTHS_OLD.search(text)
    if m and (months := cn_number(m.group(1))) is not None:
        return round(months / 12, 3)
    bare = _BARE.sub("", text)
    for part in re.split(r"[男女性的]", bare):
        m = _BARE_NUMBER.match(part)
        if m and 0 < int(m.group(1)) <= 120:
            return float(m.group(1))
    m = _APPROX_AGE.search(bare)
    if m and (value := cn_number(m.group(1)) if not m.group(1).isdigit() else float(m.group(1))):
        return value
    return None


def read_sex_answer(text: str) -> str | None:
    found = {_SEX_OF.get(m.group(0), m.group(0)) for m in _SEX.finditer(text)}
    return found.pop() if len(found) == 1 else None


def parse_answer(kind: str, text: str) -> dict[str, Any] | None:
    """Slot updates for an answer to a question of this kind, or None if it is no answer."""
    if kind in ("age_sex", "age", "sex"):
        updates: dict[str, Any] = {}
        if kind != "sex" and (age := read_age_answer(text)) is not None:
            updates["age"] = age
        if kind != "age" and (sex := read_sex_answer(text)) is not None:
            updates["sex"] = sex
        return updates or None
    if kind == "duration":
        updates = {}
        if (days := read_duration_days(text)) is not None:
            updates["duration_days"] = days
        if (severity := read_severity(text)) is not None:
            updates["severity"] = severity
        return updates or None
    if kind == "pregnancy":
        if re.search(r"怀孕|怀上|孕\d|有了", text) and yes_no(text) is not False:
            return {"pregnant": True}
        answer = yes_no(text)
        return None if answer is None else {"pregnant": answer}
    if kind == "symptom":
        answer = yes_no(text)
        return None if answer is None else {"present": answer}
    return None
