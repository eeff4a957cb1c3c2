"""The knowledge base in a real database (SQLite and PostgreSQL): seed import, draft edits,
validation, publish, rollback, diff and export."""

from __future__ import annotations

import copy

import pytest
import yaml

from triage.config import PROJECT_DIR
from triage.knowledge.loader import KnowledgeBase
from triage.store.db import make_engine, make_sessionmaker
from triage.store.knowledge import InvalidKnowledge, KnowledgeRepo, to_knowledge_base, validate
from triage.store.migrate import upgrade

SEED = PROJECT_DIR / "knowledge"


@pytest.fixture()
def repo(database_url) -> KnowledgeRepo:
    engine = make_engine(database_url)
    upgrade(engine)
    yield KnowledgeRepo(make_sessionmaker(engine))
    engine.dispose()


def test_seed_import_publishes_version_one_equal_to_the_yaml(repo):
    assert repo.is_empty()
    assert repo.import_seed(SEED, actor="admin") == 1
    content = repo.active_content()
    from_db, from_yaml = to_knowledge_base(content), KnowledgeBase.load(SEED)
    assert from_db.version == from_yaml.version  # the same content, hashed the same way
    with pytest.raises(InvalidKnowledge):
        repo.import_seed(SEED)


def test_edit_diff_publish_rollback(repo):
    repo.import_seed(SEED)
    repo.add_entry("dermatology", {"term": "起红疙瘩", "kind": "symptom", "aliases": ["身上起红疙瘩"]}, actor="nurse")
    assert any("起红疙瘩" in line for line in repo.diff())
    assert repo.publish("reviewer", "加一个说法") == 2
    assert repo.active_number() == 2 and repo.diff() == []
    terms = {e["term"] for d in repo.active_content()["departments"] if d["id"] == "dermatology" for e in d["entries"]}
    assert "起红疙瘩" in terms
    repo.rollback(1, actor="reviewer")
    assert repo.active_number() == 1
    assert [v["number"] for v in repo.versions()] == [2, 1]
    actions = [e["action"] for e in repo.audit.recent()]
    assert {"kb.import", "kb.entry.add", "kb.publish", "kb.rollback"} <= set(actions)


def test_publish_refuses_an_invalid_draft(repo):
    repo.import_seed(SEED)
    rules = copy.deepcopy(repo.draft()["red_flags"])
    rules["rules"][0]["any"] = ["(unclosed"]
    repo.save_document("red_flags", rules, actor="nurse")
    with pytest.raises(InvalidKnowledge) as refused:
        repo.publish("reviewer")
    assert "红旗规则" in str(refused.value)
    assert repo.active_number() == 1
    repo.restore_draft(1, actor="reviewer")
    assert validate(repo.draft()) == []


def test_export_round_trips_to_the_seed_format(repo, tmp_path):
    repo.import_seed(SEED)
    out = repo.export(tmp_path / "export")
    assert KnowledgeBase.load(out).version == KnowledgeBase.load(SEED).version
    assert yaml.safe_load((out / "departments" / "dermatology.yaml").read_text("utf-8"))["name"] == "皮肤科"


def test_staff_accounts_lockout_and_audit(database_url):
    from triage.store.users import LoginRefused, UserStore

    engine = make_engine(database_url)
    upgrade(engine)
    users = UserStore(make_sessionmaker(engine))
    users.create("nurse", "editor", "nurse-password-1")
    with pytest.raises(ValueError):
        users.create("nurse", "editor", "another-password")
    assert users.authenticate("nurse", "nurse-password-1").role == "editor"
    for _ in range(5):
        with pytest.raises(LoginRefused):
            users.authenticate("nurse", "wrong-password")
    with pytest.raises(LoginRefused):  # locked, even with the right password
        users.authenticate("nurse", "nurse-password-1")
    events = [e["action"] for e in users.audit.recent()]
    assert "user.locked" in events and "user.login" in events
    engine.dispose()


def test_an_upgrade_adopts_a_new_kind_of_document(repo):
    """A database from before the red-flag examples existed gets them from the shipped seed:
    published at once when nothing else was pending, left in the draft for a reviewer otherwise."""
    from triage.store.db import KbDocument

    repo.import_seed(SEED)
    with repo.sessions.begin() as db:  # as an older release left it
        db.delete(db.get(KbDocument, "red_flag_examples"))
    assert repo.publish("reviewer", "旧版本") == 2 and not repo.active_content().get("red_flag_examples")

    repo.add_entry("dermatology", {"term": "手背起疹", "kind": "symptom"}, actor="nurse")  # an unpublished edit
    assert repo.adopt_new_documents(SEED) is None and repo.active_number() == 2  # the reviewer publishes both
    assert repo.draft()["red_flag_examples"] and "~ 红旗示例：新增" in "\n".join(repo.diff())
    repo.restore_draft(2, actor="reviewer")

    assert repo.adopt_new_documents(SEED) == 3
    assert len(repo.active_content()["red_flag_examples"]) > 1000
    assert repo.adopt_new_documents(SEED) is None  # once only
