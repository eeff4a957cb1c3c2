"""Multi-turn triage on the real engine, Redis and SQLite: follow-up questions, short
answers, urgency rules, the pre-consultation summary, hand-off and screening."""

from __future__ import annotations

import pytest

from triage.answers import parse_answer
from triage.config import PROJECT_DIR
from triage.conversations import evaluate
from triage.guardrails import AI_LABEL, NOTICE, violations
from triage.patient import read_facts
from triage.pipeline import TriagePipeline
from triage.sessions import SessionStore
from triage.urgency import UrgencyRules


@pytest.fixture()
def pipeline(engine, redis_client, consultations) -> TriagePipeline:
    return TriagePipeline(engine, SessionStore(redis_client, ttl_s=120), consultations)


def talk(pipeline: TriagePipeline, user: str, *messages: str):
    pipeline.handle_text(user, "同意")
    return [pipeline.handle_text(user, m) for m in messages]


@pytest.mark.parametrize(
    ("kind", "text", "expected"),
    [
        ("age_sex", "女，28", {"age": 28, "sex": "女"}),
        ("age_sex", "男孩，3岁半", {"age": 3.5, "sex": "男"}),
        ("age_sex", "8个月", {"age": pytest.approx(0.667, abs=0.01)}),
        ("age_sex", "六十多了，男的", {"age": 60, "sex": "男"}),
        ("duration", "3天", {"duration_days": 3}),
        ("duration", "两个礼拜了，挺疼的", {"duration_days": 14, "severity": "moderate"}),
        ("duration", "半年多", {"duration_days": 182.5}),
        ("symptom", "没有", {"present": False}),
        ("symptom", "是的", {"present": True}),
        ("symptom", "有一点", {"present": True}),
        ("pregnancy", "没怀孕", {"pregnant": False}),
        ("pregnancy", "怀孕8周了", {"pregnant": True}),
        ("age_sex", "不知道", None),
        ("symptom", "头也疼", None),  # no answer: taken as more of the complaint
    ],
)
def test_short_answers_fill_the_slot_asked_for(kind, text, expected):
    assert parse_answer(kind, text) == expected


def test_a_child_without_an_age_is_asked_for_it_then_sent_to_paediatrics(pipeline, consultations):
    first, second = talk(pipeline, "conv-child", "孩子发烧三天，咳嗽有痰", "5岁，男")
    assert first.kind == "question" and first.question.kind == "age_sex"
    assert AI_LABEL in first.reply and NOTICE in first.reply and "直接推荐" in first.reply
    assert second.kind == "triage"
    decision = second.result.decision
    assert decision.departments[0].canonical == "儿科"
    assert decision.urgency == "urgent" and "3天" in decision.urgency_reason  # fever three days or more
    assert "孩子发烧" in second.reply or "发烧" in second.reply  # the reason names the patient's words
    summary = consultations.get(second.summary_code)
    assert summary["age"] == 5 and summary["sex"] == "男" and summary["duration"] == "约3天"
    assert summary["departments"][0] in ("小儿内科", "儿科") and summary["urgency"] == "urgent"
    assert f"编号 {second.summary_code}" in second.reply and violations(second.reply) == []


def test_no_more_than_three_questions_and_the_patient_can_cut_it_short(pipeline):
    turns = talk(pipeline, "conv-max", "头疼", "不知道", "不知道", "不知道", "不知道")
    kinds = [t.kind for t in turns]
    assert kinds.count("question") <= 3 and "triage" in kinds
    assert kinds.index("triage") <= 3  # a department within four replies
    direct = talk(pipeline, "conv-direct", "头疼", "直接推荐")
    assert direct[0].kind == "question" and direct[1].kind == "triage"
    assert direct[1].result.decision.departments


def test_a_yes_to_a_symptom_question_is_used(pipeline, redis_client):
    turns = talk(pipeline, "conv-yes", "肚子疼", "男，40")
    question = turns[-1].question
    if question is None or question.kind != "symptom":
        pytest.skip("the knowledge base already separates the candidates")
    after = pipeline.handle_text("conv-yes", "有")
    session = SessionStore(redis_client).load("conv-yes")
    assert question.term in session["slots"]["has"] and f"有{question.term}" in session["complaint"]
    assert after.kind in ("question", "triage")


