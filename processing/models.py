from __future__ import annotations

from django.db import models


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
