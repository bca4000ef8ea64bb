"""Routing: the structured intent call over the tenant's catalogue, the fallback route below the
agent's threshold, rules in priority order with each matcher, the offline keyword path, handoff
triggers, the routing-rules / intents / routing-decisions APIs and their tenant isolation, and
one message end to end through the API channel and a real worker."""

from __future__ import annotations

import datetime
import json
import time
import uuid
from typing import Any

import pytest
from django.utils import timezone
from django_tenants.utils import schema_context

from agents.models import Agent, LlmCall
from channels_app.models import Channel, ChannelKind
from conversations.models import Contact, Conversation, Message, Operator, Participant
from conversations.services.messages import message_receive
from hub.memo import CHECK_SECONDS, GENERATION_KEY
from hub.redis import get_redis
from inbox.models import Notification
from processing.handlers.answer import HANDOFF_TEXT
from processing.models import ConversationCursor, Intent, ReplyCharge, RoutingDecision, RoutingRule
from processing.routing import route_decide
from processing.services import conversation_drain
from tenants.models import Tenant
from tests import support
from tests.factories import AgentFactory, OperatorFactory, UserFactory
from tests.fake_openai import RESPONSES, FakeOpenAI

ALWAYS_OPEN = {
    day: [["00:00", "24:00"]] for day in ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
}


@pytest.fixture(autouse=True)
def _clean_redis() -> Any:
    yield
    client = get_redis()
    for key in client.scan_iter("hub:context:tenant_*"):
        client.delete(key)
    client.delete("hub:handoff:round_robin:tenant_a", "hub:handoff:round_robin:tenant_b")


def _conversation(
    *,
    agent: Agent | None = None,
    kind: str = ChannelKind.WEBCHAT,
    attributes: dict[str, Any] | None = None,
    language: str = "",
) -> Conversation:
    agent = agent or AgentFactory.create()
    channel = Channel.objects.create(kind=kind, name="Chat", agent=agent, config={})
    contact = Contact.objects.create(name="Ada", attributes=attributes or {}, language=language)
    return Conversation.objects.create(channel=channel, contact=contact)


def _ask(conversation: Conversation, text: str) -> Message:
    message, _ = message_receive(
        conversation=conversation,
        contact=conversation.contact,
        content={"type": "text", "text": text},
    )
    return message


def _route(conversation: Conversation, text: str) -> RoutingDecision:
    message = _ask(conversation, text)
    agent = conversation.channel.agent
    assert agent is not None
    route_decide(message=message, conversation=conversation, agent=agent, text=text)
    return RoutingDecision.objects.get(message=message)


def _process(conversation: Conversation, text: str) -> RoutingDecision:
    """The message received and processed as a worker would."""
    message = _ask(conversation, text)
    conversation_drain(conversation_id=conversation.pk)
    return RoutingDecision.objects.get(message=message)


def _intent_requests(fake: FakeOpenAI) -> list[dict[str, Any]]:
    bodies = [r.json() for r in fake.requests_to("/v1/responses")]
    return [b for b in bodies if (b.get("text") or {}).get("format", {}).get("name") == "intent"]


def _catalogue() -> None:
    Intent.objects.create(
        name="order_status",
        description="Where an order is, when it arrives.",
        examples=["where is my order?", "has A-1001 shipped?"],
        keywords=["where is my order", "tracking"],
    )
    Intent.objects.create(
        name="refund", description="Money back for an order.", keywords=["refund", "money back"]
    )


def _set_tenant(slug: str, **fields: Any) -> None:
    Tenant.objects.filter(schema_name=slug).update(**fields)


# --- The intent call --------------------------------------------------------------------------


