from __future__ import annotations

import re

# The regular expression parser's own modules: routing rules' patterns are checked on its parse
# tree for nested repetition (see regex_problem).
import re._constants as sre_constants
import re._parser as sre_parse
import uuid
from typing import Any

from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator, RegexValidator
from django.db import models

from retention.encryption import TenantEncryptedJSONField


class ConversationCursor(models.Model):
    """How far processing has got in a conversation: inbound messages up to `processed_seq` are
    handled. Moved in the same transaction as the reply, so a crash never answers twice."""

    conversation = models.OneToOneField(
        "conversations.Conversation",
        on_delete=models.CASCADE,
        primary_key=True,
        related_name="processing_cursor",
    )
    processed_seq = models.BigIntegerField(default=0)
    updated_at = models.DateTimeField(auto_now=True)
    # The worker answering the conversation now, until when (a lease, processing/services.py):
    # a row rather than a session lock, so that the worker needs no connection of its own while
    # the model thinks.
    held_by = models.UUIDField(null=True, blank=True)
    held_until = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"{self.conversation_id} up to #{self.processed_seq}"


class ReplyCharge(models.Model):
    """What an AI reply costs, fixed when it is written and charged once it is delivered."""

    message = models.OneToOneField(
        "conversations.Message", on_delete=models.CASCADE, primary_key=True, related_name="+"
    )
    amount = models.PositiveIntegerField()
    tokens = models.PositiveIntegerField(default=0)
    charged_at = models.DateTimeField(null=True, blank=True)
    unpaid = models.BooleanField(default=False, help_text="The balance could not cover it.")
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"{self.amount} credit(s) for {self.message_id}"


# --- Routing: the tenant's intent catalogue, its rules, and every decision taken ------------

INTENT_NAME_PATTERN = r"^[a-z][a-z0-9_]{0,63}$"
RULE_PATTERN_MAX_LENGTH = 200
LIST_MAX_ITEMS = 50
ITEM_MAX_CHARS = 100


def _string_list(value: object, *, what: str, max_chars: int = ITEM_MAX_CHARS) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise ValidationError(f"Must be a list of {what}.")
    if len(value) > LIST_MAX_ITEMS:
        raise ValidationError(f"At most {LIST_MAX_ITEMS} items.")
    if any(not item.strip() or len(item) > max_chars for item in value):
        raise ValidationError(f"Each item must be 1 to {max_chars} characters.")
    return value


def validate_phrases(value: object) -> None:
    _string_list(value, what="words or phrases")


def validate_examples(value: object) -> None:
    _string_list(value, what="example messages", max_chars=500)


def validate_languages(value: object) -> None:
    for code in _string_list(value, what="language codes"):
        if not re.fullmatch(r"[A-Za-z]{2,3}(-[A-Za-z0-9]{2,8})*", code):
            raise ValidationError(f"{code!r} is not a language code such as en or pt-BR.")


def validate_channel_kinds(value: object) -> None:
    from channels_app.models import ChannelKind

    unknown = sorted(set(_string_list(value, what="channel kinds")) - set(ChannelKind.values))
    if unknown:
        raise ValidationError(
            f"Unknown channel kind(s): {', '.join(unknown)}. "
            f"Known: {', '.join(ChannelKind.values)}."
        )


def validate_channel_ids(value: object) -> None:
    from channels_app.models import Channel

    ids = _string_list(value, what="channel ids")
    try:
        wanted = {str(uuid.UUID(item)) for item in ids}
    except ValueError as error:
        raise ValidationError("Each item must be a channel id (a UUID).") from error
    found = {str(pk) for pk in Channel.objects.filter(pk__in=wanted).values_list("pk", flat=True)}
    if missing := sorted(wanted - found):
        raise ValidationError(f"No such channel(s): {', '.join(missing)}.")


def validate_intent_names(value: object) -> None:
    names = set(_string_list(value, what="intent names"))
    known = set(Intent.objects.filter(name__in=names).values_list("name", flat=True))
    if missing := sorted(names - known):
        raise ValidationError(
            f"Not in the intent catalogue: {', '.join(missing)}. Add them under intents/ first."
        )


def validate_contact_attributes(value: object) -> None:
    if not isinstance(value, dict):
        raise ValidationError("Must be an object of attribute name to value.")
    if len(value) > LIST_MAX_ITEMS:
        raise ValidationError(f"At most {LIST_MAX_ITEMS} attributes.")
    for key, item in value.items():
        if not key.strip() or len(key) > ITEM_MAX_CHARS:
            raise ValidationError(f"Attribute names are 1 to {ITEM_MAX_CHARS} characters.")
        if not isinstance(item, str | int | float | bool):
            raise ValidationError(f"The value of {key!r} must be a string, number or boolean.")


def validate_rule_pattern(value: str) -> None:
    problem = regex_problem(value)
    if problem:
        raise ValidationError(problem)


def validate_handler_name(value: str) -> None:
    from processing.handlers import HANDLERS

    if value not in HANDLERS:
        raise ValidationError(f"Unknown handler {value!r}. Known: {', '.join(sorted(HANDLERS))}.")


