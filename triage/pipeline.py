"""The triage pipeline, one readable flow:

    lock → session → red flags → retrieve → follow-up? → LLM → validate → reply → save

It imports neither Flask nor Celery (an import-linter contract keeps it so):
stores, the model and the knowledge base are passed in, so the same code runs
in the worker, in ``triage predict`` and in the benchmarks.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from triage import replies
from triage.answers import is_unsure, parse_answer
from triage.decision import Decider, Decision, reason_for
from triage.followup import FollowUp, Probe, Question, discount_denied
from triage.guardrails import is_safe
from triage.knowledge.loader import KnowledgeBase
from triage.patient import PatientFacts, read_facts
from triage.redflags import RedFlagHit, RedFlagRules
from triage.retrieval.hybrid import Candidate, Retriever
from triage.sessions import SessionStore
from triage.similar_flags import SimilarCases
from triage.store.consultations import ConsultationStore

MAX_COMPLAINT_CHARS = 1000


@dataclass
class TriageResult:
    reply: str
    decision: Decision
    red_flag: RedFlagHit | None
    facts: PatientFacts
    kb_version: str
    timings: dict[str, float] = field(default_factory=dict)
    mentions: tuple[tuple[str, str], ...] = ()  # (patient's word, knowledge-base term)

    def as_prediction(self, row_id: Any) -> dict[str, Any]:
        """The ``triage predict`` output row."""
        return {
            "id": row_id,
            "departments": [{"name": c.name, "canonical": c.canonical} for c in self.decision.departments],
            "urgency": self.decision.urgency,
            "red_flag": self.red_flag.rule_id if self.red_flag else None,
            "reason": self.red_flag.name if self.red_flag else self.decision.reason,
        }


@dataclass
class Findings:
    """What one complaint shows before any decision: red flag, candidates, symptoms."""

    text: str
    facts: PatientFacts
    red_flag: RedFlagHit | None
    candidates: list[Candidate] = field(default_factory=list)  # under the patient rules
    mentions: tuple[tuple[str, str], ...] = ()
    timings: dict[str, float] = field(default_factory=dict)


def facts_from(text: str, slots: dict[str, Any]) -> PatientFacts:
    """The patient's facts: what the conversation's slots hold, else what the text says."""
    return read_facts(text, slots.get("age"), slots.get("sex"), slots.get("pregnant"), slots.get("duration_days"),
                      slots.get("severity"))  # fmt: skip


class TriageEngine:
    """Everything that depends on one knowledge-base version, built once and shared."""

    def __init__(
        self,
        kb: KnowledgeBase,
        retriever: Retriever,
        red_flags: RedFlagRules,
        decider: Decider,
        followup: FollowUp | None = None,
        booking: replies.Booking | None = None,
        similar: SimilarCases | None = None,
    ) -> None:
        self.kb = kb
        self.retriever = retriever
        self.red_flags = red_flags
        self.decider = decider
        self.followup = followup or FollowUp(kb)
        self.booking = booking or replies.Booking()
        self.similar = similar

    def red_flag(self, text: str, age_years: float | None = None, sex: str | None = None) -> RedFlagHit | None:
        """The rules first; a message they let through that reads like a known emergency
        example is caught by the similar-case net. Neither consults the model."""
        hit = self.red_flags.check(text, age_years=age_years, sex=sex)
        if hit is None and self.similar is not None:
            hit = self.similar.check(text, age_years=age_years, sex=sex)
        return hit

    def examine(self, text: str, slots: dict[str, Any] | None = None) -> Findings:
        """Red flags first, then retrieval; ``slots`` are facts the conversation gathered."""
        slots = slots or {}
        text = text[-MAX_COMPLAINT_CHARS:]
        facts = facts_from(text, slots)
        timings: dict[str, float] = {}
        started = time.perf_counter()
        hit = self.red_flag(text, age_years=facts.age_years, sex=facts.sex)
        timings["red_flags"] = time.perf_counter() - started
        if hit is not None:
            return Findings(text, facts, hit, timings=timings)
        started = time.perf_counter()
        candidates = discount_denied(self.retriever.retrieve(text, limit=10), slots.get("denied", ()), self.kb)
        mentions = tuple(self.retriever.mentions(text))
        timings["retrieve"] = time.perf_counter() - started
        return Findings(text, facts, None, self.decider.rank(candidates, facts), mentions, timings)

    def probe(self, findings: Findings) -> Probe:
        """The rules' outcome for other values of the slots, for choosing a question."""
        words = tuple(surface for surface, _ in findings.mentions)

        def outcome(slots: dict[str, Any]) -> tuple[str | None, str]:
            return self.decider.outcome(findings.text, findings.candidates, facts_from(findings.text, slots), words)

        return outcome

    def conclude(self, findings: Findings, use_model: bool = True, note: str = "") -> TriageResult:
        """LLM → validate → reply. A red flag is answered from its rule's template."""
        text, facts, timings = findings.text, findings.facts, dict(findings.timings)
        if findings.red_flag is not None:  # the model is never consulted
            decision = self._emergency_decision(text, facts)
            return TriageResult(findings.red_flag.reply, decision, findings.red_flag, facts, self.kb.version, timings)
        started = time.perf_counter()
        words = tuple(surface for surface, _ in findings.mentions)
        decision = self.decider.decide(text, findings.candidates, facts, use_model=use_model, mentioned=words)
        timings["model"] = time.perf_counter() - started
        reply = replies.recommendation(decision, self.kb, self.booking, note)
        if not is_safe(reply):  # validate: a model-written reason that breaks a rule is replaced
            top = decision.departments[0] if decision.departments else None
            decision = Decision(decision.departments, decision.urgency, reason_for(top), "validated",
                                urgency_reason=decision.urgency_reason)  # fmt: skip
            reply = replies.recommendation(decision, self.kb, self.booking, note)
        return TriageResult(reply, decision, None, facts, self.kb.version, timings, findings.mentions)

    def triage(
        self, text: str, age_years: float | None = None, sex: str | None = None, use_model: bool = True
    ) -> TriageResult:
        """One complaint in, one recommendation out (``triage predict``, the benchmarks)."""
        return self.conclude(self.examine(text, {"age": age_years, "sex": sex}), use_model=use_model)

    def _emergency_decision(self, text: str, facts: PatientFacts) -> Decision:
        """For the record and the hand-off (never for the reply, which is the rule's template):
        the specialty the complaint belongs to, then 急诊科 as the door to it, then the next
        specialty. The urgency and the red flag carry the emergency; the departments say who
        takes over after it."""
        emergency = self.kb.find_by_canonical("急诊科")
        ranked = self.decider.apply_patient_rules(self.retriever.retrieve(text, limit=10), facts)
        specialties = [c for c in ranked if c.canonical != "急诊科"]
        door = [Candidate(emergency.id, emergency.name, emergency.canonical, 1.0)] if emergency else []
        departments = tuple((specialties[:1] + door + specialties[1:])[: self.decider.top_k])
        return Decision(departments, "emergency", "命中急症规则，请立即就医。", "red_flag")


