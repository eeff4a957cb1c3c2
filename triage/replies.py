"""Everything the patient reads, in Simplified Chinese, always with the AI label and notice."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from triage.decision import Decision
from triage.guardrails import AI_LABEL, FOOTER, with_footer
from triage.knowledge.loader import KnowledgeBase

URGENCY_TEXT = {
    "emergency": "紧急：请立即拨打120，或马上到最近医院的急诊科",
    "urgent": "较急：建议今天就医",
    "routine": "一般：建议预约门诊就诊",
    "self_care": "可先居家观察",
}
NEXT_STEP = {
    "emergency": "请不要等待线上回复，立即就医。",
    "urgent": "建议今天挂号就诊；如症状明显加重，请直接去急诊科。",
    "routine": "可在小程序中预约挂号，就诊时带上既往病历和检查报告。",
    "self_care": "注意休息、多饮水、观察变化；如出现高热不退、剧烈疼痛、呼吸困难或症状持续加重，请及时就医。",
}
FALLBACK = with_footer(
    f"【{AI_LABEL}】抱歉，系统暂时繁忙，未能完成分诊。\n"
    "如症状严重或突然加重，请立即拨打120或到最近医院的急诊科；其他情况可到医院导诊台咨询，或稍后再发消息。"
)
IMAGE_REPLY = with_footer(
    f"【{AI_LABEL}】已收到您的图片。目前我还看不懂图片，请用文字描述一下哪里不舒服、持续多久了，我来帮您推荐科室。"
)
WELCOME = with_footer(
    f"【{AI_LABEL}】您好，我是医院的智能导诊助手。请用一两句话描述哪里不舒服、持续多久了，"
    "例如：“孩子发烧三天，咳嗽有痰”。"
)
NOTICE_VERSION = "2026-11-v1"


def consent_notice(retention_days: int, session_minutes: int) -> str:
    return with_footer(
        f"【{AI_LABEL}】您好！开始导诊前，请先阅读《个人信息处理说明》（版本 {NOTICE_VERSION}）：\n"
        "· 收集什么：您描述的症状、持续时间、年龄、性别等导诊所需信息；\n"
        "· 用来做什么：仅用于推荐就诊科室、判断紧急程度，并生成预问诊摘要供接诊医生参考；\n"
        f"· 保存多久：对话在您{session_minutes}分钟未回复后结束并清除，导诊结果最长保存{retention_days}天；\n"
        "· 如何删除：随时发送“删除我的数据”即可删除全部信息，发送“撤回同意”撤回授权。\n"
        "回复“同意”即表示您已阅读并同意，我们将开始导诊。如遇紧急情况请直接拨打120。"
    )


CONSENTED = with_footer(
    f"【{AI_LABEL}】感谢您的同意。请用一两句话描述哪里不舒服、持续多久了，例如：“孩子发烧三天，咳嗽有痰”。"
)
DELETED = with_footer(
    f"【{AI_LABEL}】您的对话、授权记录和导诊结果已全部删除。如需再次使用，请重新同意个人信息处理说明。"
)
RESTARTED = with_footer(f"【{AI_LABEL}】好的，我们重新开始。请描述您现在哪里不舒服。")
EMPTY_TEXT = with_footer(f"【{AI_LABEL}】请用文字描述一下您的不适症状，我来帮您推荐合适的科室。")


DIRECT_NEEDS_COMPLAINT = with_footer(f"【{AI_LABEL}】请先用一两句话描述哪里不舒服，我才能为您推荐科室。")
HANDOFF = with_footer(f"【{AI_LABEL}】正在为您转接人工客服，请稍候。如情况紧急，请直接拨打120或到最近医院的急诊科。")
THANKS = with_footer(
    f"【{AI_LABEL}】不客气，祝您早日康复！如有新的不适，可以直接发送新的描述；发送“删除我的数据”可删除本次记录。"
)
NEUTRAL = with_footer(f"【{AI_LABEL}】抱歉，这条消息暂时无法处理。请换一种说法描述您的不适症状，我来帮您推荐科室。")
CLOSE_SECOND = 0.6  # a second department is offered when its score is at least this share of the first


@dataclass(frozen=True)
class Booking:
    """Mini-program booking pages: the department's own page from the knowledge base,
    else the hospital's booking page with the department id filled in."""

    appid: str = ""
    page: str = "pages/booking/index?dept={dept_id}"

    def path(self, dept_id: str, own_page: str = "") -> str:
        return own_page or self.page.format(dept_id=dept_id)

    def link(self, dept_id: str, name: str, own_page: str = "") -> str:
        path = self.path(dept_id, own_page)
        if self.appid:  # a tappable mini-program link inside a customer-service text message
            return f'<a data-miniprogram-appid="{self.appid}" data-miniprogram-path="{path}">点击预约{name}</a>'
        return f"在医院小程序“预约挂号”中选择{name}"


