"""The triage pipeline, one readable flow:

    lock → session → red flags → retrieve → LLM → validate → reply → save

It imports neither Flask nor Celery (an import-linter contract keeps it so):
stores, the model and the knowledge base are passed in, so the same code runs
in the worker, in ``triage predict`` and in the benchmarks.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from typing import Any

from triage import replies
from triage.decision import Decider, Decision, reason_for
from triage.guardrails import is_safe
from triage.knowledge.loader import KnowledgeBase
from triage.patient import PatientFacts, read_facts
from triage.redflags import RedFlagHit, RedFlagRules
from triage.retrieval.hybrid import Candidate, Retriever
from triage.sessions import SessionStore

MAX_COMPLAINT_CHARS = 1000


@dataclass
class TriageResult:
    reply: str
    decision: Decision
    red_flag: RedFlagHit | None
    facts: PatientFacts
    kb_version: str
    timings: dict[str, float] = field(default_factory=dict)

    def as_prediction(self, row_id: Any) -> dict[str, Any]:
        """The ``triage predict`` output row."""
        return {
            "id": row_id,
            "departments": [{"name": c.name, "canonical": c.canonical} for c in self.decision.departments],
            "urgency": self.decision.urgency,
            "red_flag": self.red_flag.rule_id if self.red_flag else None,
            "reason": self.red_flag.name if self.red_flag else self.decision.reason,
        }


class TriageEngine:
    """Everything that depends on one knowledge-base version, built once and shared."""

    def __init__(self, kb: KnowledgeBase, retriever: Retriever, red_flags: RedFlagRules, decider: Decider) -> None:
        self.kb = kb
        self.retriever = retriever
        self.red_flags = red_flags
        self.decider = decider

    def triage(
        self, text: str, age_years: float | None = None, sex: str | None = None, use_model: bool = True
    ) -> TriageResult:
        """Red flags → retrieve → LLM → validate → reply, for one complaint."""
        timings: dict[str, float] = {}
        text = text[:MAX_COMPLAINT_CHARS]
        facts = read_facts(text, age_years, sex)

        started = time.perf_counter()
        hit = self.red_flags.check(text, age_years=facts.age_years, sex=facts.sex)
        timings["red_flags"] = time.perf_counter() - started
        if hit is not None:  # answered from the rule's template; the model is never consulted
            return TriageResult(hit.reply, self._emergency_decision(text, facts), hit, facts, self.kb.version, timings)

        started = time.perf_counter()
        candidates = self.retriever.retrieve(text, limit=10)
        timings["retrieve"] = time.perf_counter() - started

        started = time.perf_counter()
        decision = self.decider.decide(text, candidates, facts, use_model=use_model)
        timings["model"] = time.perf_counter() - started

        reply = replies.recommendation(decision, self.kb)
        if not is_safe(reply):  # validate: a model-written reason that breaks a rule is replaced
            top = decision.departments[0] if decision.departments else None
            decision = Decision(decision.departments, decision.urgency, reason_for(top), "validated")
            reply = replies.recommendation(decision, self.kb)
        return TriageResult(reply, decision, None, facts, self.kb.version, timings)


    def _emergency_decision(self, text: str, facts: PatientFacts) -> Decision:
        """For the record and the hand-off (never for the reply): 急诊科 first, then the
        specialties retrieval finds, so staff know who takes over after the emergency."""
        emergency = self.kb.find_by_canonical("急诊科")
        ranked = self.decider.apply_patient_rules(self.retriever.retrieve(text, limit=10), facts)
        head = [Candidate(emergency.id, emergency.name, emergency.canonical, 1.0)] if emergency else []
        departments = tuple((head + [c for c in ranked if c.canonical != "急诊科"])[: self.decider.top_k])
        return Decision(departments, "emergency", "命中急症规则，请立即就医。", "red_flag")


AGREE = {"同意", "我同意", "好的同意", "好同意", "同意协议", "同意了", "ok同意"}
DELETE = ("删除我的数据", "删除数据", "删除我的信息", "撤回同意", "注销")
RESTART = ("重新开始", "重来", "从头开始")
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
    return None


@dataclass
class Turn:
    """What one patient message produced: the reply, and the triage result if there was one."""

    reply: str
    kind: str  # triage | red_flag | consent_notice | consent | deleted | restarted
    result: TriageResult | None = None


class TriagePipeline:
    """The conversational wrapper: consent, per-user lock and session around the engine."""

    def __init__(self, engine: TriageEngine, sessions: SessionStore, lock_ttl_s: int = 60,
                 retention_days: int = 30) -> None:  # fmt: skip
        self.engine = engine
        self.sessions = sessions
        self.lock_ttl_s = lock_ttl_s
        self.retention_days = retention_days

    def handle_text(self, user: str, text: str) -> Turn:
        command = command_of(text)
        if command == "delete":  # honoured at once, whatever state the conversation is in
            self.sessions.forget(user)
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
            history = session.get("complaint", "")
            complaint = f"{history}，{text}" if history else text
            result = self.engine.triage(  # red flags → retrieve → LLM → validate → reply
                complaint[-MAX_COMPLAINT_CHARS:], session.get("age"), session.get("sex")
            )
            session.update(
                complaint=complaint[-MAX_COMPLAINT_CHARS:],
                age=result.facts.age_years,
                sex=result.facts.sex,
                turns=session.get("turns", 0) + 1,
                last_departments=[c.name for c in result.decision.departments],
                red_flag=result.red_flag.rule_id if result.red_flag else None,
                kb_version=result.kb_version,
            )
            self.sessions.save(user, session)  # save
            return Turn(result.reply, "red_flag" if result.red_flag else "triage", result)

    def _before_consent(self, user: str, text: str, command: str | None) -> Turn:
        if command == "agree":
            self.sessions.grant_consent(user, replies.NOTICE_VERSION)
            return Turn(replies.CONSENTED, "consent")
        # An emergency is answered at once even before consent; nothing is stored.
        hit = self.engine.red_flags.check(text)
        if hit is not None:
            return Turn(hit.reply, "red_flag")
        minutes = max(1, self.sessions.ttl_s // 60)
        return Turn(replies.consent_notice(self.retention_days, minutes), "consent_notice")
