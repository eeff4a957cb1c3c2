"""The staff editor through Flask's test client on a real SQLite database and Redis:
login and lockout, CSRF, roles, editing the draft, 试一试, publish, rollback, audit."""

from __future__ import annotations

import re

import pytest
import yaml

from triage.config import PROJECT_DIR
from triage.runtime import KB_ACTIVE_KEY, runtime


@pytest.fixture()
def editor_app(settings, redis_client, tmp_path):
    from triage import create_app

    values = settings.model_dump() | {"database_url": f"sqlite:///{tmp_path}/editor.db"}
    app = create_app({"TESTING": True, "SETTINGS": values})
    runtime.knowledge.import_seed(PROJECT_DIR / "knowledge")
    runtime.users.create("nurse", "editor", "nurse-password-1")
    runtime.users.create("chief", "reviewer", "chief-password-1")
    return app


def login(client, username: str, password: str):
    page = client.get("/editor/login").get_data(as_text=True)
    token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    response = client.post("/editor/login", data={"username": username, "password": password, "csrf_token": token})
    if response.status_code == 302:  # a new session on login, with a new token
        page = client.get("/editor/login").get_data(as_text=True)
        token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    return response, token


def test_login_lockout_and_csrf(editor_app):
    client = editor_app.test_client()
    assert client.get("/editor/").status_code == 302  # to the login page
    for _ in range(5):
        response, _ = login(client, "nurse", "wrong-password")
        assert response.status_code == 401
    response, _ = login(client, "nurse", "nurse-password-1")
    assert response.status_code == 401 and "锁定" in response.get_data(as_text=True)  # locked even when right
    response, _ = login(client, "chief", "chief-password-1")
    assert response.status_code == 302
    assert client.post("/editor/publish", data={"note": "no token"}).status_code == 400
    events = [e["action"] for e in runtime.audit.recent()]
    assert "user.locked" in events and "user.login" in events


def test_edit_try_publish_rollback(editor_app, redis_client):
    nurse = editor_app.test_client()
    _, token = login(nurse, "nurse", "nurse-password-1")
    assert "v1" in nurse.get("/editor/").get_data(as_text=True)
    listing = nurse.get("/editor/departments?q=皮肤").get_data(as_text=True)
    assert "皮肤科" in listing

    added = nurse.post("/editor/departments/dermatology/entries", follow_redirects=True,
                       data={"csrf_token": token, "term": "手上起小水疱", "aliases": "手指缝起水泡、手上长小泡",
                             "kind": "symptom", "weight": "1.0", "urgency": ""})  # fmt: skip
    assert "已添加" in added.get_data(as_text=True)
    bad = nurse.post("/editor/departments/dermatology/entries", follow_redirects=True,
                     data={"csrf_token": token, "term": "x" * 41, "kind": "symptom"})  # fmt: skip
    assert "词条不合法" in bad.get_data(as_text=True)

    page = nurse.get("/editor/publish").get_data(as_text=True)
    assert "手上起小水疱" in page and "发布需要" in page
    assert nurse.post("/editor/publish", data={"csrf_token": token}).status_code == 403  # editors cannot publish

    tried = nurse.post("/editor/try", data={"csrf_token": token, "text": "手指缝起水泡，很痒", "age": "30", "sex": "女"})
    body = tried.get_data(as_text=True)
    assert 'id="try-department">皮肤科' in body and "手上起小水疱" in body

    questions = runtime.knowledge.draft()["questions"]
    bad_questions = yaml.safe_dump({**questions, "symptom": "有没有？"}, allow_unicode=True)
    refused = nurse.post("/editor/documents/questions", data={"csrf_token": token, "body": bad_questions})
    assert "{symptom}" in refused.get_data(as_text=True) and runtime.knowledge.draft()["questions"] == questions
    kinder = yaml.safe_dump({**questions, "age_sex": "请问孩子或您本人多大了？是男是女？"}, allow_unicode=True)
    nurse.post("/editor/documents/questions", data={"csrf_token": token, "body": kinder})
    assert runtime.knowledge.draft()["questions"]["age_sex"] == "请问孩子或您本人多大了？是男是女？"

    tester = nurse.post("/editor/redflags", data={"csrf_token": token, "action": "test", "sample": "我想自杀"})
    assert "命中" in tester.get_data(as_text=True)
    missed = "右边身子像灌了铅，脸也木木的"  # a phrasing the rules may miss becomes an example
    nurse.post("/editor/redflags/examples", data={"csrf_token": token, "text": missed, "expect": "stroke"})
    assert {"text": missed, "expect": "stroke"} in runtime.knowledge.draft()["red_flag_examples"]
    again = nurse.post("/editor/redflags/examples", follow_redirects=True,
                       data={"csrf_token": token, "text": missed, "expect": "stroke"})  # fmt: skip
    assert "已有相同的示例" in again.get_data(as_text=True)
    assert f"红旗示例「{missed}」" in nurse.get("/editor/publish").get_data(as_text=True)

    chief = editor_app.test_client()
    _, chief_token = login(chief, "chief", "chief-password-1")
    published = chief.post("/editor/publish", data={"csrf_token": chief_token, "note": "手部水疱"}, follow_redirects=True)
    assert "已发布 v2" in published.get_data(as_text=True)
    assert int(redis_client.get(KB_ACTIVE_KEY)) == 2 and runtime.knowledge.active_number() == 2
    assert editor_app.test_client().get("/healthz").json["kb_version"] == "v2"

    chief.post("/editor/rollback/1", data={"csrf_token": chief_token})
    assert int(redis_client.get(KB_ACTIVE_KEY)) == 1
    assert nurse.get("/editor/audit").status_code == 403
    audit = chief.get("/editor/audit?action=kb.").get_data(as_text=True)
    assert "kb.publish" in audit and "kb.rollback" in audit and "kb.entry.add" in audit