def test_the_structured_intent_is_parsed_priced_and_recorded(tenant_a, openai_fake) -> None:
    openai_fake.reply_text = "It left the warehouse today."
    openai_fake.structured = {
        "intent": "order_status",
        "confidence": 0.92,
        "entities": [{"type": "order_number", "value": "A-1001"}],
        "sentiment": "neutral",
        "language": "en",
    }
    with tenant_a.schema():
        _catalogue()
        rule = RoutingRule.objects.create(name="Orders", intents=["order_status"], handler="answer")
        conversation = _conversation()
        message = _ask(conversation, "Where is A-1001?")
        conversation_drain(conversation_id=conversation.pk)

        decision = RoutingDecision.objects.get(message=message)
        assert (decision.intent, decision.confidence, decision.intent_source) == (
            "order_status",
            0.92,
            "llm",
        )
        assert decision.entities == [{"type": "order_number", "value": "A-1001"}]
        assert (decision.sentiment, decision.language) == ("neutral", "en")
        assert (decision.rule, decision.rule_name, decision.reason) == (rule, "Orders", "rule")
        assert (decision.handler, decision.tokens) == ("answer", 30)
        (reply,) = Message.objects.filter(conversation=conversation, sender_type="ai")
        assert reply.content["text"] == "It left the warehouse today."
        # The intent call's tokens are priced into the reply, with the reply's own.
        assert ReplyCharge.objects.get(message=reply).tokens == 60
        assert LlmCall.objects.filter(purpose="intent", outcome="ok").count() == 1

    (request,) = _intent_requests(openai_fake)
    assert request["store"] is False
    assert request["input"] == "Where is A-1001?"
    schema = request["text"]["format"]["schema"]
    assert schema["properties"]["intent"]["enum"] == ["order_status", "refund", "other"]
    assert schema["properties"]["sentiment"]["enum"] == ["positive", "neutral", "negative"]
    assert set(schema["required"]) == {"intent", "confidence", "entities", "sentiment", "language"}
    # The catalogue goes with the call: names, descriptions and examples.
    assert "- order_status: Where an order is, when it arrives." in request["instructions"]
    assert '"has A-1001 shipped?"' in request["instructions"]


def test_no_catalogue_means_no_intent_call(tenant_a, openai_fake) -> None:
    with tenant_a.schema():
        conversation = _conversation()
        message = _ask(conversation, "Hello there")
        conversation_drain(conversation_id=conversation.pk)
        decision = RoutingDecision.objects.get(message=message)
        assert (decision.intent, decision.confidence, decision.reason) == ("", None, "default")
    assert _intent_requests(openai_fake) == []


def test_an_intent_outside_the_catalogue_is_other(tenant_a, openai_fake) -> None:
    openai_fake.structured = {
        "intent": "world_domination",
        "confidence": 0.99,
        "entities": [],
        "sentiment": "neutral",
        "language": "en",
    }
    with tenant_a.schema():
        _catalogue()
        decision = _route(_conversation(), "Take over the world")
        assert decision.intent == "other"


def test_below_the_threshold_the_fallback_route_applies(tenant_a, openai_fake) -> None:
    openai_fake.structured = {
        "intent": "refund",
        "confidence": 0.4,
        "entities": [],
        "sentiment": "neutral",
        "language": "en",
    }
    with tenant_a.schema():
        _catalogue()
        RoutingRule.objects.create(name="Refunds to people", intents=["refund"], handler="handoff")
        conversation = _conversation(agent=AgentFactory.create(handoff_confidence_threshold=0.7))
        message = _ask(conversation, "Maybe something about money?")
        conversation_drain(conversation_id=conversation.pk)

        decision = RoutingDecision.objects.get(message=message)
        assert (decision.intent, decision.confidence) == ("refund", 0.4)
        assert (decision.rule, decision.handler, decision.reason) == (
            None,
            "answer",
            "low_confidence",
        )
        conversation.refresh_from_db()
        assert conversation.ai_active is True

        # The same answer with a rule-level minimum: confident for the agent, not for the rule.
        openai_fake.structured = {**openai_fake.structured, "confidence": 0.8}
        RoutingRule.objects.update(min_confidence=0.9)
        decision = _route(conversation, "About money again")
        assert (decision.handler, decision.reason) == ("answer", "default")


