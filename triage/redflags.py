"""Deterministic red-flag rules: emergencies are recognised by rules, before anything else.

The rules are data (``knowledge/red_flags.yaml``; the staff editor keeps them in
the database): word classes, spelling variants, patterns, required co-occurrences,
exclusions, age and sex conditions, and reply templates. A hit is answered from
its template at once; no model output can change it.

How a message is read:
1. normalised (full-width to half-width, lowercase, runs of spaces become a comma);
2. traditional characters (OpenCC, then ``characters`` for variants it keeps), common
   typing slips and English words are mapped to one spelling (``spellings``: 說話 -> 说话,
   历害 -> 厉害, 冷汉 -> 冷汗, passed out -> 晕倒);
3. figurative speech is blanked out (``figurative``: 热死了, 笑死, 尴尬得想死);
4. split into clauses; a clause about the past (``past_markers``) is dropped, and so is a
   hypothetical one ("如果…", a scene on television: ``hypothetical``), except for the rules
   marked ``always`` ("如果我死了，会有人难过吗" is still heard);
   a story about the past goes on after its marker ("上个月抢救过，当时喉咙肿喘不上气"): when
   the message later says it is over (``past_scope.recovered``: 现在都好了, 一直很稳定), the
   clauses after the marker are the story too, until one speaks of now again
   (``past_scope.present``: 今天, 这次, 又, 突然); otherwise only what is told of it
   (``past_scope.told``: "医生说是热性惊厥"); a past that has not ended is no past
   (``past_scope.ongoing``: "上周开始胸口疼");
5. each rule: one ``any`` pattern, and one pattern of every ``with`` group, must
   occur in a clause where they are not negated; no ``unless`` pattern anywhere, except in
   the background: what a message tells of the past before it comes to today
   (``past_scope.onset``: "之前偶尔隐隐作痛，几分钟就好了。今天夜里疼醒…") cannot excuse today,
   nor can an excuse named only to be denied ("不是血丝，是满满一口").
A message that only asks about a condition and names no patient ("心梗挂什么科",
"溺水急救知识": ``general_questions``), tells a story ("电视剧里男主捂着胸口倒下",
``general_questions.story``), only wants to learn ("心梗有什么征兆，我爸六十了，想提前了解":
``general_questions.lesson``), or is about an animal ("我家狗被车撞了": ``animals``), is
answered by the rules marked ``always`` only.

Patterns may name a word class as ``{NAME}``; ``classes`` defines them (a class
may use other classes), so the vocabulary for "chest", "sweating" or "one side"
is written once and shared by every rule that needs it.
"""

from __future__ import annotations

import itertools
import re
import unicodedata
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from triage.chinese import to_simplified