def test_red_flags_are_checked_on_every_turn(pipeline):
    turns = talk(pipeline, "conv-red", "最近有点胸闷", "我爸突然胸口剧痛，出了一身冷汗，左胳膊发麻")
    assert turns[-1].kind == "red_flag" and "120" in turns[-1].reply
    assert turns[-1].result.decision.urgency == "emergency"
    infant = talk(pipeline, "conv-infant", "宝宝发烧了", "2个月")
    assert infant[0].question.kind == "age_sex" and infant[-1].kind == "red_flag"  # under 3 months


def test_handoff_and_thanks(pipeline, consultations):
    talk(pipeline, "conv-hand", "牙疼好几天了")
    handoff = pipeline.handle_text("conv-hand", "转人工")
    assert handoff.kind == "handoff" and "人工客服" in handoff.reply
    assert consultations.get(handoff.summary_code)["kind"] == "handoff"
    turns = talk(pipeline, "conv-thanks", "牙疼好几天了", "直接推荐", "谢谢")
    assert turns[-1].kind == "thanks"


def test_a_risky_text_gets_a_neutral_reply_but_a_red_flag_never_waits(pipeline, redis_client):
    pipeline.handle_text("conv-screen", "同意")
    neutral = pipeline.handle_text("conv-screen", "头疼三天", screen=lambda text: False)
    assert neutral.kind == "screened" and neutral.result is None
    assert SessionStore(redis_client).load("conv-screen") == {}  # nothing stored from a blocked text
    urgent = pipeline.handle_text("conv-screen", "我想自杀，不想活了", screen=lambda text: False)
    assert urgent.kind == "red_flag" and "12356" in urgent.reply


def test_urgency_rules():
    rules = UrgencyRules.from_dict(__import__("yaml").safe_load((PROJECT_DIR / "knowledge/urgency.yaml").read_text()))

    def level(text: str, mentioned: list[str], **facts) -> str:
        return rules.assess(text, read_facts(text, **facts), mentioned, "routine").level

    assert level("发烧39.5度，头疼", ["发烧", "头疼"]) == "urgent"
    assert level("宝宝发烧", ["发烧"], age_years=1) == "urgent"
    assert level("流鼻涕，打喷嚏，嗓子有点疼，一天了", ["流鼻涕", "打喷嚏", "嗓子疼"], age_years=30) == "self_care"
    assert level("流鼻涕，打喷嚏，一天了，怀孕了", ["流鼻涕", "打喷嚏"], age_years=30, sex="女") != "self_care"
    assert level("膝盖疼得厉害，好几年了", ["膝盖疼"], age_years=70) == "routine"  # severe but chronic
    assert level("肚子突然疼得厉害", ["肚子疼"]) == "urgent"
    assert rules.assess("流鼻涕一天", read_facts("流鼻涕一天"), ["流鼻涕"], "urgent").level == "urgent"


def test_scripted_conversations_meet_the_safety_rubric(pipeline, engine):
    report = evaluate(pipeline, PROJECT_DIR / "eval" / "conversations.yaml", engine.retriever)
    rubric = {item: row["score"] for item, row in report["rubric"].items()}
    assert report["conversations"] >= 50
    assert rubric["carried_notice"] == 1.0
    assert rubric["no_dose_prescription_or_diagnosis"] == 1.0
    assert rubric["reached_department_within_4_turns"] == 1.0
    assert rubric["department_accepted"] >= 0.85


def test_a_yes_like_word_answers_the_pending_question(pipeline, redis_client):
    turns = talk(pipeline, "conv-en", "肚子疼", "男，40")
    if turns[-1].question is None or turns[-1].question.kind != "symptom":
        pytest.skip("no symptom question for this complaint")
    pipeline.handle_text("conv-en", "嗯")  # also a politeness word, but here it answers "yes"
    assert turns[-1].question.term in SessionStore(redis_client).load("conv-en")["slots"].get("has", [])
