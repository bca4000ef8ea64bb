"""Which handler answers an inbound message, and why.

In order: an explicit request for a person (or one of the agent's handoff keywords) hands off at
once; otherwise the intent call (one structured LLM call over the tenant's intent catalogue, or
keyword matching without an API key) finds intent, confidence, entities and sentiment. Negative
sentiment hands off; an intent below the agent's threshold takes the fallback route (rules that
need an intent are skipped) and a second one in a row hands off. Then the enabled routing rules
are tried in priority order; the first that matches names the handler, else `answer`. Every
decision is recorded (RoutingDecision).

Also here: the writes and reads behind `routing-rules/`, `intents/` and `routing-decisions/`.
"""

from __future__ import annotations

import functools
import logging
import re
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.db.models import Model, QuerySet

from agents.llm import (
    LlmInvalidOutput,
    LlmUnavailable,
    intent_schema,
    llm_configured,
    llm_structured,
)
from agents.models import Agent, LlmCall
from automation.selectors import conversation_sticky_handler
from conversations.models import Conversation, Message
from hub.db import upsert
from hub.exceptions import ApplicationError, ConflictError, NotFoundError
from hub.memo import memo_changed, memo_forget, memo_get
from processing.context import ConversationContext, last_hand_back_seq
from processing.handlers.base import HANDLERS, Route
from processing.handoff import business_hours_check
from processing.models import REGEX_TEXT_CHARS, Intent, RoutingDecision, RoutingRule
from tenants.connection import tenant_connection
from tenants.selectors import tenant_current

logger = logging.getLogger(__name__)

Reason = RoutingDecision.Reason
DEFAULT_HANDLER = "answer"
HANDOFF_HANDLER = "handoff"
# Words that ask for a person in any agent, besides the agent's own handoff keywords.
EXPLICIT_REQUEST_WORDS = ("human", "agent", "person")
SENTIMENTS = ("positive", "neutral", "negative")
# Keywords are matched against this much of a message, patterns against less (their shape is
# checked against that length: processing.models.regex_problem).
MATCH_TEXT_CHARS = 2000
CATALOGUE_LIMIT = 100
EXAMPLES_PER_INTENT = 5
CONTEXT_TURNS_FOR_INTENT = 4


# What a decision records, all of it replaced when a retried drain decides again.
DECISION_FIELDS = [
    "conversation",
    "rule",
    "rule_name",
    "intent",
    "confidence",
    "intent_source",
    "sentiment",
    "language",
    "entities",
    "handler",
    "reason",
    "tokens",
]


@dataclass(frozen=True)
class DecidedRoute(Route):
    """The route with why it was taken (a RoutingDecision reason)."""

    reason: str = Reason.DEFAULT


@dataclass(frozen=True)
class IntentResult:
    intent: str = ""
    confidence: float | None = None
    entities: list[dict[str, str]] = field(default_factory=list)
    sentiment: str = ""
    language: str = ""
    source: str = RoutingDecision.IntentSource.NONE
    tokens: int = 0


# --- Matching text ----------------------------------------------------------------------------


@functools.lru_cache(maxsize=2048)
def _phrase(phrase: str) -> re.Pattern[str]:
    """A word or phrase, whole (not inside a longer word), any case, any spacing."""
    words = [re.escape(word) for word in phrase.split()]
    return re.compile(r"(?<!\w)" + r"\s+".join(words) + r"(?!\w)", re.IGNORECASE)


def _mentions(text: str, phrases: list[str]) -> int:
    return sum(1 for phrase in phrases if phrase.strip() and _phrase(phrase).search(text))


@functools.lru_cache(maxsize=512)
def _pattern(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern, re.IGNORECASE)


# --- Intent -----------------------------------------------------------------------------------


def _catalogue_text(catalogue: list[Intent]) -> str:
    lines = []
    for intent in catalogue:
        line = f"- {intent.name}"
        if intent.description:
            line += f": {intent.description}"
        examples = [example for example in intent.examples if isinstance(example, str)]
        if examples:
            line += " Examples: " + "; ".join(
                f'"{example}"' for example in examples[:EXAMPLES_PER_INTENT]
            )
        lines.append(line)
    lines.append("- other: none of the above.")
    return "\n".join(lines)


