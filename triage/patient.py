"""Facts about the patient read from their own words: age, sex, pregnancy.

Only explicit statements count (``3岁``, ``女，28``, ``怀孕20周``); a vague word
such as 孩子 marks a probable child but sets no age, because parents also ask
about grown-up children.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_CN_DIGITS = {"一": 1, "两": 2, "二": 2, "三": 3, "四": 4, "五": 5, "六": 6, "七": 7, "八": 8, "九": 9, "十": 10,
              "半": 0.5}  # fmt: skip
_NUM = r"(\d{1,3}(?:\.\d)?|[一两二三四五六七八九十半]{1,3})"
_AGE_YEARS = re.compile(_NUM + r"\s*(?:周岁|岁半|岁)")
# Months count as an age only when they describe a baby, not a pregnancy or an illness.
_AGE_MONTHS = re.compile(r"(?<![孕怀])" + _NUM + r"\s*(?:个多?月(?=大|的宝|的孩|的婴|宝宝|婴儿|男婴|女婴)|月龄|个多?月大|月大)")
_AGE_DAYS = re.compile(_NUM + r"\s*(?:天大|天的宝宝|天新生儿)")
_AGE_PAIR = re.compile(r"(?:^|[，,\s])(男|女)[，,、\s]*(\d{1,3})(?:岁)?(?:$|[，,\s。])")
_NEWBORN = re.compile(r"新生儿|刚出生|出生\d*天|满月")
# 儿子/女儿 are left out: parents ask about grown-up children too.
_CHILD_WORDS = re.compile(r"宝宝|婴儿|幼儿|婴幼儿|小孩|孩子|小朋友|患儿|宝贝|小儿|儿童|新生儿|[一二两三四五六七八九十\d]岁[的半]?(?:男孩|女孩|娃)")
_MALE = re.compile(r"男性|男士|男孩|男，|男,|^男|儿子|老公|丈夫|我爸|父亲|爷爷|外公|先生|阴茎|睾丸|前列腺|包皮|阴囊")
_FEMALE = re.compile(r"女性|女士|女孩|女，|女,|^女|女儿|老婆|妻子|我妈|母亲|奶奶|外婆|怀孕|月经|例假|大姨妈|阴道|子宫|卵巢|白带|乳房|孕")
_PREGNANT = re.compile(r"怀孕|怀上|孕\d+周|孕期|妊娠|早孕|孕妇|有喜|怀了|胎儿|胎动|产检|孕[早中晚]期|孕\d+个?月")


@dataclass(frozen=True)
class PatientFacts:
    age_years: float | None = None
    sex: str | None = None  # "男" | "女"
    pregnant: bool = False
    probable_child: bool = False


def _number(token: str) -> float | None:
    if token.replace(".", "", 1).isdigit():
        return float(token)
    if token in _CN_DIGITS:
        return float(_CN_DIGITS[token])
    if len(token) == 2 and token[0] == "十":
        return 10 + _CN_DIGITS.get(token[1], 0)
    if len(token) >= 2 and token[-1] == "十":
        return _CN_DIGITS.get(token[0], 0) * 10
    if len(token) == 3 and token[1] == "十":
        return _CN_DIGITS.get(token[0], 0) * 10 + _CN_DIGITS.get(token[2], 0)
    return None


def read_age(text: str) -> float | None:
    for pattern, scale in ((_AGE_DAYS, 1 / 365), (_AGE_MONTHS, 1 / 12), (_AGE_YEARS, 1.0)):
        m = pattern.search(text)
        if m and (value := _number(m.group(1))) is not None and 0 <= value * scale <= 120:
            return round(value * scale, 3)
    m = _AGE_PAIR.search(text)
    if m:
        return float(m.group(2))
    if _NEWBORN.search(text):
        return 0.05
    return None


def read_facts(text: str, age_years: float | None = None, sex: str | None = None) -> PatientFacts:
    """Explicit arguments (the mini-program's profile, the predict input) win over the text."""
    if age_years is None:
        age_years = read_age(text)
    if sex not in ("男", "女"):
        pair = _AGE_PAIR.search(text)
        if pair:
            sex = pair.group(1)
        elif _FEMALE.search(text) and not _MALE.search(text):
            sex = "女"
        elif _MALE.search(text) and not _FEMALE.search(text):
            sex = "男"
        else:
            sex = None
    return PatientFacts(
        age_years=age_years,
        sex=sex,
        pregnant=bool(_PREGNANT.search(text)) and sex != "男",
        probable_child=(age_years < 14) if age_years is not None else bool(_CHILD_WORDS.search(text)),
    )