# Clause boundaries. A dot between digits is a decimal point ("38.5"), not a full stop;
# "不过" inside "喘不过气" / "醒不过来" is not "but".
_CLAUSE = re.compile(
    r"[，,。；;！!？?\n]|(?<!\d)\.|\.(?!\d)|但是|(?<![透喘吸说醒缓转挺熬撑活憋])不过(?![气来去])|可是|然而"
)
_ASCII_WORD = re.compile(r"[a-z0-9]")
_CLASS_REF = re.compile(r"\{([A-Z][A-Z0-9_]*)\}")
# Phrases that contain 不/没/无/别 but deny nothing ("喘不上气" is breathlessness, not its absence).
_FIXED_NEGATIVE_WORDS = re.compile(
    # inability, failure and loss are the symptoms themselves
    "喘不|上不来|透不过|吸不|进不去|叫不|喊不|拍不|推不|说不|讲不|止不住|流不止|不听使唤|使不上|动不了|不能动|不会动|"
    "不能呼吸|不能说|不会说|抬不|举不|拿不|握不|站不|坐不|走不|起不|躺不|咽不|睁不|压不|按不|堵不|停不|醒不|看不|"
    "听不|不缓解|不管用|不见好|不一样|不褪|不清|不太清|不大清|不利索|不连贯|不灵|不好使|不遂|不出(?!汗|血)|不让|不止|不住|"
    "不下|不开|不来|不了|不起|不到|不动|不停|不断|不行|不得了|不舒服|不适|不对劲|不得劲|不舒坦|不(?:太|大|怎么)(?:舒服|得劲|对劲|舒坦)|不安|不记得|"
    "不省人事|人事不省|受不|忍不|无力|无法|没法|没办法|无效|无意识|无精打采|"
    "没劲|没力|没了|没有了|没用|没效|没好|没缓|没停|没止|没完|没煮熟|没熟|没精神|"
    "(?:从来|从|这辈子|一辈子|长这么大)没(?:有)?(?:这么|那么)|没有过的|"
    # no response, no breath: signs of collapse
    "不答应|不应|不(?:太|大|怎么)(?:应|答应)|不(?:太|大|怎么)?理|一动不动|不喘气|不搭理|不认|不吭声|不出声|不回答|不回应|不说话|不(?:怎么|太|大)?睁眼|不(?:太|大)?愿意(?:动|转)|"
    "不敢(?:动|转)|没反应|没有反应|没回应|没有回应|没动静|没有动静|没动|没睁眼|没声音|没有声音|没知觉|没有知觉|"
    "没感觉|没意识|没有意识|没呼吸|没有呼吸|没气|没心跳|没有心跳|没脉|没醒|不(?:怎么|太|大)?醒|不接|打不通|联系不上|找不到|"
    # hopelessness is what self-harm rules look for
    "恨不得|不想|不如|不配|不值得|不下去|活不|生不如死|没意思|没意义|没盼头|没必要|没脸|毫无|没有我|不在了|就不用|"
    "不用面对|牵挂|不(?:会)?再(?:麻烦|拖累|打扰)|不能(?:再)?(?:孝顺|陪|照顾)|别难过|不要难过|别伤心|别哭|不想(?:再)?止血|再也不(?:要|想)?醒|不要(?:再)?醒|别(?:再)?醒|"
    # ordinary words
    "不少|不光|不仅|不但|不只|不管|不时|不好意思|无缘无故|"
    "永别|诀别|告别|道别|辞别|作别|送别|拜别|离别|分别|区别|特别|别人|别的|别处|性别|级别|类别|别扭|个别|识别|鉴别|辨别|别提"
)
# Phrases with a negation character that are not a denial of what follows; also questions
# ("是不是心梗", "会不会中风" ask, they do not deny).
_NOT_NEGATIONS = re.compile(
    "不小心|不知道|不知|不一会|不久|不注意|没注意|没看住|没留神|不留神|没多久|没过多久|没一会|没几|不到|"
    "没想到|不料|没见过|没吃过|没用过|没打过|是不是|是否|会不会|能不能|要不要|该不该|用不用|可不可以|行不行|好不好|对不对|不得不|"
    "尿不湿"
)
# A negation reaches over a short list ("没有胸痛、出汗和呼吸困难") unless something breaks it.
_LIST_JOINERS = re.compile("[、和及与或跟]|以及|或者")
_LIST_BREAKERS = re.compile("就|突然|然后|结果|了|又|才|后|时|但|只|却|还|有点|一直|已经|现在")
# A clause that ends by denying what it lists: "胸痛、出汗都没有", "胸痛不明显".
_DENIED_AFTER = re.compile(
    "(?:[、和及与或跟][^，,]{1,8}?)*(?:都|也|均|全都|全)?(?:没有|无|不明显|没出现|没发生)(?:过)?[呢啊的哦]*"
)
# "不是血丝", "并不是偏头痛": an excuse named only to be denied (read just before an ``unless`` match)
_DENIED_EXCUSE = re.compile("(?:不是|并非|不像是?|而非)(?:那种|什么)?$")
# "和平时的坠胀不一样": the usual complaint is named only to say this one is unlike it.
_UNLIKE_AFTER = re.compile("(?:完全|很|也|都)?不(?:太|大)?一样|不同")
_NUM = "(?:[1-9]\\d?|[一二两三四五六七八九十几]{1,3})"
_BABY = "(?:宝宝|宝贝|婴儿|孩子|娃娃?|小孩|儿子|女儿|闺女|孙子|孙女|外孙女?|侄子|侄女|外甥女?|小宝|大宝|二宝|老大|老二|老三|崽崽?|小家伙|新生儿)"
_MONTHS = "(?:[12]|[一两二])个?(?:多|半)?月(?!份)"
_INFANT_AGE = re.compile(
    f"新生儿|新生宝宝|刚出生|(?:出生|生下来|落地)(?:才|刚|第)?{_NUM}(?:多|来|几)?(?:天|周|个?星期)|出生.{{0,6}}第{_NUM}天|满月|月子里|坐月子|没满月|未满月"
    f"|(?<![孕怀\\d]){_NUM}(?:多|来)?(?:天|周|个?星期)(?!岁)(?:大|的)?[，,]?{_BABY}"
    f"|(?<![孕怀\\d]){_MONTHS}(?:大|的)"
    f"|(?<![孕怀\\d]){_MONTHS}[，,]?{_BABY}"
    f"|{_BABY}(?:出生|现在|今天|已经|才|刚|刚满|满|是|第|[，,\\s])*(?:{_NUM}(?:多|来)?(?:天|周|个?星期)(?!岁)|{_MONTHS})"
    f"|(?<![孕怀\\d])(?:{_NUM}(?:天|周|个?星期)|{_MONTHS})大"
    f"|(?<![孕怀])(?:刚满|才满|满)(?:{_NUM}(?:天|周)(?!岁)|{_MONTHS})"
)