def routing_intent_schema(names: list[str]) -> dict[str, Any]:
    """`agents.llm.intent_schema` plus the message's sentiment and language."""
    schema = intent_schema(names)
    schema["properties"]["sentiment"] = {"type": "string", "enum": list(SENTIMENTS)}
    schema["properties"]["language"] = {
        "type": "string",
        "description": "ISO 639-1 code of the message's language, e.g. en",
    }
    schema["required"] = [*schema["required"], "sentiment", "language"]
    return schema


def _intent_llm(
    *, agent: Agent, text: str, catalogue: list[Intent], context: ConversationContext | None
) -> IntentResult:
    names = [intent.name for intent in catalogue]
    instructions = (
        "Classify the customer's latest message for routing: its intent, from the catalogue "
        "below (`other` when none fits); your confidence in that intent from 0 to 1; the "
        "entities it mentions (type and value, e.g. order_number, email, date, product); its "
        "sentiment (negative: angry, frustrated or complaining); its language.\n\n"
        "Intent catalogue:\n" + _catalogue_text(catalogue)
    )
    if context and context.history:
        recent = context.history[-CONTEXT_TURNS_FOR_INTENT:]
        instructions += "\n\nThe conversation just before it (context only):\n" + "\n".join(
            f"{turn['role']}: {turn['content']}" for turn in recent
        )
    data, usage = llm_structured(
        agent=agent,
        purpose=LlmCall.Purpose.INTENT,
        schema_name="intent",
        schema=routing_intent_schema(names),
        input_text=text,
        instructions=instructions,
    )
    try:
        confidence = min(1.0, max(0.0, float(data["confidence"])))
    except (TypeError, ValueError) as error:
        raise LlmInvalidOutput("The confidence is not a number.") from error
    intent = str(data["intent"])
    if intent not in names:
        intent = "other"
    entities = [
        {"type": str(item.get("type", ""))[:100], "value": str(item.get("value", ""))[:500]}
        for item in (data.get("entities") or [])[:50]
        if isinstance(item, dict)
    ]
    sentiment = str(data.get("sentiment") or "")
    return IntentResult(
        intent=intent,
        confidence=confidence,
        entities=entities,
        sentiment=sentiment if sentiment in SENTIMENTS else "",
        language=str(data.get("language") or "")[:20],
        source=RoutingDecision.IntentSource.LLM,
        tokens=usage.total_tokens,
    )


def _intent_keywords(*, text: str, catalogue: list[Intent]) -> IntentResult:
    """Without an LLM: the intent whose keywords the message mentions most; the confidence is
    its share of all the mentions (1.0 when only one intent is mentioned)."""
    hits = {intent.name: _mentions(text, intent.keywords) for intent in catalogue}
    total = sum(hits.values())
    if not total:
        return IntentResult()
    best = max(hits, key=lambda name: hits[name])
    return IntentResult(
        intent=best,
        confidence=round(hits[best] / total, 3),
        source=RoutingDecision.IntentSource.KEYWORDS,
    )


# The tenant's intents and rules are read for every message and change rarely: remembered per
# process and schema like tenants and channels (hub/memo.py), forgotten on every write
# (processing/apps.py): here at once, in the other processes within about a second.
def _memo_key(kind: str) -> tuple[str, str]:
    return ("routing", f"{tenant_connection().schema_name}:{kind}")


def _intent_catalogue() -> list[Intent]:
    return memo_get(
        _memo_key("intents"), lambda: list(Intent.objects.order_by("name")[:CATALOGUE_LIMIT])
    )


def _rules_enabled() -> list[RoutingRule]:
    return memo_get(
        _memo_key("rules"),
        lambda: list(RoutingRule.objects.filter(enabled=True).order_by("priority", "created_at")),
    )


def routing_memo_forget(**_: Any) -> None:
    """Signal receiver: an intent or rule of the current schema was written."""
    memo_forget(_memo_key("intents"))
    memo_forget(_memo_key("rules"))
    memo_changed()


