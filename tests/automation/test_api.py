"""`assessments/`, `tasks/` and `csat/`: what operators and integrators manage and read."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from django.test import Client

from automation.models import AssessmentFlow, AssessmentRun, CsatRating, Task
from automation.services import assessment_answer, assessment_start, csat_record
from conversations.services.messages import message_receive
from inbox.models import Notification
from tests.factories import ConversationFactory, OperatorFactory, UserFactory
from tests.support import error_of

DEFINITION: dict[str, Any] = {
    "intro": "Two questions.",
    "questions": [
        {"id": "name", "text": "Your name?", "type": "text"},
        {"id": "ok", "text": "Happy?", "type": "yes_no", "score": {"yes": 2, "no": 0}},
    ],
    "outcomes": [{"id": "meh", "min_score": 0}, {"id": "happy", "min_score": 2}],
    "completion": "Thanks {name}.",
}


def _flow(client: Any, **fields: Any) -> Any:
    payload = {"key": "mood", "name": "Mood", "definition": DEFINITION, **fields}
    return client.post("/api/v1/assessments/", payload, format="json")


# --- assessments/ --------------------------------------------------------------------------


def test_flows_are_defined_changed_and_listed(tenant_a) -> None:
    client = tenant_a.client()
    response = _flow(client, trigger_keywords=["mood check"])
    assert response.status_code == 201, response.content
    flow = response.json()
    assert set(flow) == {
        "id",
        "key",
        "name",
        "description",
        "trigger_keywords",
        "definition",
        "enabled",
        "created_at",
        "updated_at",
    }
    assert flow["definition"] == DEFINITION
    url = f"/api/v1/assessments/{flow['id']}/"
    changed = client.patch(url, {"enabled": False, "name": "Mood check"}, format="json")
    assert changed.status_code == 200
    assert (changed.json()["enabled"], changed.json()["name"]) == (False, "Mood check")
    assert [f["key"] for f in client.get("/api/v1/assessments/").json()["results"]] == ["mood"]
    assert _flow(client).status_code == 400  # the key is taken


def test_an_invalid_definition_is_refused_with_the_path_of_each_problem(tenant_a) -> None:
    bad = copy.deepcopy(DEFINITION)
    bad["questions"][1]["type"] = "maybe"
    bad["completion"] = "Thanks {nobody}."
    response = _flow(tenant_a.client(), definition=bad)
    assert response.status_code == 400
    error = error_of(response)
    assert error["code"] == "validation_error"
    assert set(error["details"]) == {"definition.questions[1].type", "definition.completion"}
    for payload in ({"trigger_keywords": "mood"}, {"definition": "not json object"}):
        refused = _flow(tenant_a.client(), **payload)
        assert refused.status_code == 400
    with tenant_a.schema():
        assert not AssessmentFlow.objects.exists()


def test_results_show_each_run_and_a_flow_with_runs_cannot_be_deleted(tenant_a) -> None:
    client = tenant_a.client()
    flow_id = _flow(client).json()["id"]
    with tenant_a.schema():
        flow = AssessmentFlow.objects.get(pk=flow_id)
        conversation = ConversationFactory.create()

        def say(text: str) -> Any:
            message, _ = message_receive(
                conversation=conversation,
                contact=conversation.contact,
                content={"type": "text", "text": text},
            )
            return message

        assessment_start(flow=flow, conversation=conversation, message=say("start"))
        run = AssessmentRun.objects.get()
        assessment_answer(run=run, message=say("Eve"), text="Eve")
        assessment_answer(run=run, message=say("yes"), text="yes")
    results = client.get(f"/api/v1/assessments/{flow_id}/results/").json()
    (result,) = results["results"]
    assert result["answers"] == {"name": "Eve", "ok": True}
    assert result["progress"] == {"answered": 2, "total": 2}
    assert (result["status"], result["score"], result["outcome"]) == ("completed", 2.0, "happy")
    assert result["conversation"] == str(conversation.pk)
    response = client.delete(f"/api/v1/assessments/{flow_id}/")
    assert response.status_code == 409
    assert error_of(response)["code"] == "flow_in_use"
    unused = _flow(client, key="other").json()["id"]
    assert client.delete(f"/api/v1/assessments/{unused}/").status_code == 204


def test_another_tenants_flows_are_not_found(tenant_a, tenant_b) -> None:
    flow_id = _flow(tenant_a.client()).json()["id"]
    other = tenant_b.client()
    assert other.get("/api/v1/assessments/").json()["results"] == []
    for response in (
        other.get(f"/api/v1/assessments/{flow_id}/"),
        other.get(f"/api/v1/assessments/{flow_id}/results/"),
        other.patch(f"/api/v1/assessments/{flow_id}/", {"name": "x"}, format="json"),
        other.delete(f"/api/v1/assessments/{flow_id}/"),
    ):
        assert response.status_code == 404
    assert Client().get("/api/v1/assessments/").status_code == 401


def test_the_admin_refuses_an_invalid_definition(tenant_a, client) -> None:
    with tenant_a.schema():
        client.force_login(UserFactory.create(username="flow_admin", is_superuser=True))
    response = client.post(
        f"/t/{tenant_a.slug}/admin/automation/assessmentflow/add/",
        {
            "key": "mood",
            "name": "Mood",
            "description": "",
            "trigger_keywords": "[]",
            "definition": '{"questions": []}',
            "enabled": "on",
        },
    )
    assert response.status_code == 200
    assert b"questions: A list of 1 to 50 questions." in response.content
    with tenant_a.schema():
        assert not AssessmentFlow.objects.exists()


# --- tasks/ --------------------------------------------------------------------------------


def test_tasks_are_created_assigned_and_finished_with_notifications(tenant_a) -> None:
    client = tenant_a.client()
    with tenant_a.schema():
        operator = OperatorFactory.create()
        conversation = ConversationFactory.create()
    created = client.post(
        "/api/v1/tasks/",
        {"title": "Call back", "conversation": str(conversation.pk), "priority": 3},
        format="json",
    )
    assert created.status_code == 201, created.content
    task = created.json()
    assert (task["status"], task["assignee"], task["contact"]) == (
        "open",
        None,
        str(conversation.contact_id),
    )
    url = f"/api/v1/tasks/{task['id']}/"
    assigned = client.patch(url, {"assignee": str(operator.pk)}, format="json")
    assert assigned.json()["assignee"] == str(operator.pk)
    with tenant_a.schema():
        notified = {
            (kind, str(operator_id), title)
            for kind, operator_id, title in Notification.objects.values_list(
                "kind", "operator_id", "title"
            )
        }
        assert notified == {
            ("task", "None", "New task: Call back"),
            ("task", str(operator.pk), "Task assigned to you: Call back"),
        }
    done = client.patch(url, {"status": "done"}, format="json").json()
    assert done["completed_at"] is not None
    reopened = client.patch(url, {"status": "open"}, format="json").json()
    assert reopened["completed_at"] is None
    assert [
        t["id"] for t in client.get("/api/v1/tasks/", {"status": "open"}).json()["results"]
    ] == [task["id"]]
    assert client.get("/api/v1/tasks/", {"assignee": str(operator.pk)}).json()["results"]
    assert client.get("/api/v1/tasks/", {"status": "done"}).json()["results"] == []
    assert client.delete(url).status_code == 204
    done_already = client.post(
        "/api/v1/tasks/", {"title": "Logged call", "status": "done"}, format="json"
    )
    assert done_already.status_code == 201
    assert done_already.json()["completed_at"] is not None


@pytest.mark.parametrize(
    "payload",
    [
        {},
        {"title": ""},
        {"title": "x", "status": "someday"},
        {"title": "x", "priority": 9},
        {"title": "x", "assignee": "00000000-0000-0000-0000-000000000000"},
        {"title": "x", "due_at": "tomorrow"},
        {"title": "x", "owner": "me"},
    ],
)
def test_bad_tasks_are_refused(tenant_a, payload) -> None:
    response = tenant_a.client().post("/api/v1/tasks/", payload, format="json")
    assert response.status_code == 400
    assert error_of(response)["code"] == "validation_error"
    with tenant_a.schema():
        assert not Task.objects.exists()


def test_tasks_and_operators_of_another_tenant_are_out_of_reach(tenant_a, tenant_b) -> None:
    with tenant_b.schema():
        stranger = OperatorFactory.create()
    task = tenant_a.client().post("/api/v1/tasks/", {"title": "Mine"}, format="json").json()
    other = tenant_b.client()
    assert other.get("/api/v1/tasks/").json()["results"] == []
    assert other.get(f"/api/v1/tasks/{task['id']}/").status_code == 404
    assert (
        other.patch(f"/api/v1/tasks/{task['id']}/", {"title": "x"}, format="json").status_code
        == 404
    )
    # Tenant B's operator is no assignee in tenant A.
    response = tenant_a.client().patch(
        f"/api/v1/tasks/{task['id']}/", {"assignee": str(stranger.pk)}, format="json"
    )
    assert response.status_code == 400
    assert "assignee" in error_of(response)["details"]


# --- csat/ ---------------------------------------------------------------------------------


def _rate(conversation: Any, score: int, raw: str) -> CsatRating:
    message, _ = message_receive(
        conversation=conversation,
        contact=conversation.contact,
        content={"type": "text", "text": raw},
    )
    return csat_record(message=message, score=score, raw=raw)


def test_ratings_are_listed_filtered_and_summarised(tenant_a, tenant_b) -> None:
    with tenant_a.schema():
        conversation = ConversationFactory.create()
        _rate(conversation, 5, "5")
        _rate(conversation, 4, "👍")
        low = _rate(conversation, 1, "1")
    client = tenant_a.client()
    listed = client.get("/api/v1/csat/").json()["results"]
    assert len(listed) == 3
    assert set(listed[0]) == {
        "id",
        "conversation",
        "contact",
        "message",
        "rated_message",
        "score",
        "sentiment",
        "raw",
        "created_at",
    }
    negative = client.get("/api/v1/csat/", {"sentiment": "negative"}).json()["results"]
    assert [r["id"] for r in negative] == [str(low.pk)]
    assert client.get(f"/api/v1/csat/{low.pk}/").json()["score"] == 1
    assert client.get("/api/v1/csat/summary/").json() == {
        "count": 3,
        "average": 3.33,
        "positive": 2,
        "neutral": 0,
        "negative": 1,
    }
    assert client.get("/api/v1/csat/", {"sentiment": "furious"}).status_code == 400
    # Read-only, and another tenant sees none of it.
    assert client.post("/api/v1/csat/", {"score": 5}, format="json").status_code == 405
    assert client.delete(f"/api/v1/csat/{low.pk}/").status_code == 405
    assert tenant_b.client().get(f"/api/v1/csat/{low.pk}/").status_code == 404
    assert tenant_b.client().get("/api/v1/csat/summary/").json()["count"] == 0


def test_operators_create_and_reassign_tasks_in_the_admin(tenant_a, client) -> None:
    with tenant_a.schema():
        client.force_login(UserFactory.create(username="task_admin", is_superuser=True))
        operator = OperatorFactory.create()
    base = f"/t/{tenant_a.slug}/admin/automation/task/"
    form = {
        "title": "Ship a replacement",
        "description": "",
        "status": "open",
        "priority": "2",
        "due_at_0": "",
        "due_at_1": "",
        "assignee": "",
        "conversation": "",
        "contact": "",
    }
    assert client.post(f"{base}add/", form).status_code == 302
    with tenant_a.schema():
        task = Task.objects.get()
        assert Notification.objects.get(kind="task").title == "New task: Ship a replacement"
    changed = client.post(f"{base}{task.pk}/change/", {**form, "assignee": str(operator.pk)})
    assert changed.status_code == 302
    with tenant_a.schema():
        task.refresh_from_db()
        assert task.assignee == operator
        assert Notification.objects.filter(kind="task", operator=operator).count() == 1