# "才55天", "刚满40天" count as an infant's age only in a message about a baby.
_INFANT_AGE_LOOSE = re.compile(f"(?:才|刚|今天|已经)(?:满)?(?:{_NUM}(?:多|来)?(?:天|个?星期)(?!岁)|{_MONTHS})")
_BABY_WORD = re.compile(_BABY)
# a space left between two words that are not both English
_LONE_SPACE = re.compile(r"(?<![a-z0-9]) | (?![a-z0-9])")


@dataclass(frozen=True)
class RedFlagHit:
    rule_id: str
    category: str
    name: str
    matched: str
    reply: str


@dataclass(frozen=True)
class _Rule:
    id: str
    category: str
    name: str
    any: tuple[re.Pattern[str], ...]
    with_groups: tuple[tuple[re.Pattern[str], ...], ...]
    unless: tuple[re.Pattern[str], ...]
    age_max_years: float | None
    sex: str | None
    reply: str
    negatable: bool
    always: bool


def normalize(text: str) -> str:
    """Full-width to half-width, lowercase; a space separates phrases like a comma (people typing
    on a phone often use spaces instead of punctuation), except between single Chinese words
    typed apart ("我 不想 活 了" is one phrase), between English words, and between an English
    word and a Chinese one ("胸口 pain 很厉害": the space only sets the languages apart)."""
    words = unicodedata.normalize("NFKC", text or "").lower().split()
    out = words[:1]
    for prev, word in itertools.pairwise(words):
        out.append(_joiner(prev, word) + word)
    return "".join(out)


def _joiner(prev: str, word: str) -> str:
    if _is_short_word(prev) and _is_short_word(word):
        return ""
    if _ASCII_WORD.match(prev[-1]) and _ASCII_WORD.match(word[0]):
        return " "
    if prev[-1].isascii() and prev[-1].isalpha() and _is_chinese(word[0]):
        return ""
    if word[0].isascii() and word[0].isalpha() and _is_chinese(prev[-1]):
        return ""
    return "，"


def _is_chinese(ch: str) -> bool:
    return "\u4e00" <= ch <= "\u9fff"


def _is_short_word(word: str) -> bool:
    return len(word) <= 2 and all(_is_chinese(ch) for ch in word)


def _expand(pattern: str, classes: dict[str, str], depth: int = 0) -> str:
    """Replace each ``{NAME}`` by its word class, as a non-capturing group."""

    def substitute(m: re.Match[str]) -> str:
        name = m.group(1)
        if name not in classes:
            raise ValueError(f"unknown word class {{{name}}}")
        if depth > 8:
            raise ValueError(f"word class {{{name}}} nests too deeply")
        return "(?:" + _expand(classes[name], classes, depth + 1) + ")"

    return _CLASS_REF.sub(substitute, pattern)