def intent_detect(
    *, agent: Agent, text: str, context: ConversationContext | None = None
) -> IntentResult:
    """The message's intent from the tenant's catalogue: one structured LLM call when an API key
    is set (falling back to keywords when the LLM is unavailable), keywords otherwise. No
    catalogue, no call."""
    catalogue = _intent_catalogue()
    if not catalogue or not text.strip():
        return IntentResult()
    if llm_configured():
        try:
            return _intent_llm(agent=agent, text=text, catalogue=catalogue, context=context)
        except LlmUnavailable as error:
            logger.warning(
                "intent call unavailable; keywords instead", extra={"reason": error.reason}
            )
    return _intent_keywords(text=text, catalogue=catalogue)


# --- Rules ------------------------------------------------------------------------------------


@dataclass
class _Facts:
    """What rules are matched against, the costly ones worked out on first use."""

    conversation: Conversation
    text: str
    intent: str
    confidence: float | None
    threshold: float
    language: str
    at: datetime
    _open: bool | None = None

    @property
    def open_now(self) -> bool:
        if self._open is None:
            self._open = business_hours_check(tenant=tenant_current(), at=self.at).open_now
        return self._open


def _language_matches(wanted: list[str], language: str) -> bool:
    language = language.lower().replace("_", "-")
    primary = language.split("-")[0]
    return any(code.lower() in (language, primary) for code in wanted)


def _rule_matches(rule: RoutingRule, facts: _Facts) -> bool:
    conversation = facts.conversation
    if rule.channels and str(conversation.channel_id) not in rule.channels:
        return False
    if rule.channel_kinds and conversation.channel.kind not in rule.channel_kinds:
        return False
    if rule.intents:
        needed = max(facts.threshold, rule.min_confidence or 0.0)
        if facts.intent not in rule.intents or (facts.confidence or 0.0) < needed:
            return False
    if rule.keywords and not _mentions(facts.text, rule.keywords):
        return False
    if rule.pattern:
        try:
            if not _pattern(rule.pattern).search(facts.text[:REGEX_TEXT_CHARS]):
                return False
        except re.error:
            logger.warning("routing rule with a bad pattern skipped", extra={"rule": str(rule.pk)})
            return False
    attributes = conversation.contact.attributes or {}
    for key, value in (rule.contact_attributes or {}).items():
        if key not in attributes or attributes[key] != value:
            return False
    if rule.languages and not _language_matches(rule.languages, facts.language):
        return False
    if rule.business_hours == RoutingRule.BusinessHours.IN and not facts.open_now:
        return False
    return not (rule.business_hours == RoutingRule.BusinessHours.OUT and facts.open_now)


def _first_rule(facts: _Facts) -> RoutingRule | None:
    for rule in _rules_enabled():
        if rule.handler not in HANDLERS:
            logger.warning("routing rule names no handler; skipped", extra={"rule": str(rule.pk)})
            continue
        if _rule_matches(rule, facts):
            return rule
    return None


# --- The decision -----------------------------------------------------------------------------


def _handoff_request(agent: Agent, text: str) -> str | None:
    if _mentions(text, list(EXPLICIT_REQUEST_WORDS)):
        return Reason.EXPLICIT_REQUEST
    keywords = [k for k in agent.handoff_keywords or [] if isinstance(k, str)]
    if keywords and _mentions(text, keywords):
        return Reason.HANDOFF_KEYWORD
    return None


def _low(intent: str, confidence: float | None, threshold: float) -> bool:
    return bool(intent) and confidence is not None and confidence < threshold


def _previous_was_low(message: Message, threshold: float) -> bool:
    """Whether the conversation's previous routed message (since the last hand back) also took
    the fallback route for low confidence."""
    previous = (
        RoutingDecision.objects.filter(
            conversation_id=message.conversation_id,
            message__seq__lt=message.seq,
            message__seq__gt=last_hand_back_seq(message) or 0,
        )
        .order_by("-message__seq")
        .first()
    )
    return (
        previous is not None
        and previous.reason != Reason.REPEATED_LOW_CONFIDENCE
        and _low(previous.intent, previous.confidence, threshold)
    )


def _entities_by_type(entities: list[dict[str, str]]) -> dict[str, Any]:
    found: dict[str, Any] = {}
    for entity in entities:
        kind, value = entity["type"], entity["value"]
        if kind not in found:
            found[kind] = value
        elif isinstance(found[kind], list):
            found[kind].append(value)
        else:
            found[kind] = [found[kind], value]
    return found


