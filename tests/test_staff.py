"""The staff API for pre-consultation summaries: authenticated, audited, retention-bound."""

from __future__ import annotations

import pytest
from conftest import make_settings


@pytest.fixture()
def staff_app(settings, redis_client, tmp_path):
    from triage import create_app

    values = settings.model_dump() | {"staff_tokens": "nurse-li:token-li,dr-wang:token-wang",
                                      "database_url": f"sqlite:///{tmp_path}/staff.db"}  # fmt: skip
    return create_app({"TESTING": True, "SETTINGS": values})


def test_staff_read_summaries_with_a_token_and_every_read_is_audited(staff_app, tmp_path):
    from triage.services import build_consultations

    store = build_consultations(make_settings("redis://unused", database_url=f"sqlite:///{tmp_path}/staff.db"))
    code = store.save("user-hash-1", {"kind": "triage", "chief_complaint": "胃疼三天", "duration": "约3天",
                                      "associated": ["胃痛"], "departments": ["消化内科"], "urgency": "routine"})  # fmt: skip
    client = staff_app.test_client()
    assert client.get(f"/staff/api/consultations/{code}").status_code == 401
    assert client.get(f"/staff/api/consultations/{code}", headers={"Authorization": "Bearer wrong"}).status_code == 401

    nurse = {"Authorization": "Bearer token-li"}
    found = client.get(f"/staff/api/consultations/{code.lower()}", headers=nurse)
    assert found.status_code == 200 and found.json["chief_complaint"] == "胃疼三天"
    assert "user_ref" not in found.json  # staff never see the patient's identifier
    assert client.get("/staff/api/consultations/NOPE22", headers=nurse).status_code == 404
    listing = client.get("/staff/api/consultations?urgency=routine", headers=nurse)
    assert [c["code"] for c in listing.json["consultations"]] == [code]
    assert client.get("/staff/api/consultations?urgency=bad", headers=nurse).status_code == 400

    events = client.get("/staff/api/audit", headers={"Authorization": "Bearer token-wang"}).json["events"]
    actions = [(e["actor"], e["action"]) for e in events]
    assert ("nurse-li", "consultation.read") in actions and ("nurse-li", "consultation.list") in actions
    assert actions[0] == ("dr-wang", "audit.read")

    assert store.forget("user-hash-1") == 1
    assert client.get(f"/staff/api/consultations/{code}", headers=nurse).status_code == 404