AGREE = {"同意", "我同意", "好的同意", "好同意", "同意协议", "同意了", "ok同意"}
DELETE = ("删除我的数据", "删除数据", "删除我的信息", "撤回同意", "注销")
RESTART = ("重新开始", "重来", "从头开始")
DIRECT = ("直接推荐", "直接给建议", "直接告诉我", "不用问了", "别问了", "直接说")
HANDOFF = ("转人工", "人工客服", "找人工", "人工服务", "真人客服", "转接人工")
THANKS = {
    "谢谢",
    "谢谢你",
    "多谢",
    "感谢",
    "好的",
    "好",
    "知道了",
    "收到",
    "明白了",
    "ok",
    "嗯",
    "嗯嗯",
    "好的谢谢",
    "谢啦",
}
_PUNCT = re.compile(r"[\s，,。.！!？?、~～]+")


def command_of(text: str) -> str | None:
    """Words that steer the conversation rather than describe symptoms."""
    bare = _PUNCT.sub("", text).lower()
    if bare in AGREE:
        return "agree"
    if any(word in bare for word in DELETE):
        return "delete"
    if bare in RESTART:
        return "restart"
    if any(word in bare for word in HANDOFF) and len(bare) <= 12:
        return "handoff"
    if any(word in bare for word in DIRECT) and len(bare) <= 12:
        return "direct"
    if bare in THANKS:
        return "thanks"
    return None


