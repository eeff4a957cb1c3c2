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
_AGE_MONTHS = re.compile(
    r"(?<![孕怀\d.])" + _NUM + r"\s*(?:个多?月(?=大|的宝|的孩|的婴|宝宝|婴儿|男婴|女婴)|月龄|个多?月大|月大)"
)
_AGE_DAYS = re.compile(_NUM + r"\s*(?:天大|天的宝宝|天新生儿)")
_AGE_PAIR = re.compile(r"(?:^|[，,\s])(男|女)[，,、\s]*(\d{1,3})(?:岁)?(?:$|[，,\s。])")
_NEWBORN = re.compile(r"新生儿|刚出生|出生\d*天|满月")
# 儿子/女儿 are left out: parents ask about grown-up children too.
_CHILD_WORDS = re.compile(
    r"宝宝|婴儿|幼儿|婴幼儿|小孩|孩子|小朋友|患儿|宝贝|小儿|儿童|新生儿|[一二两三四五六七八九十\d]岁[的半]?(?:男孩|女孩|娃)"
)
_MALE = re.compile(r"男性|男士|男孩|男，|男,|^男|[，,、\s]男$|儿子|老公|丈夫|我爸|父亲|爷爷|外公|先生|阴茎|睾丸|前列腺|包皮|阴囊")
_FEMALE = re.compile(
    r"女性|女士|女孩|女，|女,|^女|女儿|老婆|妻子|我妈|母亲|奶奶|外婆|怀孕|月经|例假|大姨妈|阴道|子宫|卵巢|白带|乳房|孕"
)
_PREGNANT = re.compile(r"怀孕|怀上|孕\d+(?:周|\+\d)|孕期|妊娠|早孕|孕妇|有喜|怀了|胎儿|胎动|产检|孕[早中晚]期|孕\d+个?月")
# Words that name a pregnancy without there being one: a denial, a wish, a fear, a question.
_NOT_PREGNANT = re.compile(
    r"(?:没|没有|未|不是|排除|不想|想|准备|打算|计划|怕|担心|害怕|避免|能不能|会不会|是不是|可能|如何|怎么|怎样)"
    r"(?:怀孕|怀上)|怀孕(?:了)?吗|怀不上|备孕|不孕|未孕|避孕"
)
# Gestation as the patient states it: "孕30周", "怀孕8个月", "孕晚期".
_GESTATION = re.compile(r"(?:孕|怀孕|怀了|怀上)(?:了)?(?:第)?" + _NUM + r"\s*(?:\+\d\s*)?(周|个多?月|(?<=\+\d))")
_GESTATION_STAGE = {"孕早期": 8.0, "孕中期": 20.0, "孕晚期": 32.0, "临产": 39.0, "快生了": 38.0, "预产期": 38.0}


# "孕20周" is a pregnancy and "一天三次" a frequency, neither is how long the complaint lasted.
_DURATION = re.compile(
    r"(?<![孕怀\d.])"
    + _NUM
    + r"\s*(?:多|来|余)?\s*(个多?小时|小时|天|日|个?周|个?星期|个?礼拜|个多?月|月|年)(?:多|左右)?"
    r"(?![^，,。；;\s]{0,4}次)"
)
_DURATION_UNIT_DAYS = {"小时": 1 / 24, "天": 1, "日": 1, "周": 7, "星期": 7, "礼拜": 7, "月": 30, "年": 365}
_DURATION_WORDS = (
    (re.compile(r"刚刚|刚才|刚开始|突然|一会儿|几分钟|半小时"), 0.02),
    (re.compile(r"今天|今早|今晨|早上开始|下午开始|晚上开始|几个小时"), 0.3),
    (re.compile(r"昨天|昨晚|昨日|一天了"), 1),
    (re.compile(r"前天|这两天|两三天|几天|这几天"), 3),
    (re.compile(r"上周|一个星期|一礼拜|这周"), 7),
    (re.compile(r"半个月|这段时间|最近一段"), 15),
    (re.compile(r"好几个月|几个月|半年"), 120),
    (re.compile(r"好几年|很多年|多年|几年|从小|长期|一直都"), 730),
)
_SEVERE = re.compile(r"剧烈|剧痛|特别疼|特别痛|非常疼|非常痛|疼得厉害|痛得厉害|很厉害|特别厉害|非常严重|很严重|受不了|忍不了|"
                     r"难以忍受|疼得睡不着|痛得睡不着|疼醒|痛醒|直不起腰|要命")  # fmt: skip
