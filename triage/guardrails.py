"""Rules every text shown to a patient must pass: no drug doses, no prescriptions,
no diagnosis claims, and always the AI label and the notice."""

from __future__ import annotations

import re

AI_LABEL = "AI 导诊助手"
NOTICE = "仅供参考，不能替代医生诊断"
FOOTER = f"—— {AI_LABEL} · {NOTICE}"

_DOSE = re.compile(r"\d+(?:\.\d+)?\s*(?:mg|毫克|g|克|ml|毫升|片|粒|袋|支|丸|iu|单位|μg|微克)", re.IGNORECASE)
_PRESCRIBE = re.compile(r"(?:建议|可以|应该|需要|请)?(?:服用|口服|吃点?|用点?|开点?|注射|输液)[^，。；]{0,8}(?:药|素|片|胶囊|颗粒|霉素|沙星|洛芬|西林|他汀|地平|普利|沙坦)")
_DIAGNOSIS = re.compile(r"你(?:得了|患了|患有|是得了|确诊|肯定是|就是)|确诊为|诊断为")


def violations(text: str) -> list[str]:
    found = []
    if _DOSE.search(text):
        found.append("dose")
    if _PRESCRIBE.search(text):
        found.append("prescription")
    if _DIAGNOSIS.search(text):
        found.append("diagnosis")
    return found


def is_safe(text: str) -> bool:
    return not violations(text)


def with_footer(text: str) -> str:
    text = text.rstrip()
    return text if text.endswith(FOOTER) else f"{text}\n{FOOTER}"