@dataclass
class Turn:
    """What one patient message produced: the reply, and the triage result if there was one."""

    reply: str
    kind: str  # triage | red_flag | question | consent_notice | consent | deleted | restarted | handoff | ...
    result: TriageResult | None = None
    question: Question | None = None
    summary_code: str | None = None


# A check of the patient's text by WeChat's content security (msgSecCheck): True if it passes.
Screen = Callable[[str], bool]


class TriagePipeline:
    """The conversation around the engine: consent, a per-user lock, the session with its
    slots, up to three follow-up questions, and the pre-consultation summary at the end."""

    def __init__(
        self,
        engine: TriageEngine,
        sessions: SessionStore,
        consultations: ConsultationStore | None = None,
        lock_ttl_s: int = 60,
        retention_days: int = 30,
    ) -> None:
        self.engine = engine
        self.sessions = sessions
        self.consultations = consultations
        self.lock_ttl_s = lock_ttl_s
        self.retention_days = retention_days

    def handle_text(self, user: str, text: str, screen: Screen | None = None) -> Turn:
        command = command_of(text)
        if command == "delete":  # honoured at once, whatever state the conversation is in
            self.sessions.forget(user)
            if self.consultations is not None:
                self.consultations.forget(user)
            return Turn(replies.DELETED, "deleted")
        with self.sessions.lock(user, ttl_s=self.lock_ttl_s):  # lock
            if self.sessions.consent(user) is None:
                return self._before_consent(user, text, command)
            if command == "agree":
                return Turn(replies.CONSENTED, "consent")
            if command == "restart":
                self.sessions.delete(user)
                return Turn(replies.RESTARTED, "restarted")
            session = self.sessions.load(user)  # session
            if command == "handoff":
                code = self._store_summary(user, session, self._summary(session, None, "handoff"))
                return Turn(replies.HANDOFF, "handoff", summary_code=code)
            if session.get("stage") == "done" and command == "thanks":
                return Turn(replies.THANKS, "thanks")
            turn = self._advance(user, session, text, command, screen)
            if turn.kind != "screened":
                self.sessions.save(user, session)  # save
            return turn

    def _advance(self, user: str, session: dict[str, Any], text: str, command: str | None,
                 screen: Screen | None) -> Turn:  # fmt: skip
        slots: dict[str, Any] = session.setdefault("slots", {})
        asked: list[str] = session.setdefault("asked", [])
        pending = session.pop("pending", None)
        complaint = session.get("complaint", "")
        # "嗯"/"好" answer a pending question; without one they are only politeness.
        skip = command == "direct" or (command == "thanks" and pending is None)
        addition = "" if skip else self._read_reply(pending, text, slots)
        if addition:
            complaint = f"{complaint}，{addition}" if complaint else addition
            if (pending or {}).get("kind") in (None, "describe"):  # the patient's own description
                session["chief"] = f"{session['chief']}，{addition}" if session.get("chief") else addition
        if not complaint:
            session["pending"] = {"kind": "describe"}
            return Turn(replies.DIRECT_NEEDS_COMPLAINT, "question")
        session.update(complaint=complaint[-MAX_COMPLAINT_CHARS:], turns=session.get("turns", 0) + 1)

        findings = self.engine.examine(session["complaint"], slots)  # red flags → retrieve
        if findings.red_flag is None and screen is not None and not screen(text):
            session["pending"] = pending
            return Turn(replies.NEUTRAL, "screened")
        if findings.red_flag is None and command != "direct" and session.get("stage") != "done":
            related = self.engine.retriever.related_entries(findings.text)
            question = self.engine.followup.next_question(
                findings.candidates, slots, asked, self.engine.probe(findings), findings.facts, related
            )
            if question is not None:
                asked.append(f"symptom:{question.term}" if question.kind == "symptom" else question.kind)
                session["pending"] = question.as_dict()
                return Turn(replies.question(question.text, self.engine.followup.hint), "question", question=question)

        note = ""
        if findings.red_flag is None and asked and self.engine.followup.is_clear(findings.candidates):
            note = f"结合您的回答，{findings.candidates[0].name}明显比其他科室更合适。"
        result = self.engine.conclude(findings, note=note)  # LLM → validate → reply
        session["stage"] = "done"
        kind = "red_flag" if result.red_flag else "triage"
        summary = self._summary(session, result, kind)
        code = self._store_summary(user, session, summary)
        reply = result.reply
        if code and not result.red_flag:
            reply = replies.with_summary(reply, code, summary)
        return Turn(reply, kind, result, summary_code=code)

    @staticmethod
    def _read_reply(pending: dict[str, Any] | None, text: str, slots: dict[str, Any]) -> str:
        """Fill slots from an answer to the question just asked; return what to add to the
        complaint (the patient's own words, or "有<symptom>" for a yes)."""
        text = text.strip()
        kind = (pending or {}).get("kind")
        if kind is None or kind == "describe":
            if len(text) <= 12:  # "5岁，男" said unasked is still the patient's age and sex
                slots.update(parse_answer("age_sex", text) or {})
            return text
        updates = parse_answer(kind, text)
        if updates is None:
            return "" if is_unsure(text) else text  # "不知道" skips the question
        if kind == "symptom":
            term = pending["term"]
            slots.setdefault("has" if updates["present"] else "denied", []).append(term)
            extra = text if len(text) > 4 else ""  # "没有，但是头晕" still says something
            return "，".join(x for x in ((f"有{term}" if updates["present"] else ""), extra) if x)
        slots.update(updates)
        return text if len(text) > 8 else ""

    def _summary(self, session: dict[str, Any], result: TriageResult | None, kind: str) -> dict[str, Any]:
        """The pre-consultation summary (预问诊) staff read before the visit."""
        slots = session.get("slots", {})
        decision = result.decision if result else None
        facts = result.facts if result else None
        associated = list(
            dict.fromkeys([term for _, term in (result.mentions if result else ())] + slots.get("has", []))
        )
        return {
            "kind": kind,
            "chief_complaint": session.get("chief", session.get("complaint", ""))[:500],
            "duration": _duration_text(facts.duration_days if facts else slots.get("duration_days")),
            "associated": associated[:12],
            "denied": slots.get("denied", []),
            "age": facts.age_years if facts else slots.get("age"),
            "sex": facts.sex if facts else slots.get("sex"),
            "pregnant": facts.pregnant if facts and facts.sex == "女" else None,
            "red_flag": result.red_flag.rule_id if result and result.red_flag else None,
            "departments": [c.name for c in decision.departments] if decision else [],
            "urgency": decision.urgency if decision else "routine",
            "reason": decision.reason if decision else "",
            "kb_version": result.kb_version if result else self.engine.kb.version,
            "turns": session.get("turns", 1),
        }

    def _store_summary(self, user: str, session: dict[str, Any], summary: dict[str, Any]) -> str | None:
        if self.consultations is None or not session.get("complaint"):
            return None
        session["summary_code"] = self.consultations.save(user, summary)
        return session["summary_code"]

    def _before_consent(self, user: str, text: str, command: str | None) -> Turn:
        if command == "agree":
            self.sessions.grant_consent(user, replies.NOTICE_VERSION)
            return Turn(replies.CONSENTED, "consent")
        if command == "handoff":  # a human can always be reached, consent or not
            return Turn(replies.HANDOFF, "handoff")
        # An emergency is answered at once even before consent; nothing is stored.
        hit = self.engine.red_flag(text)
        if hit is not None:
            return Turn(hit.reply, "red_flag")
        minutes = max(1, self.sessions.ttl_s // 60)
        return Turn(replies.consent_notice(self.retention_days, minutes), "consent_notice")


def _duration_text(days: float | None) -> str | None:
    if days is None:
        return None
    if days < 1:
        return "不到1天"
    if days < 30:
        return f"约{days:g}天"
    if days < 365:
        return f"约{days / 30:.0f}个月"
    return f"约{days / 365:.0f}年"
