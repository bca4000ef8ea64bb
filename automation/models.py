"""What the automation handlers keep: satisfaction ratings, reminders, tasks for operators, and
assessment flows with the runs contacts go through (docs/handlers.md)."""

from __future__ import annotations

import uuid

from django.db import models
from django.db.models import Q

from retention.encryption import TenantEncryptedJSONField, TenantEncryptedTextField


class CsatRating(models.Model):
    """A contact's rating (1-5) of the service: a typed score or emoji, or a reaction on one
    of the AI's messages. One per rating message, and one per rated AI message (a changed
    reaction replaces the rating)."""

    class Sentiment(models.TextChoices):
        POSITIVE = "positive"
        NEUTRAL = "neutral"
        NEGATIVE = "negative"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    conversation = models.ForeignKey(
        "conversations.Conversation", on_delete=models.CASCADE, related_name="csat_ratings"
    )
    contact = models.ForeignKey(
        "conversations.Contact", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    # The inbound message that carried the rating.
    message = models.ForeignKey("conversations.Message", on_delete=models.CASCADE, related_name="+")
    # The AI message a reaction rated; empty for a typed rating.
    rated_message = models.ForeignKey(
        "conversations.Message",
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="+",
    )
    score = models.PositiveSmallIntegerField()
    sentiment = models.CharField(max_length=10, choices=Sentiment.choices, db_index=True)
    # What the contact sent: "4", "⭐⭐⭐", "👍" (no other text is kept).
    raw = models.CharField(max_length=50)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["-created_at"]
        verbose_name = "CSAT rating"
        constraints = [
            models.CheckConstraint(
                condition=Q(score__gte=1, score__lte=5), name="csat_score_1_to_5"
            ),
            models.UniqueConstraint(fields=["message"], name="csat_one_per_message"),
            models.UniqueConstraint(
                fields=["rated_message"],
                name="csat_one_per_rated_message",
                condition=Q(rated_message__isnull=False),
            ),
        ]

    def __str__(self) -> str:
        return f"{self.score}/5 ({self.sentiment})"


class Reminder(models.Model):
    """Something to tell the contact later, on the conversation's channel."""

    class Status(models.TextChoices):
        SCHEDULED = "scheduled"
        DELIVERED = "delivered"
        CANCELLED = "cancelled"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    conversation = models.ForeignKey(
        "conversations.Conversation", on_delete=models.CASCADE, related_name="reminders"
    )
    # The contact's words, like the title and description of a task and the answers of an
    # assessment: encrypted at rest while the tenant encrypts messages (docs/retention.md).
    text = TenantEncryptedTextField(max_length=500)
    due_at = models.DateTimeField(db_index=True)
    status = models.CharField(
        max_length=10, choices=Status.choices, default=Status.SCHEDULED, db_index=True
    )
    # The inbound message that asked for it: a reprocessed message creates nothing twice.
    requested_by = models.OneToOneField(
        "conversations.Message",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    # The inbound message that last cancelled or snoozed it: a reprocessed message (answers are
    # worked out outside a transaction) changes nothing twice.
    changed_by = models.ForeignKey(
        "conversations.Message",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    snoozed = models.PositiveSmallIntegerField(default=0, help_text="Times it was snoozed.")
    delivered_message = models.ForeignKey(
        "conversations.Message",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    delivered_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["due_at"]
        indexes = [
            models.Index(
                fields=["due_at"],
                name="reminder_due_scheduled",
                condition=Q(status="scheduled"),
            )
        ]

    def __str__(self) -> str:
        return f"{self.text[:40]} at {self.due_at:%Y-%m-%d %H:%M}"


class Task(models.Model):
    """A follow-up for the team that a contact asked for (a call back, a refund, a visit),
    tracked to the end; the contact can ask how it is going."""

    class Status(models.TextChoices):
        OPEN = "open"
        IN_PROGRESS = "in_progress"
        DONE = "done"
        CANCELLED = "cancelled"

    class Priority(models.IntegerChoices):
        LOW = 1
        NORMAL = 2
        HIGH = 3

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    title = TenantEncryptedTextField(max_length=200)
    description = TenantEncryptedTextField(blank=True, max_length=5000)
    status = models.CharField(
        max_length=12, choices=Status.choices, default=Status.OPEN, db_index=True
    )
    priority = models.PositiveSmallIntegerField(choices=Priority.choices, default=Priority.NORMAL)
    due_at = models.DateTimeField(null=True, blank=True)
    conversation = models.ForeignKey(
        "conversations.Conversation",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="tasks",
    )
    contact = models.ForeignKey(
        "conversations.Contact",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="tasks",
    )
    assignee = models.ForeignKey(
        "conversations.Operator",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="tasks",
    )
    # The inbound message that asked for it: a reprocessed message creates nothing twice.
    requested_by = models.OneToOneField(
        "conversations.Message",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    completed_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return self.title


class AssessmentFlow(models.Model):
    """A multi-step questionnaire defined by the tenant as JSON (docs/handlers.md): questions
    with their validation, an optional score per answer, and outcomes by score."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    key = models.SlugField(
        max_length=50, unique=True, help_text="How routing and contacts name it, e.g. intake."
    )
    name = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    trigger_keywords = models.JSONField(
        default=list,
        blank=True,
        help_text="Words or phrases that start this flow when the assessment handler runs.",
    )
    definition = models.JSONField(help_text="Questions, outcomes and messages (docs/handlers.md).")
    enabled = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class AssessmentRun(models.Model):
    """One contact going through a flow in one conversation: where they are, what they
    answered, and the result. At most one run per conversation is in progress; while it is,
    the conversation's messages are its answers."""

    class Status(models.TextChoices):
        IN_PROGRESS = "in_progress"
        COMPLETED = "completed"
        CANCELLED = "cancelled"
        ABANDONED = "abandoned"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    flow = models.ForeignKey(AssessmentFlow, on_delete=models.PROTECT, related_name="runs")
    # The definition as it was when the run started: a flow edited meanwhile cannot break it.
    definition = models.JSONField()
    conversation = models.ForeignKey(
        "conversations.Conversation", on_delete=models.CASCADE, related_name="assessment_runs"
    )
    contact = models.ForeignKey(
        "conversations.Contact", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    status = models.CharField(
        max_length=12, choices=Status.choices, default=Status.IN_PROGRESS, db_index=True
    )
    step = models.PositiveSmallIntegerField(default=0, help_text="Index of the current question.")
    invalid_answers = models.PositiveSmallIntegerField(
        default=0, help_text="Invalid answers in a row to the current question."
    )
    answers = TenantEncryptedJSONField(default=dict, blank=True)
    score = models.FloatField(null=True, blank=True)
    outcome = models.CharField(max_length=100, blank=True)
    # The last inbound message handled: a reprocessed message is not taken as a new answer.
    last_message = models.ForeignKey(
        "conversations.Message", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    started_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    completed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-started_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["conversation"],
                name="assessment_one_run_in_progress",
                condition=Q(status="in_progress"),
            )
        ]

    def __str__(self) -> str:
        return f"{self.flow} ({self.status})"