# Python's `re` has no timeout. A pattern is refused unless its backtracking is bounded by its
# shape: no repetition of something that itself repeats or branches ambiguously (exponential:
# `(a+)+`, `(a|aa)*`), and repeats whose ranges multiplied stay under a budget (each one
# multiplies the work: `.*.*.*x` is cubic). Patterns run on the first REGEX_TEXT_CHARS of a
# message, which is also what an open-ended repeat counts as.
REGEX_TEXT_CHARS = 500
REGEX_WORK_BUDGET = 1_000_000
_REPEATS = {sre_constants.MAX_REPEAT, sre_constants.MIN_REPEAT, sre_constants.POSSESSIVE_REPEAT}


def _subpatterns(op: Any, arg: Any) -> list[Any]:
    if op == sre_constants.SUBPATTERN:
        return [arg[3]]
    if op == sre_constants.BRANCH:
        return list(arg[1])
    if op in (sre_constants.ASSERT, sre_constants.ASSERT_NOT):
        return [arg[1]]
    if op == sre_constants.ATOMIC_GROUP:
        return [arg]
    if op == sre_constants.GROUPREF_EXISTS:
        return [sub for sub in arg[1:] if sub is not None]
    return []


def _walk(items: Any) -> Any:
    """Every (op, arg) of a parsed pattern, at any depth."""
    for op, arg in items:
        yield op, arg
        children = [arg[2]] if op in _REPEATS else _subpatterns(op, arg)
        for child in children:
            yield from _walk(child)


def _varies(op: Any, arg: Any) -> bool:
    return op in _REPEATS and arg[1] > arg[0]


def _range(arg: Any) -> int:
    """How many lengths a repeat may take (an open-ended one: as many as the text allows)."""
    if arg[1] == sre_constants.MAXREPEAT:
        return REGEX_TEXT_CHARS
    return min(REGEX_TEXT_CHARS, arg[1] - arg[0]) + 1


def _literal(branch: Any) -> str | None:
    if all(op == sre_constants.LITERAL for op, _ in branch):
        return "".join(chr(code) for _, code in branch)
    return None


def _ambiguous_branches(items: Any) -> bool:
    """Alternatives that can split one text in two ways. Only plain words none of which starts
    another (cat|dog) are known not to."""
    for op, arg in _walk(items):
        if op == sre_constants.BRANCH:
            found = [_literal(branch) for branch in arg[1]]
            words = [word for word in found if word is not None]
            if len(words) < len(found):
                return True
            if any(a != b and b.startswith(a) for a in words for b in words):
                return True
    return False


def _regex_shape_problem(items: Any) -> str | None:
    for op, arg in _walk(items):
        if op in _REPEATS and arg[1] > 1:
            inside = list(_walk(arg[2]))
            if any(_varies(inner_op, inner_arg) for inner_op, inner_arg in inside):
                return (
                    "Nested repetition such as (a+)+ can take exponential time; write it "
                    "without repeating a repeated group."
                )
            if _varies(op, arg) and _ambiguous_branches(arg[2]):
                return (
                    "A repeated group of alternatives such as (a|ab)* can take exponential "
                    "time; repeat only plain words none of which starts another, like (cat|dog)+."
                )
    work = 1
    for op, arg in _walk(items):
        if _varies(op, arg):
            work *= _range(arg)
    if work > REGEX_WORK_BUDGET:
        return (
            "This pattern could take too long on some messages: use fewer or narrower repeats "
            "(each *, + or {n,m} multiplies the work; .*.*.* is too much)."
        )
    return None


def regex_problem(pattern: str) -> str | None:
    """Why a routing rule's pattern is refused, or None: too long, invalid, or a shape whose
    backtracking could stall a worker (see above)."""
    if len(pattern) > RULE_PATTERN_MAX_LENGTH:
        return f"At most {RULE_PATTERN_MAX_LENGTH} characters."
    try:
        parsed = sre_parse.parse(pattern)
    except re.error as error:
        return f"Not a valid regular expression: {error}."
    except RecursionError:
        return "Too deeply nested."
    return _regex_shape_problem(parsed.data)