def test_low_confidence_twice_in_a_row_hands_off(tenant_a, openai_fake) -> None:
    unsure = {
        "intent": "refund",
        "confidence": 0.2,
        "entities": [],
        "sentiment": "neutral",
        "language": "en",
    }
    with tenant_a.schema():
        _catalogue()
        conversation = _conversation()
        openai_fake.structured = unsure
        assert _process(conversation, "hmm").reason == "low_confidence"
        openai_fake.structured = {**unsure, "confidence": 0.95}
        assert _process(conversation, "a refund please").reason == "default"
        # The streak was broken: one low answer is still the fallback route.
        openai_fake.structured = unsure
        assert _process(conversation, "hmm?").reason == "low_confidence"
        conversation.refresh_from_db()
        assert conversation.ai_active is True

        decision = _process(conversation, "hmmm")
        assert (decision.handler, decision.reason) == ("handoff", "repeated_low_confidence")
        conversation.refresh_from_db()
        assert (conversation.ai_active, conversation.status) == (False, "pending")
        notification = Notification.objects.get(conversation=conversation)
        assert "unsure twice" in notification.body


def test_negative_sentiment_hands_off_unless_the_agent_says_not_to(tenant_a, openai_fake) -> None:
    openai_fake.structured = {
        "intent": "refund",
        "confidence": 0.9,
        "entities": [],
        "sentiment": "negative",
        "language": "en",
    }
    with tenant_a.schema():
        _catalogue()
        conversation = _conversation()
        decision = _route(conversation, "This is the third time you got it wrong!!")
        assert (decision.handler, decision.reason, decision.sentiment) == (
            "handoff",
            "negative_sentiment",
            "negative",
        )
        calm = _conversation(agent=AgentFactory.create(handoff_on_negative_sentiment=False))
        assert _route(calm, "This is the third time!!").handler == "answer"


def test_asking_for_a_person_hands_off_without_an_intent_call(tenant_a, openai_fake) -> None:
    with tenant_a.schema():
        _catalogue()
        agent = AgentFactory.create(handoff_keywords=["speak to the manager"])
        conversation = _conversation(agent=agent)
        assert _route(conversation, "Can I talk to a HUMAN please?").reason == "explicit_request"
        assert _route(conversation, "I want to speak  to the Manager").reason == "handoff_keyword"
        # Whole words only: "agents", "personal" and "humane" ask for nobody.
        assert _route(conversation, "Are your agents humane? personal data?").handler == "answer"
    # Only the last message needed the intent call.
    assert len(_intent_requests(openai_fake)) == 1


def test_a_failing_intent_call_falls_back_to_keywords(tenant_a, openai_fake) -> None:
    openai_fake.fail(RESPONSES, 500, times=3)  # every attempt of the intent call
    openai_fake.reply_text = "Sure."
    with tenant_a.schema():
        _catalogue()
        conversation = _conversation()
        message = _ask(conversation, "I want a refund")
        conversation_drain(conversation_id=conversation.pk)
        decision = RoutingDecision.objects.get(message=message)
        assert (decision.intent, decision.intent_source, decision.tokens) == (
            "refund",
            "keywords",
            0,
        )
        assert Message.objects.filter(conversation=conversation, sender_type="ai").count() == 1


def test_a_reaction_makes_no_intent_call(tenant_a, openai_fake) -> None:
    with tenant_a.schema():
        _catalogue()
        conversation = _conversation()
        message, _ = message_receive(
            conversation=conversation,
            contact=conversation.contact,
            content={"type": "reaction", "emoji": "👍", "message_id": str(uuid.uuid4())},
        )
        conversation_drain(conversation_id=conversation.pk)
        decision = RoutingDecision.objects.get(message=message)
        assert (decision.intent, decision.handler, decision.reason) == ("", "answer", "default")
    assert _intent_requests(openai_fake) == []


# --- Offline ----------------------------------------------------------------------------------


