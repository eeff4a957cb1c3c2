"""Red-flag rules against a labelled set of emergencies and near-misses.

knowledge/red_flag_examples.yaml holds everyday patient Chinese: true emergencies
(``expect: <category id>``) and near-misses (``expect: null``: negations, past
resolved events, figurative speech, chronic stable conditions, ordinary
complaints that share words with emergencies). The rules must catch the first
and leave the second alone. No timing is asserted here (speed belongs to the
benchmarks).
"""

from __future__ import annotations

import copy
import random
import re
from collections import Counter
from typing import Any

import pytest
import yaml

from triage.config import PROJECT_DIR
from triage.redflags import RedFlagHit, RedFlagRules

CASES_PATH = PROJECT_DIR / "knowledge" / "red_flag_examples.yaml"
RULES_PATH = PROJECT_DIR / "knowledge" / "red_flags.yaml"

CATEGORIES = (
    "cardiac",
    "stroke",
    "breathing",
    "anaphylaxis",
    "bleeding",
    "consciousness",
    "poisoning",
    "trauma",
    "vision",
    "testicular",
    "pregnancy",
    "fever_neuro",
    "infant_fever",
    "suicide",
)
FOOTER = "AI 导诊助手 · 仅供参考，不能替代医生诊断"
DOSE = re.compile(r"\d+\s*(mg|毫克|片|粒|ml|毫升|克)", re.IGNORECASE)
MIN_RECALL = 0.98
MAX_FALSE_ALARMS = 0.05


# ----------------------------------------------------------------------------- helpers


def load_cases() -> list[dict[str, Any]]:
    return yaml.safe_load(CASES_PATH.read_text("utf-8"))


CASES = load_cases()
EMERGENCIES = [c for c in CASES if c["expect"] is not None]
NEAR_MISSES = [c for c in CASES if c["expect"] is None]


def category_of(hit: RedFlagHit) -> str:
    """The category id of a hit: ``category`` if the hit has one, else its ``rule_id``
    (or the category id that the rule id starts with, e.g. ``cardiac.sweat``)."""
    for attr in ("category", "rule_id"):
        value = getattr(hit, attr, None)
        if value in CATEGORIES:
            return value
    rule_id = str(getattr(hit, "rule_id", ""))
    for category in CATEGORIES:
        if rule_id.startswith(category):
            return category
    return rule_id


def check(rules: RedFlagRules, case: dict[str, Any]) -> RedFlagHit | None:
    return rules.check(case["text"], age_years=case.get("age"), sex=case.get("sex"))


def signature(hit: RedFlagHit | None) -> tuple | None:
    if hit is None:
        return None
    return (getattr(hit, "rule_id", None), category_of(hit), getattr(hit, "name", None), hit.reply)


@pytest.fixture(scope="module")
def rules() -> RedFlagRules:
    return RedFlagRules.load(RULES_PATH)


@pytest.fixture(scope="module")
def results(rules) -> list[tuple[dict[str, Any], RedFlagHit | None]]:
    return [(case, check(rules, case)) for case in CASES]


# ----------------------------------------------------------------------------- the case file itself


def test_case_file_is_well_formed():
    assert isinstance(CASES, list) and len(CASES) >= 260
    texts = Counter()
    for case in CASES:
        assert set(case) <= {"text", "expect", "age", "sex"}, case
        assert isinstance(case["text"], str) and case["text"].strip(), case
        assert case["expect"] is None or case["expect"] in CATEGORIES, case
        if "age" in case:
            assert isinstance(case["age"], int | float) and 0 <= case["age"] < 130, case
        if "sex" in case:
            assert case["sex"] in ("男", "女"), case
        texts[case["text"]] += 1
    assert not [t for t, n in texts.items() if n > 1], "duplicate case texts"
    per_category = Counter(c["expect"] for c in EMERGENCIES)
    assert len(EMERGENCIES) >= 140 and len(NEAR_MISSES) >= 120
    for category in CATEGORIES:
        assert per_category[category] >= (15 if category in ("cardiac", "stroke", "suicide") else 6), category


# ----------------------------------------------------------------------------- recall and false alarms