class Intent(models.Model):
    """One entry of the tenant's intent catalogue: what the intent call may answer, described
    for the model, and the keywords that find it without one."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    name = models.CharField(
        max_length=64,
        unique=True,
        validators=[
            RegexValidator(
                INTENT_NAME_PATTERN,
                "Lowercase letters, digits and '_', starting with a letter (e.g. order_status).",
            )
        ],
    )
    description = models.TextField(
        blank=True, max_length=500, help_text="What the customer wants, for the model."
    )
    examples = models.JSONField(
        default=list,
        blank=True,
        validators=[validate_examples],
        help_text="A few example messages (sent with the catalogue).",
    )
    keywords = models.JSONField(
        default=list,
        blank=True,
        validators=[validate_phrases],
        help_text="Words or phrases that mean this intent when no LLM is configured.",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class RoutingRule(models.Model):
    """Which handler gets an inbound message. Rules are tried in priority order (lowest first);
    the first whose every condition holds decides. An empty condition holds for anything."""

    class BusinessHours(models.TextChoices):
        ANY = "any", "Any time"
        IN = "in", "Within business hours"
        OUT = "out", "Outside business hours"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    name = models.CharField(max_length=200)
    priority = models.IntegerField(default=100, help_text="Lower runs first.")
    enabled = models.BooleanField(default=True)
    channels = models.JSONField(
        default=list, blank=True, validators=[validate_channel_ids], help_text="Channel ids."
    )
    channel_kinds = models.JSONField(
        default=list, blank=True, validators=[validate_channel_kinds], help_text="e.g. whatsapp"
    )
    intents = models.JSONField(
        default=list,
        blank=True,
        validators=[validate_intent_names],
        help_text="Intent names from the catalogue; any of them.",
    )
    min_confidence = models.FloatField(
        null=True,
        blank=True,
        validators=[MinValueValidator(0.0), MaxValueValidator(1.0)],
        help_text="On top of the agent's threshold, for the intent condition.",
    )
    keywords = models.JSONField(
        default=list,
        blank=True,
        validators=[validate_phrases],
        help_text="Any of these words or phrases, whole and case-insensitive.",
    )
    pattern = models.CharField(
        max_length=RULE_PATTERN_MAX_LENGTH,
        blank=True,
        validators=[validate_rule_pattern],
        help_text="A regular expression (case-insensitive) the message must contain.",
    )
    contact_attributes = models.JSONField(
        default=dict,
        blank=True,
        validators=[validate_contact_attributes],
        help_text="Every one of these contact attributes must have this value.",
    )
    business_hours = models.CharField(
        max_length=3, choices=BusinessHours.choices, default=BusinessHours.ANY
    )
    languages = models.JSONField(
        default=list,
        blank=True,
        validators=[validate_languages],
        help_text="The contact's language, e.g. pt (pt-BR matches pt).",
    )
    handler = models.CharField(
        max_length=50,
        validators=[validate_handler_name],
        help_text="The handler that answers, e.g. answer, qna or handoff.",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["priority", "created_at"]

    def __str__(self) -> str:
        return f"{self.name} → {self.handler}"


class RoutingDecision(models.Model):
    """Why an inbound message went to the handler it went to (one per message), for the admin
    and for analytics."""

    class Reason(models.TextChoices):
        RULE = "rule", "A routing rule"
        DEFAULT = "default", "No rule matched"
        LOW_CONFIDENCE = "low_confidence", "Intent below the threshold (fallback route)"
        REPEATED_LOW_CONFIDENCE = "repeated_low_confidence", "Low confidence twice in a row"
        EXPLICIT_REQUEST = "explicit_request", "The contact asked for a person"
        HANDOFF_KEYWORD = "handoff_keyword", "A handoff keyword of the agent"
        NEGATIVE_SENTIMENT = "negative_sentiment", "Negative sentiment"
        IN_PROGRESS = "in_progress", "A handler's flow in progress (a questionnaire)"

    class IntentSource(models.TextChoices):
        NONE = "", "No intent"
        LLM = "llm", "The intent call"
        KEYWORDS = "keywords", "Keywords (no LLM)"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    message = models.OneToOneField(
        "conversations.Message", on_delete=models.CASCADE, related_name="routing_decision"
    )
    conversation = models.ForeignKey(
        "conversations.Conversation", on_delete=models.CASCADE, related_name="routing_decisions"
    )
    rule = models.ForeignKey(
        RoutingRule, null=True, blank=True, on_delete=models.SET_NULL, related_name="decisions"
    )
    # Kept apart from the rule: the record outlives a renamed or deleted rule.
    rule_name = models.CharField(max_length=200, blank=True)
    intent = models.CharField(max_length=64, blank=True)
    confidence = models.FloatField(null=True, blank=True)
    intent_source = models.CharField(
        max_length=10, choices=IntentSource.choices, blank=True, default=IntentSource.NONE
    )
    sentiment = models.CharField(max_length=10, blank=True)
    language = models.CharField(max_length=20, blank=True)
    # What the intent call found in the customer's words (an email, an order number): theirs, so
    # encrypted at rest with the tenant's messages.
    entities = TenantEncryptedJSONField(default=list, blank=True)
    handler = models.CharField(max_length=50)
    reason = models.CharField(max_length=30, choices=Reason.choices)
    tokens = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["-created_at"]
        # Found by equality only: `db_index` would add a `LIKE` twin to each, written with every
        # answered message and read by nothing (docs/performance.md, change 42).
        indexes = [
            models.Index(fields=["intent"], name="routing_decision_intent"),
            models.Index(fields=["handler"], name="routing_decision_handler"),
            models.Index(fields=["reason"], name="routing_decision_reason"),
        ]

    def __str__(self) -> str:
        return f"{self.handler} ({self.reason})"