def test_offline_keywords_find_the_intent_and_rules_route_it(tenant_a) -> None:
    """No OPENAI_API_KEY in tests unless the fake is used: no LLM at all."""
    with tenant_a.schema():
        _catalogue()
        RoutingRule.objects.create(name="Refunds", intents=["refund"], handler="handoff")
        conversation = _conversation()
        message = _ask(conversation, "Can I get my MONEY  back?")
        conversation_drain(conversation_id=conversation.pk)
        decision = RoutingDecision.objects.get(message=message)
        assert (decision.intent, decision.confidence, decision.intent_source) == (
            "refund",
            1.0,
            "keywords",
        )
        assert (decision.handler, decision.reason, decision.rule_name) == (
            "handoff",
            "rule",
            "Refunds",
        )
        (reply,) = Message.objects.filter(conversation=conversation, sender_type="ai")
        assert reply.content["text"] == HANDOFF_TEXT
        conversation.refresh_from_db()
        assert (conversation.ai_active, conversation.status) == (False, "pending")
        assert not LlmCall.objects.exists()

        # Two intents mentioned once each: each gets half of the mentions.
        other = _conversation()
        decision = _route(other, "tracking for my refund")
        assert (decision.intent_source, decision.confidence) == ("keywords", 0.5)
        # Nothing mentioned: no intent, not "low confidence".
        decision = _route(other, "hello")
        assert (decision.intent, decision.confidence, decision.reason) == ("", None, "default")


# --- Rules --------------------------------------------------------------------------------------


def _rule(**fields: Any) -> RoutingRule:
    return RoutingRule.objects.create(name=fields.pop("name", "rule"), handler="handoff", **fields)


@pytest.mark.parametrize(
    ("conditions", "text", "matches"),
    [
        ({"channel_kinds": ["webchat"]}, "hi", True),
        ({"channel_kinds": ["whatsapp", "sms"]}, "hi", False),
        (
            {"keywords": ["invoice", "billing address"]},
            "Where do I change my Billing  Address?",
            True,
        ),
        ({"keywords": ["invoice"]}, "my invoices", False),
        ({"pattern": r"\border\s*#?\d{4,}"}, "about ORDER #12345", True),
        ({"pattern": r"\border\s*#?\d{4,}"}, "about order 12", False),
        ({"contact_attributes": {"plan": "vip", "beta": True}}, "hi", True),
        ({"contact_attributes": {"plan": "free"}}, "hi", False),
        ({"contact_attributes": {"beta": "true"}}, "hi", False),
        ({"languages": ["pt"]}, "olá", True),
        ({"languages": ["pt-PT"]}, "olá", False),
        ({"languages": ["PT-br"]}, "olá", True),
        ({}, "anything", True),
    ],
)
def test_each_matcher(tenant_a, conditions, text, matches) -> None:
    with tenant_a.schema():
        conversation = _conversation(attributes={"plan": "vip", "beta": True}, language="pt-BR")
        rule = _rule(**conditions)
        decision = _route(conversation, text)
        assert (decision.rule_id == rule.pk) is matches
        assert decision.handler == ("handoff" if matches else "answer")


def test_the_channel_matcher_takes_channel_ids(tenant_a) -> None:
    with tenant_a.schema():
        conversation = _conversation()
        elsewhere = Channel.objects.create(kind=ChannelKind.WEBCHAT, name="Other", config={})
        _rule(name="elsewhere", channels=[str(elsewhere.pk)])
        here = _rule(name="here", channels=[str(elsewhere.pk), str(conversation.channel_id)])
        assert _route(conversation, "hi").rule == here


def test_the_business_hours_matcher_uses_the_tenant_s_hours(tenant_a) -> None:
    with tenant_a.schema():
        conversation = _conversation()
        inside = _rule(name="inside", business_hours="in", priority=1)
        outside = _rule(name="outside", business_hours="out", priority=2)
        _set_tenant(tenant_a.slug, business_hours=ALWAYS_OPEN, timezone="Asia/Tokyo")
        assert _route(conversation, "hi").rule == inside
        today = timezone.now().astimezone(datetime.timezone(datetime.timedelta(hours=9))).date()
        _set_tenant(tenant_a.slug, holidays=[today.isoformat()])
        assert _route(conversation, "hi").rule == outside