def question(text: str, hint: str) -> str:
    return with_footer(f"【{AI_LABEL}】{text}\n{hint}")


def recommendation(decision: Decision, kb: KnowledgeBase, booking: Booking | None = None, note: str = "") -> str:
    if not decision.departments:
        return with_footer(f"【{AI_LABEL}】{decision.reason}")
    top = decision.departments[0]
    dept = kb.by_id.get(top.dept_id)
    lines = [f"【{AI_LABEL}】"]
    if note:
        lines.append(note)
    lines.append(f"建议科室：{top.name}")
    if dept and (dept.location or dept.hours):
        where = "；".join(
            x for x in (dept.location and f"位置：{dept.location}", dept.hours and f"时间：{dept.hours}") if x
        )
        lines.append(where)
    urgency = URGENCY_TEXT[decision.urgency]
    lines.append(f"紧急程度：{urgency}" + (f"（{decision.urgency_reason}）" if decision.urgency_reason else ""))
    lines.append(f"理由：{decision.reason}")
    others = [c.name for c in decision.departments[1:3] if c.score >= CLOSE_SECOND * top.score]
    if others:
        lines.append(f"也可考虑：{'、'.join(others)}")
    lines.append(f"下一步：{NEXT_STEP[decision.urgency]}")
    if booking is not None and decision.urgency in ("routine", "urgent", "self_care"):
        lines.append(f"预约：{booking.link(top.dept_id, top.name, dept.booking_page if dept else '')}")
    return with_footer("\n".join(lines))


def summary_line(code: str, summary: dict[str, Any]) -> str:
    """The short pre-consultation summary shown to the patient: structured facts only, never
    an echo of free text (which may carry drug names or instructions)."""
    parts = []
    if summary.get("associated"):
        parts.append(f"症状：{'、'.join(summary['associated'][:5])}")
    if summary.get("duration"):
        parts.append(f"持续：{summary['duration']}")
    who = "、".join(x for x in (summary.get("sex"), _age_text(summary.get("age"))) if x)
    if who:
        parts.append(f"患者：{who}")
    return f"预问诊摘要（编号 {code}，就诊时出示给医生）：" + ("；".join(parts) or "已记录您的描述")


def _age_text(age: float | None) -> str | None:
    if age is None:
        return None
    return f"{age:g}岁" if age >= 1 else f"{round(age * 12)}个月"


def with_summary(reply: str, code: str, summary: dict[str, Any]) -> str:
    body = reply.removesuffix(FOOTER).rstrip()
    return with_footer(
        f"{body}\n{summary_line(code, summary)}\n有新的情况可以继续补充；咨询其他问题请先发送“重新开始”。"
    )


QUICK_REPLIES = {
    "symptom": ["有", "没有", "不知道"],
    "pregnancy": ["是", "否", "不确定"],
    "duration": ["今天刚开始", "2-3天", "1周左右", "1个月以上"],
    "sex": ["男", "女"],
}
CARD_NOTICE = FOOTER.removeprefix("—— ")  # "AI 导诊助手 · 仅供参考，不能替代医生诊断"
URGENCY_COLOUR = {"emergency": "red", "urgent": "orange", "routine": "blue", "self_care": "green"}


def card(result: Any, question: Any, summary_code: str | None, kb: KnowledgeBase, booking: Booking) -> dict[str, Any]:
    """What the mini-program draws for one bot turn besides the text: quick replies for a
    question, a result card for a recommendation, an emergency card for a red flag."""
    out: dict[str, Any] = {"quick_replies": [], "card": None}
    if question is not None:
        out["quick_replies"] = [*QUICK_REPLIES.get(question.kind, []), "直接推荐"]
    if result is None:
        return out
    decision = result.decision
    if result.red_flag is not None:
        out["card"] = {"type": "emergency", "title": result.red_flag.name, "call": "120",
                       "category": result.red_flag.category, "notice": CARD_NOTICE}  # fmt: skip
        if result.red_flag.category == "suicide":
            out["card"]["hotline"] = "12356"
        return out
    top = decision.departments[0] if decision.departments else None
    out["card"] = {
        "type": "recommendation",
        "department": top.name if top else None,
        "alternatives": [c.name for c in decision.departments[1:]],
        "urgency": decision.urgency,
        "urgency_text": URGENCY_TEXT[decision.urgency],
        "urgency_colour": URGENCY_COLOUR[decision.urgency],
        "urgency_reason": decision.urgency_reason,
        "reason": decision.reason,
        "next_step": NEXT_STEP[decision.urgency],
        "booking_page": booking.path(top.dept_id, kb.by_id[top.dept_id].booking_page) if top else None,
        "summary_code": summary_code,
        "notice": CARD_NOTICE,
    }
    return out