_MODERATE = re.compile(r"挺疼|挺痛|挺难受|挺严重|比较疼|比较痛|比较严重|比较难受|蛮疼|中等|一般般")
_MILD = re.compile(r"轻微|有点|有些|一点点|稍微|还好|还行|不太|不严重|不重|能忍|可以忍|偶尔|时有时无|不算")
_SCORE = re.compile(r"(?<!\d)(10|[0-9])\s*分")
_TEMPERATURE = re.compile(r"(3[5-9](?:\.\d)?|4[0-2](?:\.\d)?)\s*(?:度|℃|°)")
_HIGH_FEVER_WORDS = re.compile(r"高烧|高热|烧到四十|四十度|三十九度")


@dataclass(frozen=True)
class PatientFacts:
    age_years: float | None = None
    sex: str | None = None  # "男" | "女"
    pregnant: bool = False
    probable_child: bool = False
    duration_days: float | None = None
    severity: str | None = None  # "mild" | "moderate" | "severe"
    temperature: float | None = None  # highest body temperature mentioned, °C
    gestation_weeks: float | None = None  # weeks of pregnancy, when the patient says so


def cn_number(token: str) -> float | None:
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
        if m and (value := cn_number(m.group(1))) is not None and 0 <= value * scale <= 120:
            half = 0.5 if m.group(0).endswith("岁半") else 0.0
            return round(value * scale + half, 3)
    m = _AGE_PAIR.search(text)
    if m:
        return float(m.group(2))
    if _NEWBORN.search(text):
        return 0.05
    return None


def read_duration_days(text: str) -> float | None:
    """How long the complaint has lasted: "3天", "两周", "半年多", "昨天开始"."""
    m = _DURATION.search(text)
    if m and (value := cn_number(m.group(1))) is not None:
        unit = m.group(2).replace("多", "").replace("个", "")
        return round(value * _DURATION_UNIT_DAYS.get(unit, 1), 3)
    for pattern, days in _DURATION_WORDS:
        if pattern.search(text):
            return days
    return None


def read_severity(text: str) -> str | None:
    m = _SCORE.search(text)
    if m:
        score = int(m.group(1))
        return "severe" if score >= 7 else "moderate" if score >= 4 else "mild"
    if _SEVERE.search(text):
        return "severe"
    if _MODERATE.search(text):
        return "moderate"
    if _MILD.search(text):
        return "mild"
    return None


def read_temperature(text: str) -> float | None:
    values = [float(v) for v in _TEMPERATURE.findall(text)]
    if values:
        return max(values)
    return 39.0 if _HIGH_FEVER_WORDS.search(text) else None


def read_pregnancy(text: str) -> bool:
    """A pregnancy the patient is in now, not one denied, wished for or feared."""
    return bool(_PREGNANT.search(_NOT_PREGNANT.sub("", text)))


def read_gestation_weeks(text: str) -> float | None:
    m = _GESTATION.search(text)
    if m and (value := cn_number(m.group(1))) is not None:
        weeks = value * 4.3 if "月" in m.group(2) else value
        return round(weeks, 1) if 1 <= weeks <= 43 else None
    return next((weeks for word, weeks in _GESTATION_STAGE.items() if word in text), None)


def read_facts(
    text: str,
    age_years: float | None = None,
    sex: str | None = None,
    pregnant: bool | None = None,
    duration_days: float | None = None,
    severity: str | None = None,
) -> PatientFacts:
    """Explicit arguments (the conversation's slots, the mini-program's profile, the
    predict input) win over what the text says."""
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
        pregnant=(read_pregnancy(text) if pregnant is None else pregnant) and sex != "男",
        probable_child=(age_years < 14) if age_years is not None else bool(_CHILD_WORDS.search(text)),
        duration_days=duration_days if duration_days is not None else read_duration_days(text),
        severity=severity or read_severity(text),
        temperature=read_temperature(text),
        gestation_weeks=read_gestation_weeks(text),
    )