def test_rules_run_in_priority_order_and_disabled_ones_are_skipped(tenant_a) -> None:
    with tenant_a.schema():
        conversation = _conversation()
        _rule(name="late", priority=50)
        _rule(name="off", priority=1, enabled=False)
        first = RoutingRule.objects.create(name="first", priority=10, handler="answer")
        _rule(name="same priority, newer", priority=10)
        decision = _route(conversation, "hi")
        assert (decision.rule, decision.handler, decision.reason) == (first, "answer", "rule")
        # A rule whose handler is gone (uninstalled) is skipped, not fatal.
        RoutingRule.objects.filter(pk=first.pk).update(handler="gone")
        assert _route(conversation, "hi").rule_name == "same priority, newer"


def test_a_rule_on_intent_needs_the_intent(tenant_a) -> None:
    with tenant_a.schema():
        _catalogue()
        conversation = _conversation()
        rule = _rule(intents=["order_status"])
        assert _route(conversation, "what is your tracking number").rule == rule
        assert _route(conversation, "I want a refund").rule is None


# --- API: routing-rules/ ------------------------------------------------------------------------


def _post(client, path: str, body: dict[str, Any]):
    return client.post(f"/api/v1/{path}", body, format="json")


def test_routing_rules_crud(tenant_a) -> None:
    client = tenant_a.client()
    with tenant_a.schema():
        channel = Channel.objects.create(kind=ChannelKind.WEBCHAT, name="Site", config={})
        _catalogue()
    created = _post(
        client,
        "routing-rules/",
        {
            "name": "VIP refunds",
            "priority": 5,
            "channels": [str(channel.pk)],
            "channel_kinds": ["webchat", "whatsapp", "webchat"],
            "intents": ["refund"],
            "min_confidence": 0.8,
            "keywords": ["refund "],
            "pattern": r"order\s*\d+",
            "contact_attributes": {"plan": "vip"},
            "business_hours": "in",
            "languages": ["en", "pt-BR"],
            "handler": "handoff",
        },
    )
    assert created.status_code == 201, created.json()
    rule = created.json()
    assert rule["channel_kinds"] == ["webchat", "whatsapp"]
    assert rule["keywords"] == ["refund"]
    assert (rule["enabled"], rule["handler"], rule["min_confidence"]) == (True, "handoff", 0.8)
    catch_all = _post(client, "routing-rules/", {"name": "Everything", "handler": "answer"}).json()
    assert catch_all["priority"] == 100
    assert catch_all["business_hours"] == "any"

    listed = client.get("/api/v1/routing-rules/").json()
    assert [item["name"] for item in listed["results"]] == ["VIP refunds", "Everything"]
    assert listed["next"] is None

    changed = client.patch(
        f"/api/v1/routing-rules/{catch_all['id']}/",
        {"priority": 1, "enabled": False},
        format="json",
    )
    assert changed.status_code == 200, changed.json()
    assert (changed.json()["priority"], changed.json()["enabled"]) == (1, False)
    assert client.get(f"/api/v1/routing-rules/{catch_all['id']}/").json()["priority"] == 1
    assert client.delete(f"/api/v1/routing-rules/{catch_all['id']}/").status_code == 204
    assert client.get(f"/api/v1/routing-rules/{catch_all['id']}/").status_code == 404


@pytest.mark.parametrize(
    ("body", "field", "says"),
    [
        ({"pattern": "order(\\d+"}, "pattern", "Not a valid regular expression"),
        ({"pattern": "(a+)+$"}, "pattern", "Nested repetition"),
        ({"pattern": "(?:x|y*)*z"}, "pattern", "Nested repetition"),
        ({"pattern": "(a|ab)+c"}, "pattern", "repeated group of alternatives"),
        ({"pattern": ".*.*.*x"}, "pattern", "could take too long"),
        ({"pattern": "a" * 201}, "pattern", "200"),
        ({"handler": "telepathy"}, "handler", "Unknown handler 'telepathy'. Known: "),
        ({"channels": [str(uuid.uuid4())]}, "channels", "No such channel"),
        ({"channels": ["not-a-uuid"]}, "channels", "UUID"),
        ({"channel_kinds": ["fax"]}, "channel_kinds", "not a valid choice"),
        ({"intents": ["unknown_intent"]}, "intents", "Not in the intent catalogue"),
        ({"contact_attributes": {"plan": ["a", "b"]}}, "contact_attributes", "string, number"),
        ({"contact_attributes": "vip"}, "contact_attributes", "dictionary"),
        ({"languages": ["english!"]}, "languages", "language code"),
        ({"min_confidence": 1.5}, "min_confidence", "less than or equal"),
        ({"business_hours": "sometimes"}, "business_hours", "not a valid choice"),
        ({"keywords": ["x" * 101]}, "keywords", "100"),
        ({"keywords": ["k"] * 51}, "keywords", "50"),
        ({"colour": "red"}, "colour", "Unknown field"),
    ],
)
def test_bad_routing_rules_are_refused_naming_the_field(tenant_a, body, field, says) -> None:
    response = _post(
        tenant_a.client(), "routing-rules/", {"name": "Bad", "handler": "answer", **body}
    )
    assert response.status_code == 400, response.json()
    error = response.json()["error"]
    assert error["code"] == "validation_error"
    assert says in json.dumps(error["details"][field])
    with tenant_a.schema():
        assert not RoutingRule.objects.exists()