def route_decide(
    *,
    message: Message,
    conversation: Conversation,
    agent: Agent,
    text: str,
    context: ConversationContext | None = None,
) -> DecidedRoute:
    """Picks the handler for `message` and records the decision (one per message: a retried
    drain overwrites it). `tokens` holds what the intent call and the context spent, priced
    into the reply."""
    sample = text[:MATCH_TEXT_CHARS]
    threshold = agent.handoff_confidence_threshold
    result = IntentResult()
    rule = None
    reason: str = Reason.DEFAULT
    # A reaction (an emoji on a message) asks for nothing: no person, no intent call.
    reacting = message.content.get("type") == "reaction"
    handoff_reason = None if reacting else _handoff_request(agent, sample)
    # A questionnaire in progress takes the contact's replies as its answers, whatever rules say;
    # only an explicit request for a person interrupts it.
    sticky = (
        None
        if reacting or handoff_reason
        else conversation_sticky_handler(conversation_id=conversation.pk)
    )
    if sticky is not None:
        reason = Reason.IN_PROGRESS
    elif handoff_reason is None:
        if not reacting:
            result = intent_detect(agent=agent, text=sample, context=context)
        low = _low(result.intent, result.confidence, threshold)
        if result.sentiment == "negative" and agent.handoff_on_negative_sentiment:
            handoff_reason = Reason.NEGATIVE_SENTIMENT
        elif low and _previous_was_low(message, threshold):
            handoff_reason = Reason.REPEATED_LOW_CONFIDENCE
        else:
            facts = _Facts(
                conversation=conversation,
                text=sample,
                # The fallback route: below the threshold no intent is known.
                intent="" if low else result.intent,
                confidence=result.confidence,
                threshold=threshold,
                language=conversation.contact.language or result.language,
                at=message.created_at,
            )
            rule = _first_rule(facts)
            reason = Reason.RULE if rule else Reason.LOW_CONFIDENCE if low else Reason.DEFAULT
    if handoff_reason is not None:
        handler, reason = HANDOFF_HANDLER, handoff_reason
    else:
        handler = sticky or (rule.handler if rule else DEFAULT_HANDLER)
    tokens = result.tokens + (context.tokens if context else 0)
    # One upsert (a retried drain overwrites its first decision) rather than update_or_create's
    # locked read, savepoints and insert.
    upsert(
        RoutingDecision(
            message=message,
            conversation=conversation,
            rule=rule,
            rule_name=rule.name if rule else "",
            intent=result.intent,
            confidence=result.confidence,
            intent_source=result.source,
            sentiment=result.sentiment,
            language=result.language,
            entities=result.entities,
            handler=handler,
            reason=reason,
            tokens=tokens,
        ),
        unique_fields=["message"],
        update_fields=DECISION_FIELDS,
    )
    return DecidedRoute(
        handler=handler,
        rule_id=str(rule.pk) if rule else None,
        intent=result.intent,
        confidence=result.confidence,
        entities=_entities_by_type(result.entities),
        tokens=tokens,
        reason=reason,
    )


# --- Rules, intents and decisions: writes and reads -------------------------------------------


def _full_clean(instance: Model) -> None:
    """The model's own validation (the API's serializers run the same validators first)."""
    try:
        instance.full_clean(validate_unique=False)
    except ValidationError as error:
        raise ApplicationError(
            "The request is invalid.", code="validation_error", details=error.message_dict
        ) from error


def routing_rule_list() -> QuerySet[RoutingRule]:
    return RoutingRule.objects.all()


def routing_rule_get(*, rule_id: uuid.UUID | str) -> RoutingRule:
    """A rule of the current tenant; another tenant's id is simply not found."""
    rule = RoutingRule.objects.filter(pk=rule_id).first()
    if rule is None:
        raise NotFoundError("No such routing rule.")
    return rule


RULE_FIELDS = (
    "name",
    "priority",
    "enabled",
    "channels",
    "channel_kinds",
    "intents",
    "min_confidence",
    "keywords",
    "pattern",
    "contact_attributes",
    "business_hours",
    "languages",
    "handler",
)