def _as_regex(value: Any, where: str) -> str:
    """A pattern given as a string, or as a list of alternatives (a bare number such as 84 is a word too)."""
    if isinstance(value, list) and value and all(isinstance(v, str | int | float) and str(v) for v in value):
        return "|".join(str(v) for v in value)
    if isinstance(value, str) and value:
        return value
    raise ValueError(f"{where}: expected a pattern or a list of patterns")


def _compile(rule_id: str, patterns: Any, classes: dict[str, str] | None = None) -> tuple[re.Pattern[str], ...]:
    if isinstance(patterns, str):
        patterns = [patterns]
    if not isinstance(patterns, list) or not all(isinstance(p, str) and p for p in patterns):
        raise ValueError(f"red-flag rule {rule_id!r}: patterns must be a list of non-empty strings")
    try:
        expanded = [_expand(p, classes or {}) for p in patterns]
        return tuple(re.compile(normalize(p) if p.isascii() else p) for p in expanded)
    except re.error as exc:
        raise ValueError(f"red-flag rule {rule_id!r}: invalid pattern: {exc}") from exc


def _compile_classes(raw: Any) -> dict[str, str]:
    if not raw:
        return {}
    if not isinstance(raw, dict):
        raise ValueError("red-flag rules: classes must map NAME to patterns")
    classes = {str(name): _as_regex(value, f"word class {name}") for name, value in raw.items()}
    for name in classes:  # every class must expand and compile on its own
        try:
            re.compile(_expand("{" + name + "}", classes))
        except re.error as exc:
            raise ValueError(f"red-flag rules: word class {name} is invalid: {exc}") from exc
    return classes


def _compile_characters(raw: Any) -> dict[int, str]:
    """``characters``: space-separated pairs "from to" of single characters (說说 頭头)."""
    if not raw:
        return {}
    pairs = str(raw).split()
    if not all(len(p) == 2 for p in pairs):
        raise ValueError("red-flag rules: characters must be pairs of two characters")
    return {ord(p[0]): p[1] for p in pairs}


def _compile_spellings(raw: Any, classes: dict[str, str]) -> list[tuple[re.Pattern[str], str]]:
    """``spellings``: pattern -> replacement, for typing slips and variants (历害 -> 厉害)."""
    if not raw:
        return []
    if not isinstance(raw, dict):
        raise ValueError("red-flag rules: spellings must map a pattern to its replacement")
    try:
        return [(re.compile(_expand(str(k), classes)), str(v)) for k, v in raw.items()]
    except re.error as exc:
        raise ValueError(f"red-flag rules: invalid spelling pattern: {exc}") from exc


def _alternation(patterns: list[str], classes: dict[str, str]) -> re.Pattern[str] | None:
    return re.compile("|".join(_expand(p, classes) for p in patterns)) if patterns else None