def test_a_bad_patch_changes_nothing(tenant_a) -> None:
    client = tenant_a.client()
    rule = _post(
        client, "routing-rules/", {"name": "R", "handler": "answer", "pattern": "ok"}
    ).json()
    response = client.patch(
        f"/api/v1/routing-rules/{rule['id']}/", {"pattern": "(", "name": "S"}, format="json"
    )
    assert response.status_code == 400
    assert "pattern" in response.json()["error"]["details"]
    assert client.get(f"/api/v1/routing-rules/{rule['id']}/").json()["name"] == "R"


# --- API: intents/ --------------------------------------------------------------------------------


def test_intents_crud_with_conflicts(tenant_a) -> None:
    client = tenant_a.client()
    created = _post(
        client,
        "intents/",
        {
            "name": "refund",
            "description": "Money back.",
            "examples": ["refund me"],
            "keywords": ["refund"],
        },
    )
    assert created.status_code == 201, created.json()
    intent = created.json()
    assert set(intent) == {
        "id",
        "name",
        "description",
        "examples",
        "keywords",
        "created_at",
        "updated_at",
    }

    duplicate = _post(client, "intents/", {"name": "refund"})
    assert duplicate.status_code == 409
    assert duplicate.json()["error"]["code"] == "intent_exists"

    assert _post(client, "intents/", {"name": "Not A Name"}).status_code == 400
    assert _post(client, "intents/", {"name": "ok", "examples": "one"}).status_code == 400

    _post(
        client, "routing-rules/", {"name": "Refunds", "intents": ["refund"], "handler": "handoff"}
    )
    renamed = client.patch(f"/api/v1/intents/{intent['id']}/", {"name": "refunds"}, format="json")
    assert renamed.status_code == 409
    assert renamed.json()["error"]["code"] == "intent_in_use"
    assert renamed.json()["error"]["details"] == {"rules": ["Refunds"]}
    deleted = client.delete(f"/api/v1/intents/{intent['id']}/")
    assert deleted.status_code == 409
    # Describing it better is fine.
    described = client.patch(
        f"/api/v1/intents/{intent['id']}/", {"description": "Wants money back."}, format="json"
    )
    assert described.status_code == 200
    assert described.json()["description"] == "Wants money back."

    rules = client.get("/api/v1/routing-rules/").json()["results"]
    client.delete(f"/api/v1/routing-rules/{rules[0]['id']}/")
    assert client.delete(f"/api/v1/intents/{intent['id']}/").status_code == 204
    assert client.get("/api/v1/intents/").json() == {"results": [], "next": None}


# --- Tenant isolation --------------------------------------------------------------------------


