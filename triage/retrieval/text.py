"""Text normalisation and jieba tokenisation with the medical dictionary."""

from __future__ import annotations

import logging
import re
import threading
import unicodedata
from collections.abc import Iterable

import jieba

from triage.chinese import to_simplified

jieba.setLogLevel(logging.WARNING)

_SPACES = re.compile(r"\s+")
_PUNCT = re.compile(r"^[\W_]+$")
# Function words that carry no triage signal; symptom words are never listed here.
STOPWORDS = frozenset(
    (
        "的 了 吗 呢 吧 啊 呀 哦 嗯 是 在 有 和 与 及 或 就 都 也 还 又 很 太 比较 有点 一点 一些 什么 怎么 怎么办 "
        "为什么 请问 你好 医生 大夫 谢谢 需要 应该 可以 能 会 要 想 我 你 他 她 它 我们 这 那 这个 那个 一个 什么样 一下 "
        "现在 最近 时候 情况 问题 症状 治疗 检查 看 挂 科 哪个 哪 如何 是否 一直 已经 没有 有没有 希望 帮助 知道 原因 引起 "
        "导致 请 给 让 把 被 从 到 对 为 之 其 中 上 下 后 前 里 多 少 好 不 没 门诊 患者 目前 已 开 暂时 曾 病情 进展 "
        "新 又 得 着 过 个 次 天 年 月 岁 周 "
    ).split()
)


def normalize(text: str) -> str:
    """Full-width to half-width, simplified characters, lowercase, collapse whitespace."""
    return to_simplified(_SPACES.sub(" ", unicodedata.normalize("NFKC", text or "")).strip().lower())


class Tokenizer:
    """A jieba tokenizer of its own (not the global one), loaded with the knowledge base's words."""

    def __init__(self, words: Iterable[str] = ()) -> None:
        self._jieba = jieba.Tokenizer()
        self._lock = threading.Lock()
        for word in words:
            word = normalize(word)
            if len(word) >= 2:
                self._jieba.add_word(word, freq=2000)

    def tokens(self, text: str) -> list[str]:
        with self._lock:  # jieba's lazy initialisation is not thread-safe
            raw = self._jieba.lcut(normalize(text), HMM=True)
        return [t for t in raw if t.strip() and t not in STOPWORDS and not _PUNCT.match(t)]