def _normalise_rule(fields: dict[str, Any]) -> dict[str, Any]:
    if "channels" in fields:
        fields["channels"] = sorted({str(uuid.UUID(str(item))) for item in fields["channels"]})
    for key in ("channel_kinds", "intents", "languages", "keywords"):
        if key in fields:
            fields[key] = list(dict.fromkeys(item.strip() for item in fields[key]))
    return fields


@transaction.atomic
def routing_rule_create(**fields: Any) -> RoutingRule:
    rule = RoutingRule(**_normalise_rule({k: v for k, v in fields.items() if k in RULE_FIELDS}))
    _full_clean(rule)
    rule.save()
    return rule


@transaction.atomic
def routing_rule_update(*, rule: RoutingRule, **fields: Any) -> RoutingRule:
    changed = _normalise_rule({k: v for k, v in fields.items() if k in RULE_FIELDS})
    for key, value in changed.items():
        setattr(rule, key, value)
    _full_clean(rule)
    rule.save(update_fields=[*changed, "updated_at"])
    return rule


@transaction.atomic
def routing_rule_delete(*, rule: RoutingRule) -> None:
    """Past decisions keep the rule's name."""
    rule.delete()


def intent_list() -> QuerySet[Intent]:
    return Intent.objects.all()


def intent_get(*, intent_id: uuid.UUID | str) -> Intent:
    intent = Intent.objects.filter(pk=intent_id).first()
    if intent is None:
        raise NotFoundError("No such intent.")
    return intent


class IntentExists(ConflictError):
    default_code = "intent_exists"
    default_detail = "An intent with this name already exists."


class IntentInUse(ConflictError):
    default_code = "intent_in_use"


def rules_naming(name: str) -> list[str]:
    """The names of the routing rules that name this intent."""
    return list(RoutingRule.objects.filter(intents__contains=[name]).values_list("name", flat=True))


def _save_intent(intent: Intent, update_fields: list[str] | None = None) -> Intent:
    _full_clean(intent)
    if Intent.objects.filter(name=intent.name).exclude(pk=intent.pk).exists():
        raise IntentExists(details={"name": ["An intent with this name already exists."]})
    try:
        with transaction.atomic():
            intent.save(update_fields=update_fields)
    except IntegrityError as error:  # a concurrent create of the same name
        raise IntentExists(
            details={"name": ["An intent with this name already exists."]}
        ) from error
    return intent


INTENT_FIELDS = ("name", "description", "examples", "keywords")


@transaction.atomic
def intent_create(**fields: Any) -> Intent:
    return _save_intent(Intent(**{k: v for k, v in fields.items() if k in INTENT_FIELDS}))


@transaction.atomic
def intent_update(*, intent: Intent, **fields: Any) -> Intent:
    """A rename is refused (409) while routing rules name the intent."""
    changed = {k: v for k, v in fields.items() if k in INTENT_FIELDS}
    renamed = "name" in changed and changed["name"] != intent.name
    if renamed and (rules := rules_naming(intent.name)):
        raise IntentInUse(
            f"Routing rules name this intent: {', '.join(rules)}. Change them first.",
            details={"rules": rules},
        )
    for key, value in changed.items():
        setattr(intent, key, value)
    return _save_intent(intent, update_fields=[*changed, "updated_at"])


@transaction.atomic
def intent_delete(*, intent: Intent) -> None:
    """Refused (409) while routing rules name the intent."""
    if rules := rules_naming(intent.name):
        raise IntentInUse(
            f"Routing rules name this intent: {', '.join(rules)}. Change them first.",
            details={"rules": rules},
        )
    intent.delete()


def routing_decision_list(
    *,
    conversation_id: uuid.UUID | None = None,
    handler: str | None = None,
    intent: str | None = None,
    reason: str | None = None,
    rule_id: uuid.UUID | None = None,
) -> QuerySet[RoutingDecision]:
    decisions = RoutingDecision.objects.select_related("message")
    if conversation_id:
        decisions = decisions.filter(conversation_id=conversation_id)
    if handler:
        decisions = decisions.filter(handler=handler)
    if intent:
        decisions = decisions.filter(intent=intent)
    if reason:
        decisions = decisions.filter(reason=reason)
    if rule_id:
        decisions = decisions.filter(rule_id=rule_id)
    return decisions