def test_another_tenant_cannot_see_or_touch_rules_intents_or_decisions(tenant_a, tenant_b) -> None:
    a, b = tenant_a.client(), tenant_b.client()
    with tenant_a.schema():
        channel = Channel.objects.create(kind=ChannelKind.WEBCHAT, name="A's", config={})
    intent = _post(a, "intents/", {"name": "refund"}).json()
    rule = _post(
        a, "routing-rules/", {"name": "A's rule", "intents": ["refund"], "handler": "handoff"}
    ).json()
    with tenant_a.schema():
        _route(_conversation(), "hello")

    for path in (f"routing-rules/{rule['id']}/", f"intents/{intent['id']}/"):
        assert b.get(f"/api/v1/{path}").status_code == 404
        assert b.patch(f"/api/v1/{path}", {"name": "mine"}, format="json").status_code == 404
        assert b.delete(f"/api/v1/{path}").status_code == 404
    assert b.get("/api/v1/routing-rules/").json()["results"] == []
    assert b.get("/api/v1/intents/").json()["results"] == []
    assert b.get("/api/v1/routing-decisions/").json()["results"] == []
    assert len(a.get("/api/v1/routing-decisions/").json()["results"]) == 1
    # Naming A's channel or A's intent from B is naming nothing.
    refused = _post(
        b, "routing-rules/", {"name": "x", "handler": "answer", "channels": [str(channel.pk)]}
    )
    assert refused.status_code == 400
    assert "channels" in refused.json()["error"]["details"]
    refused = _post(b, "routing-rules/", {"name": "x", "handler": "answer", "intents": ["refund"]})
    assert refused.status_code == 400
    assert "intents" in refused.json()["error"]["details"]
    with tenant_a.schema():
        assert RoutingRule.objects.get().name == "A's rule"
        assert Intent.objects.get().name == "refund"


def test_routing_decisions_are_listed_with_filters(tenant_a) -> None:
    client = tenant_a.client()
    with tenant_a.schema():
        one, two = _conversation(), _conversation()
        _route(one, "hello")
        _route(two, "I want a human")
    listed = client.get("/api/v1/routing-decisions/").json()["results"]
    assert [d["handler"] for d in listed] == ["handoff", "answer"]
    mine = client.get(f"/api/v1/routing-decisions/?conversation={one.pk}").json()["results"]
    assert [(d["conversation"], d["seq"], d["reason"]) for d in mine] == [
        (str(one.pk), 1, "default")
    ]
    handoffs = client.get("/api/v1/routing-decisions/?reason=explicit_request").json()["results"]
    assert [d["conversation"] for d in handoffs] == [str(two.pk)]
    bad = client.get("/api/v1/routing-decisions/?conversation=nope")
    assert bad.status_code == 400
    assert "conversation" in bad.json()["error"]["details"]


# --- The admin ----------------------------------------------------------------------------------


def test_rules_are_edited_in_the_admin_with_the_same_validation(tenant_a, client) -> None:
    with tenant_a.schema():
        client.force_login(UserFactory.create(username="root_routing", is_superuser=True))
    base = f"/t/{tenant_a.slug}/admin/processing/routingrule"
    form = {
        "name": "From the admin",
        "priority": "3",
        "enabled": "on",
        "handler": "handoff",
        "channels": "[]",
        "channel_kinds": '["webchat"]',
        "intents": "[]",
        "keywords": '["invoice"]',
        "pattern": "(a+)+",
        "contact_attributes": "{}",
        "business_hours": "any",
        "languages": "[]",
    }
    refused = client.post(f"{base}/add/", form)
    assert refused.status_code == 200
    assert b"Nested repetition" in refused.content
    saved = client.post(f"{base}/add/", {**form, "pattern": r"inv\d+"})
    assert saved.status_code == 302
    with tenant_a.schema():
        rule = RoutingRule.objects.get()
        assert (rule.name, rule.keywords, rule.channel_kinds) == (
            "From the admin",
            ["invoice"],
            ["webchat"],
        )
        _route(_conversation(), "invoice please")
    decisions = client.get(f"/t/{tenant_a.slug}/admin/processing/routingdecision/")
    assert decisions.status_code == 200
    assert b"From the admin" in decisions.content
    assert (
        client.get(f"/t/{tenant_a.slug}/admin/processing/routingdecision/add/").status_code == 403
    )


# --- End to end ---------------------------------------------------------------------------------