class RedFlagRules:
    def __init__(self, version: str, rules: list[_Rule], negations: list[str], figurative: list[str],
                 past_markers: list[str], classes: dict[str, str] | None = None,
                 characters: dict[int, str] | None = None,
                 spellings: list[tuple[re.Pattern[str], str]] | None = None,
                 general_questions: dict[str, Any] | None = None,
                 hypothetical: list[str] | None = None, past_scope: dict[str, Any] | None = None,
                 animals: dict[str, Any] | None = None) -> None:  # fmt: skip
        self.version = version
        self.rules = rules
        self._negation = re.compile("(?:" + "|".join(map(re.escape, negations)) + ")") if negations else None
        self._long_negations = tuple(n for n in negations if len(n) > 2)  # "没想过要" reaches further back
        self._figurative = _alternation(figurative, classes or {})
        self._past = _alternation(past_markers, classes or {})
        self._hypothetical = _alternation(hypothetical or [], classes or {})
        self._characters = characters or {}
        self._spellings = spellings or []

        def section(group: dict[str, Any] | None, key: str) -> re.Pattern[str] | None:
            return _alternation(list((group or {}).get(key) or []), classes or {})

        self._asks, self._about_someone, self._story, self._lesson, self._patient_now = (
            section(general_questions, key) for key in ("asks", "about_someone", "story", "lesson", "patient_now"))
        self._present, self._recovered, self._onset, self._told, self._ongoing = (
            section(past_scope, key) for key in ("present", "recovered", "onset", "told", "ongoing"))
        self._animal, self._human = section(animals, "patient"), section(animals, "human")

    @classmethod
    def load(cls, path: str | Path) -> RedFlagRules:
        return cls.from_dict(yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {})

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RedFlagRules:
        if not data or not data.get("rules"):
            raise ValueError("red-flag rules: no rules given")
        replies = data.get("replies") or {}
        classes = _compile_classes(data.get("classes"))
        rules: list[_Rule] = []
        seen: set[str] = set()
        for raw in data["rules"]:
            rule_id = raw.get("id")
            if not rule_id or rule_id in seen:
                raise ValueError(f"red-flag rule {rule_id!r}: missing or duplicate id")
            seen.add(rule_id)
            if raw.get("reply") not in replies:
                raise ValueError(f"red-flag rule {rule_id!r}: unknown reply {raw.get('reply')!r}")
            rules.append(
                _Rule(
                    id=rule_id,
                    category=str(raw.get("category") or rule_id),
                    name=str(raw.get("name") or rule_id),
                    any=_compile(rule_id, raw.get("any"), classes),
                    with_groups=tuple(_compile(rule_id, g, classes) for g in raw.get("with") or []),
                    unless=_compile(rule_id, raw["unless"], classes) if raw.get("unless") else (),
                    age_max_years=raw.get("age_max_years"),
                    sex=raw.get("sex"),
                    reply=str(replies[raw["reply"]]).strip(),
                    negatable=bool(raw.get("negatable", True)),
                    always=bool(raw.get("always", False)),
                )
            )
        try:
            return cls(str(data.get("version", "1")), rules, list(data.get("negations") or []),
                       list(data.get("figurative") or []), list(data.get("past_markers") or []), classes,
                       _compile_characters(data.get("characters")),
                       _compile_spellings(data.get("spellings"), classes),
                       data.get("general_questions"), list(data.get("hypothetical") or []),
                       data.get("past_scope"), data.get("animals"))  # fmt: skip
        except re.error as exc:
            raise ValueError(f"red-flag rules: invalid negation/figurative/past pattern: {exc}") from exc

    # ------------------------------------------------------------------ reading the message

    def canonical(self, text: str) -> str:
        """The message as the rules read it: normalised, one spelling per word."""
        canon = to_simplified(normalize(str(text))[:4000]).translate(self._characters)
        for pattern, replacement in self._spellings:
            canon = pattern.sub(replacement, canon)
        # English words read as Chinese ones ("chest 好 tight" -> "胸口 好 紧") leave spaces that
        # only separated the languages; they would keep the words of one phrase apart
        return _LONE_SPACE.sub("", canon)

    def _clauses(self, text: str) -> tuple[list[str], str]:
        """The clauses that speak of now, and the text the ``unless`` patterns read: the whole
        message less its background (the past it tells before it comes to today)."""
        clauses = [c for c in _CLAUSE.split(text) if c]
        if self._past is None:
            return clauses, text
        past, background = self._past_scope(clauses)
        heard = [c for c, p in zip(clauses, past, strict=True) if not p]
        if not any(background):
            return heard, text
        return heard, "，".join(c for c, b in zip(clauses, background, strict=True) if not b)

    def _past_scope(self, clauses: list[str]) -> tuple[list[bool], list[bool]]:
        """For each clause: is it about the past, and is it background (the past told before a
        clause about today)?"""

        def marks(pattern: re.Pattern[str] | None) -> list[bool]:
            return [bool(pattern is not None and pattern.search(c)) for c in clauses]

        # a past that has not ended ("上周开始胸口疼") is today's trouble
        past = [p and not o for p, o in zip(marks(self._past), marks(self._ongoing), strict=True)]
        present, onset, told = marks(self._present), marks(self._onset), marks(self._told)
        last_recovered = max((i for i, r in enumerate(marks(self._recovered)) if r), default=-1)
        # A story told as over ("…现在都好了") goes on after its marker until a clause speaks
        # of now; a story not told as over may be the start of today's trouble ("三年前放了
        # 支架，胸口剧痛出冷汗"): it goes on only over what was told of it ("医生说是热性惊厥").
        story = over = False
        for i in range(len(clauses)):
            if past[i]:
                story, over = True, i < last_recovered
            elif story and not present[i] and (over or told[i]):
                past[i] = True
            else:
                story = False
        # the past before a clause about today is background: it cannot excuse what happens today
        background = [False] * len(clauses)
        today_after = False
        for i in range(len(clauses) - 1, -1, -1):
            background[i] = past[i] and today_after
            today_after = today_after or (onset[i] and not past[i])
        return past, background

    def _find(self, patterns: tuple[re.Pattern[str], ...], clauses: list[str], negatable: bool) -> str | None:
        for clause in clauses:
            for pattern in patterns:
                for m in pattern.finditer(clause):
                    if negatable and self._negated(clause, m):
                        continue
                    return m.group(0)
        return None

    # ------------------------------------------------------------------ negation

    def _negated(self, clause: str, m: re.Match[str]) -> bool:
        """Is the match denied: a negation just before it ("没有胸痛"), before the list it
        belongs to ("没有胸痛、出汗和气短"), inside it ("嘴也不歪"), or after it ("胸痛没有")?"""
        if self._negation is None:
            return False
        before = _strip_non_negations(clause[max(0, m.start() - 12) : m.start()])
        if self._negation.search(before[-4:]) or before.endswith(self._long_negations) or self._list_negated(before):
            return True
        if self._negation.search(_strip_non_negations(m.group(0))):
            return True
        return bool(_DENIED_AFTER.fullmatch(clause[m.end() :]))

    def _list_negated(self, before: str) -> bool:
        negations = list(self._negation.finditer(before)) if self._negation is not None else []
        if not negations:
            return False
        tail = before[negations[-1].end() :]
        return len(tail) <= 10 and bool(_LIST_JOINERS.search(tail)) and not _LIST_BREAKERS.search(tail)

    # ------------------------------------------------------------------ the check

    @staticmethod
    def _excuses(pattern: re.Pattern[str], text: str) -> bool:
        """Does an ``unless`` pattern occur in the text other than as what the message denies? "不是
        血丝，是满满一口" says the blood is no streak: the streak that would excuse it is denied;
        "和平时的坠胀不一样" names the usual ache only to set this pain apart from it."""
        return any(not (_DENIED_EXCUSE.search(text, max(0, m.start() - 5), m.start()) or _UNLIKE_AFTER.match(text, m.end()))
                   for m in pattern.finditer(text))  # fmt: skip

    def _is_general_question(self, literal: str) -> bool:
        """Does the message only ask about a condition ("抽搐是什么病") without naming a patient,
        tell what happened in a film, a series or a game, only want to learn about it, or speak
        of an animal?"""
        if self._story is not None and self._story.search(literal):
            return True
        # an animal is the patient ("我家狗被车撞了", "兔子抽搐了"): a hospital's triage is not a
        # vet's, unless a person is hurt too ("狗把孩子的脸咬了")
        animal = self._animal is not None and self._animal.search(literal)
        if animal and not (self._human is not None and self._human.search(literal)):
            return True
        # a lesson ("心梗有什么征兆，我爸六十了，想提前了解一下") or a story heard of someone
        # ("抖音上看有个老头被电打了"): it may name a relative, but nobody is ill now
        lesson = self._lesson is not None and self._lesson.search(literal)
        if lesson and not (self._patient_now is not None and self._patient_now.search(literal)):
            return True
        if self._asks is None or not self._asks.search(literal):
            return False
        return not (self._about_someone is not None and self._about_someone.search(literal))

    def _is_infant(self, canon: str, age_years: float | None) -> bool:
        if age_years is not None:
            return age_years < 0.25
        return bool(_INFANT_AGE.search(canon) or (_INFANT_AGE_LOOSE.search(canon) and _BABY_WORD.search(canon)))

    def _applies(self, rule: _Rule, infant: bool, age_years: float | None, sex: str | None) -> bool:
        if rule.age_max_years is not None:
            if rule.age_max_years <= 0.25:
                if not infant:
                    return False
            elif age_years is None or age_years >= rule.age_max_years:
                return False
        return not (rule.sex and sex and rule.sex != sex)

    def check(self, text: str, age_years: float | None = None, sex: str | None = None) -> RedFlagHit | None:
        try:
            canon = self.canonical(text)
        except Exception:  # pragma: no cover - normalisation of any str is total; be safe anyway
            return None
        if not canon:
            return None
        infant = self._is_infant(canon, age_years)
        # A message that turns to another matter ("配眼镜能在你们医院配吗？另外我左眼突然看不见了")
        # is read one matter at a time: the first one's words (眼镜, 复查, 康复科) excuse nothing in the next.
        for topic in _topics(canon):
            hit = self._check_topic(topic, infant, age_years, sex)
            if hit is not None:
                return hit
        return None

    def _check_topic(self, canon: str, infant: bool, age_years: float | None, sex: str | None) -> RedFlagHit | None:
        literal = self._figurative.sub("，", canon) if self._figurative is not None else canon
        clauses, unless_text = self._clauses(literal)
        real = [c for c in clauses if not self._hypothetical.search(c)] if self._hypothetical else clauses
        general = self._is_general_question(literal)
        for rule in self.rules:
            if (general and not rule.always) or not self._applies(rule, infant, age_years, sex):
                continue
            heard = clauses if rule.always else real
            matched = self._find(rule.any, heard, rule.negatable)
            if matched is None:
                continue
            extra = [self._find(group, heard, rule.negatable) for group in rule.with_groups]
            if any(e is None for e in extra):
                continue
            if rule.unless and any(self._excuses(p, unless_text) for p in rule.unless):
                continue
            return RedFlagHit(rule.id, rule.category, rule.name, "+".join([matched, *extra]), rule.reply)
        return None