def test_recall_and_false_alarms(results):
    misses = [(c, None) for c, hit in results if c["expect"] is not None and hit is None]
    false_alarms = [(c, hit) for c, hit in results if c["expect"] is None and hit is not None]
    caught = [(c, hit) for c, hit in results if c["expect"] is not None and hit is not None]
    wrong_category = [(c, hit) for c, hit in caught if category_of(hit) != c["expect"]]

    recall = len(caught) / len(EMERGENCIES)
    false_alarm_rate = len(false_alarms) / len(NEAR_MISSES)
    category_accuracy = (len(caught) - len(wrong_category)) / len(caught) if caught else 0.0

    print(f"\nrecall            {recall:.3f}  ({len(caught)}/{len(EMERGENCIES)} emergencies caught)")
    print(f"false-alarm rate  {false_alarm_rate:.3f}  ({len(false_alarms)}/{len(NEAR_MISSES)} near-misses hit)")
    print(f"category accuracy {category_accuracy:.3f}  ({len(caught) - len(wrong_category)}/{len(caught)} hits)")
    per_category = Counter(c["expect"] for c, _ in misses)
    for category in CATEGORIES:
        total = sum(1 for c in EMERGENCIES if c["expect"] == category)
        print(f"  {category:<14} {total - per_category[category]:>3}/{total}")
    if misses:
        print("misses:")
        for case, _ in misses:
            print(f"  [{case['expect']}] {case['text']}  (age={case.get('age')}, sex={case.get('sex')})")
    if false_alarms:
        print("false alarms:")
        for case, hit in false_alarms:
            print(f"  [{category_of(hit)}] {case['text']}  (age={case.get('age')}, sex={case.get('sex')})")
    if wrong_category:
        print("wrong category:")
        for case, hit in wrong_category:
            print(f"  expected {case['expect']}, got {category_of(hit)}: {case['text']}")

    assert recall >= MIN_RECALL, f"recall {recall:.3f} < {MIN_RECALL}"
    assert false_alarm_rate <= MAX_FALSE_ALARMS, f"false alarms {false_alarm_rate:.3f} > {MAX_FALSE_ALARMS}"


def test_every_category_is_reached(results):
    reached = {category_of(hit) for case, hit in results if hit is not None and category_of(hit) == case["expect"]}
    assert set(CATEGORIES) <= reached, f"never reached: {sorted(set(CATEGORIES) - reached)}"


# ----------------------------------------------------------------------------- robustness


def random_strings(count: int, seed: int = 20240611) -> list[str]:
    rng = random.Random(seed)
    words = "胸痛 出冷汗 嘴歪 说话不清 喘不上气 过敏 喉咙肿 吐血 黑便 晕倒 抽搐 喝农药 车祸 看不见 睾丸 怀孕 羊水破了 "
    words += "高烧 脖子硬 新生儿 发烧 不想活了 没有 不 否认 去年 笑死 但是 不过 39度 40 孕8周 两个月大 38.5 %s {}"
    marks = ["，", "。", "！", "？", ",", ".", ";", "\n", "\t", " ", "\u3000", "\u200b", "\ufeff", "\\", "(", "[", "*"]
    vocabulary = [*words.split(), *marks]
    emoji = [chr(c) for c in range(0x1F300, 0x1F64F)] + ["\u2764\ufe0f", "\U0001f468\u200d\U0001f469\u200d\U0001f467"]

    def random_char() -> str:
        roll = rng.random()
        if roll < 0.35:
            return chr(rng.randint(0x4E00, 0x9FFF))  # CJK
        if roll < 0.55:
            return chr(rng.randint(0x20, 0x7E))  # ASCII
        if roll < 0.7:
            return rng.choice(emoji)
        code = rng.randint(0, 0x10FFFF)
        while 0xD800 <= code <= 0xDFFF:  # no lone surrogates
            code = rng.randint(0, 0x10FFFF)
        return chr(code)

    strings = ["", " ", "\n", "\x00", "。", "，，，", "死", "想死", "120", "🙂" * 50]
    while len(strings) < count:
        kind = rng.random()
        if kind < 0.05:
            length = rng.randint(5_000, 50_000)  # very long
        elif kind < 0.15:
            length = 0
        else:
            length = rng.randint(1, 300)
        parts: list[str] = []
        size = 0
        while size < length:
            part = rng.choice(vocabulary) if rng.random() < 0.3 else random_char()
            parts.append(part)
            size += len(part)
        strings.append("".join(parts)[:length])
    return strings[:count]