def test_a_message_on_the_api_channel_routed_to_handoff_gets_an_operator(
    committed_db, tmp_path
) -> None:
    """The integrator posts a message; a real worker routes it by a rule to `handoff`: the
    decision is recorded and an online operator is assigned and notified."""
    info = committed_db["a"]
    with schema_context(info.slug):
        agent = AgentFactory.create(name="E2E agent")
        channel = Channel.objects.create(
            kind=ChannelKind.API, name="E2E API", agent=agent, config={}
        )
        rule = RoutingRule.objects.create(
            name="Invoices to people",
            keywords=["invoice"],
            channel_kinds=["api"],
            handler="handoff",
        )
        operator = OperatorFactory.create(availability=Operator.Availability.ONLINE)
    try:
        with support.celery_worker(tmp_path):
            response = info.client().post(
                f"/api/v1/channels/{channel.pk}/inbound/",
                {
                    "contact": {"external_id": "e2e-routing", "name": "Ada"},
                    "content": {"type": "text", "text": "My invoice is wrong"},
                    "external_message_id": "e2e-routing-1",
                },
                format="json",
            )
            assert response.status_code == 201, response.json()
            conversation_id = response.json()["conversation"]
            with schema_context(info.slug):
                decision = support.wait_until(
                    lambda: RoutingDecision.objects.filter(conversation_id=conversation_id).first(),
                    timeout=30,
                    what="the routing decision",
                )
                assert (decision.rule_id, decision.handler, decision.reason) == (
                    rule.pk,
                    "handoff",
                    "rule",
                )
                conversation = support.wait_until(
                    lambda: Conversation.objects.filter(
                        pk=conversation_id, assignee=operator
                    ).first(),
                    timeout=30,
                    what="the assignment",
                )
                assert (conversation.ai_active, conversation.status) == (False, "pending")
                notification = Notification.objects.get(conversation=conversation)
                assert (notification.kind, notification.operator_id) == ("handoff", operator.pk)
                replies = Message.objects.filter(conversation=conversation, sender_type="ai")
                assert [m.content["text"] for m in replies] == [HANDOFF_TEXT]
    finally:
        with schema_context(info.slug):
            Notification.objects.filter(conversation__channel=channel).delete()
            ReplyCharge.objects.filter(message__channel=channel).delete()
            ConversationCursor.objects.filter(conversation__channel=channel).delete()
            Conversation.objects.filter(channel=channel).update(last_message=None)
            Message.objects.filter(channel=channel).delete()
            Participant.objects.filter(conversation__channel=channel).delete()
            Conversation.objects.filter(channel=channel).delete()
            Contact.objects.filter(identities__external_id="e2e-routing").delete()
            channel.delete()
            rule.delete()
            agent.delete()
            user = operator.user
            operator.delete()
            user.delete()


def test_remembered_rules_and_intents_follow_writes_and_stay_per_tenant(
    tenant_a, tenant_b, settings
) -> None:
    """Rules and intents are remembered per process and schema (hub/memo.py): a write made in
    this process (API, admin, ORM save or delete) shows at once; one made in another process
    (the row changed, and the memo's generation bumped as its commit does) within about a
    second. Another tenant's never show."""
    settings.HUB_TENANT_CACHE_SECONDS = 2
    with tenant_b.schema():
        _rule(name="b's rule", priority=1)
        b_conversation = _conversation()
        assert _route(b_conversation, "hi").rule_name == "b's rule"
    with tenant_a.schema():
        conversation = _conversation()
        assert _route(conversation, "hi").rule is None
        rule = _rule(name="first", priority=10)
        assert _route(conversation, "hi").rule == rule
        _catalogue()
        intent_rule = _rule(name="refunds", priority=1, intents=["refund"])
        assert _route(conversation, "I want a refund").rule == intent_rule
        intent_rule.delete()
        assert _route(conversation, "I want a refund").rule == rule

        RoutingRule.objects.filter(pk=rule.pk).update(enabled=False)
        assert _route(conversation, "hi").rule == rule  # remembered
        get_redis().incr(GENERATION_KEY)
        time.sleep(CHECK_SECONDS + 0.1)
        assert _route(conversation, "hi").rule is None
    with tenant_b.schema():
        assert _route(b_conversation, "hi").rule_name == "b's rule"