# A sentence that opens with 另外/还有/对了/顺便… turns to another matter.
_TOPIC_BREAK = re.compile(r"(?<=[。！？!?；;\n])\s*(?=另外|还有(?![点些一])|对了|顺便|再问|还想问|另一个问题)")


def _topics(canon: str) -> list[str]:
    """The whole message first, so words that belong together across the break still meet;
    then each matter on its own when the message has more than one."""
    parts = [p for p in _TOPIC_BREAK.split(canon) if p.strip()]
    return [canon, *parts] if len(parts) > 1 else [canon]


def _strip_non_negations(text: str) -> str:
    """Remove the phrases that look like a negation but deny nothing."""
    return _NOT_NEGATIONS.sub("", _FIXED_NEGATIVE_WORDS.sub("", text))


_LOOKS_NEGATIVE = re.compile(f"{_FIXED_NEGATIVE_WORDS.pattern}|{_NOT_NEGATIONS.pattern}")
_DENIAL = re.compile("(?:没有|没|不|无|否认|未|并无)[^，,。；;！!？?、\\s\x00不没无未]{0,4}")
_KEPT = re.compile("\x00(\\d+)\x01")


def affirmed_only(text: str) -> str:
    """The text without what it denies ("不头晕不乏力", "没发烧"), for a reader that cannot tell
    a denial from a statement (the similar-case net's embeddings). Phrases that only look
    negative are kept: 喘不上气 and 止不住 are the symptoms themselves, 不小心 denies nothing."""
    kept: list[str] = []

    def keep(m: re.Match[str]) -> str:
        kept.append(m.group(0))
        return f"\x00{len(kept) - 1}\x01"

    stripped = _DENIAL.sub("", _LOOKS_NEGATIVE.sub(keep, text))
    return _KEPT.sub(lambda m: kept[int(m.group(1))], stripped)