def test_check_never_raises_on_random_strings(rules):
    rng = random.Random(7)
    ages = [None, 0, 0.05, 0.2, 1, 5, 30, 70, 120]
    sexes = [None, "男", "女"]
    hits = 0
    for text in random_strings(2000):
        hit = rules.check(text, age_years=rng.choice(ages), sex=rng.choice(sexes))
        assert hit is None or isinstance(hit, RedFlagHit)
        if hit is not None:
            hits += 1
            assert hit.reply.rstrip().endswith(FOOTER)
            assert not DOSE.search(hit.reply)
    print(f"\n{hits}/2000 random strings hit a rule")


# ----------------------------------------------------------------------------- replies


def test_every_reply_ends_with_the_notice_and_has_no_dose(results):
    hits = [hit for _, hit in results if hit is not None]
    assert hits
    for hit in hits:
        assert hit.reply.rstrip().endswith(FOOTER), hit.reply
        assert not DOSE.search(hit.reply), hit.reply


def test_suicide_reply_gives_the_hotline_and_cardiac_reply_gives_120(rules, results):
    suicide = rules.check("我不想活了")
    cardiac = rules.check("胸口剧痛，出了一身冷汗")
    assert suicide is not None and category_of(suicide) == "suicide"
    assert cardiac is not None and category_of(cardiac) == "cardiac"
    for _, hit in [(None, suicide), (None, cardiac), *results]:
        if hit is None:
            continue
        if category_of(hit) == "suicide":
            assert "12356" in hit.reply, hit.reply
        if category_of(hit) == "cardiac":
            assert "120" in hit.reply, hit.reply


# ----------------------------------------------------------------------------- loading


def test_from_dict_behaves_like_load(rules):
    from_dict = RedFlagRules.from_dict(yaml.safe_load(RULES_PATH.read_text("utf-8")))
    for case in CASES:
        assert signature(check(from_dict, case)) == signature(check(rules, case)), case["text"]


BROKEN = "([未闭合"


def _pattern_slots(data: dict[str, Any]) -> list[tuple[str, ...]]:
    """Where red_flags.yaml holds regexes: the first pattern of each kind (any, with, unless)
    found in the rules, and the first entry of the figurative and past-marker lists."""
    slots: list[tuple[str, ...]] = []
    for kind in ("any", "with", "unless"):
        for i, rule in enumerate(data.get("rules") or []):
            if rule.get(kind):
                slots.append(("rules", str(i), kind))
                break
    slots += [(key,) for key in ("figurative", "past_markers") if data.get(key)]
    return slots


def _break(data: dict[str, Any], slot: tuple[str, ...]) -> None:
    if slot[0] != "rules":
        data[slot[0]][0] = BROKEN
        return
    rule = data["rules"][int(slot[1])]
    value = rule[slot[2]]
    if isinstance(value, str):
        rule[slot[2]] = BROKEN
    elif value and isinstance(value[0], list):  # with: a list of groups
        value[0][0] = BROKEN
    else:
        value[0] = BROKEN


RULES_DATA = yaml.safe_load(RULES_PATH.read_text("utf-8")) if RULES_PATH.exists() else {}


@pytest.mark.parametrize("slot", _pattern_slots(RULES_DATA) or [("rules", "0", "any")], ids="/".join)
def test_an_invalid_regex_raises_value_error(slot):
    data = copy.deepcopy(yaml.safe_load(RULES_PATH.read_text("utf-8")))
    _break(data, slot)
    with pytest.raises(ValueError):
        RedFlagRules.from_dict(data)


def test_empty_rules_raise_value_error():
    with pytest.raises(ValueError):
        RedFlagRules.from_dict({})


# ----------------------------------------------------------------------------- age


def test_infant_fever_depends_on_the_age_argument(rules):
    baby = rules.check("宝宝发烧38.5度", age_years=0.1)
    assert baby is not None and category_of(baby) == "infant_fever"
    assert rules.check("宝宝发烧38.5度", age_years=5) is None
