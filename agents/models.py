from __future__ import annotations

import uuid

from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models


class Agent(models.Model):
    """An AI agent that answers on the channels that name it."""

    class ApiMode(models.TextChoices):
        RESPONSES = "responses", "OpenAI Responses API"
        CHAT_COMPLETIONS = "chat_completions", "Chat completions (OpenAI-compatible servers)"

    class AssignmentStrategy(models.TextChoices):
        ROUND_ROBIN = "round_robin", "Round robin"
        LEAST_BUSY = "least_busy", "Least busy"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    name = models.CharField(max_length=200)
    instructions = models.TextField(blank=True)
    model = models.CharField(
        max_length=100, blank=True, help_text="Empty: the platform default (HUB_LLM_MODEL)."
    )
    prompt_id = models.CharField(
        max_length=200, blank=True, help_text="A stored OpenAI prompt used instead of instructions."
    )
    prompt_variables = models.JSONField(default=dict, blank=True)
    temperature = models.FloatField(
        default=0.3, validators=[MinValueValidator(0.0), MaxValueValidator(2.0)]
    )
    language = models.CharField(max_length=20, blank=True, help_text="e.g. en, pt-BR")
    persona = models.TextField(blank=True, help_text="Tone and persona for small talk.")
    handoff_keywords = models.JSONField(default=list, blank=True)
    handoff_confidence_threshold = models.FloatField(
        default=0.5, validators=[MinValueValidator(0.0), MaxValueValidator(1.0)]
    )
    fallback_reply = models.TextField(
        blank=True, default="Thanks for your message. A person from our team will answer shortly."
    )
    api_mode = models.CharField(
        max_length=20,
        choices=ApiMode.choices,
        default=ApiMode.RESPONSES,
        help_text=(
            "Responses keeps the history in an OpenAI conversation; chat completions sends it "
            "on every call, for OpenAI-compatible servers without the Responses API."
        ),
    )
    # Context (processing/context.py): what the model is given besides the message.
    context_window_messages = models.PositiveSmallIntegerField(
        default=20,
        validators=[MinValueValidator(1), MaxValueValidator(200)],
        help_text="Recent messages sent word for word (chat completions mode).",
    )
    context_summary_every = models.PositiveSmallIntegerField(
        default=10,
        validators=[MaxValueValidator(1000)],
        help_text="Refresh the summary of older messages every this many turns; 0: never.",
    )
    context_idle_reset_minutes = models.PositiveIntegerField(
        default=24 * 60,
        validators=[MaxValueValidator(365 * 24 * 60)],
        help_text="After this long without a message the conversation starts fresh; 0: never.",
    )
    # Handoff (processing/handoff.py).
    handoff_on_negative_sentiment = models.BooleanField(
        default=True, help_text="Hand off when the intent call finds the message negative."
    )
    assignment_strategy = models.CharField(
        max_length=20,
        choices=AssignmentStrategy.choices,
        default=AssignmentStrategy.ROUND_ROBIN,
        help_text="How a handed-off conversation picks among online operators under capacity.",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class LlmCall(models.Model):
    """One call to the LLM (every attempt and retry of it included): what it cost in tokens, how
    long it took and how it ended. Written by `agents.llm`, never edited."""

    class Purpose(models.TextChoices):
        REPLY = "reply"
        INTENT = "intent"
        SUMMARY = "summary"
        EXTRACTION = "extraction"
        EMBEDDING = "embedding"

    class Outcome(models.TextChoices):
        OK = "ok"
        ERROR = "error"
        CIRCUIT_OPEN = "circuit_open"

    agent = models.ForeignKey(
        Agent, null=True, blank=True, on_delete=models.SET_NULL, related_name="llm_calls"
    )
    # Not a foreign key: the record of what was spent outlives the conversation.
    conversation_id = models.UUIDField(null=True, blank=True, db_index=True)
    purpose = models.CharField(max_length=20, choices=Purpose.choices)
    api_mode = models.CharField(max_length=20, choices=Agent.ApiMode.choices)
    model = models.CharField(max_length=100, blank=True)
    input_tokens = models.PositiveIntegerField(default=0)
    output_tokens = models.PositiveIntegerField(default=0)
    total_tokens = models.PositiveIntegerField(default=0)
    latency_ms = models.PositiveIntegerField(default=0)
    attempts = models.PositiveSmallIntegerField(default=0)
    outcome = models.CharField(max_length=20, choices=Outcome.choices)
    error_code = models.CharField(max_length=50, blank=True)
    response_id = models.CharField(max_length=100, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["-created_at"]
        verbose_name = "LLM call"
        # Not `db_index`, which adds a `LIKE` twin no query reads (docs/performance.md, change 42).
        indexes = [models.Index(fields=["outcome"], name="llm_call_outcome")]

    def __str__(self) -> str:
        return f"{self.purpose} {self.model or '-'} {self.outcome}"
