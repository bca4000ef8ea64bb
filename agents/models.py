from __future__ import annotations

import uuid

from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models


class Agent(models.Model):
    """An AI agent that answers on the channels that name it."""

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
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name
