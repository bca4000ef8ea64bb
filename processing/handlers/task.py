"""`task`: a contact's request for the team ("call me back", "I need a refund") becomes a tracked
task; asking "what's the status of my request?" answers from the contact's tasks.

The task goes to the conversation's operator when one is assigned (notified), else to every
operator (a `task` notification in the live inbox); operators assign and move it through
`tasks/` or the admin. With an LLM one structured-output call tells a new request from a status
question and titles it; without one, a few patterns do.
"""

from __future__ import annotations

import logging

from agents.llm import LlmUnavailable, llm_configured, llm_structured
from agents.models import LlmCall
from automation import parsing
from automation.models import Task
from automation.selectors import task_list_for_contact
from automation.services import task_create
from processing.handlers.base import HandlerContext, HandlerResult, handler, text_reply

logger = logging.getLogger(__name__)

CREATE, STATUS = "create", "status"
SCHEMA = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "action": {
            "type": "string",
            "enum": [CREATE, STATUS],
            "description": "status: the customer asks how an earlier request is going.",
        },
        "title": {"type": "string", "description": "The request in at most ten words."},
    },
    "required": ["action", "title"],
}
STATUS_WORDS = {
    Task.Status.OPEN: "received and waiting for the team",
    Task.Status.IN_PROGRESS: "in progress",
    Task.Status.DONE: "done",
    Task.Status.CANCELLED: "cancelled",
}


def reference(task: Task) -> str:
    """A short reference a contact can quote."""
    return f"T-{task.pk.hex[:8].upper()}"


def _understand(ctx: HandlerContext) -> tuple[str, str, int]:
    """(action, title, tokens)."""
    if llm_configured():
        try:
            data, usage = llm_structured(
                agent=ctx.agent,
                purpose=LlmCall.Purpose.EXTRACTION,
                schema_name="task_request",
                schema=SCHEMA,
                input_text=ctx.text,
                instructions="The customer writes to a support team. Is this a new request "
                "for the team, or a question about the status of an earlier one?",
            )
        except LlmUnavailable as unavailable:
            logger.warning("task not read by the LLM", extra={"reason": unavailable.reason})
        else:
            action = STATUS if data.get("action") == STATUS else CREATE
            title = " ".join(str(data.get("title", "")).split())[:200]
            return action, title or parsing.task_title(ctx.text), usage.total_tokens
    action = STATUS if parsing.task_wants_status(ctx.text) else CREATE
    return action, parsing.task_title(ctx.text), 0


def _status_text(tasks: list[Task]) -> str:
    if not tasks:
        return "I can't find any request from you yet. Tell me what you need and I'll pass it on."
    lines = [f"• {t.title} ({reference(t)}): {STATUS_WORDS[Task.Status(t.status)]}" for t in tasks]
    return "Here is where your requests stand:\n" + "\n".join(lines)


@handler("task", calls_model=True)
def task(ctx: HandlerContext) -> HandlerResult:
    if ctx.message.content.get("type") == "reaction":
        return HandlerResult()
    action, title, tokens = _understand(ctx)
    if action == STATUS:
        text = _status_text(task_list_for_contact(contact_id=ctx.conversation.contact_id))
    else:
        created = task_create(
            title=title,
            description=ctx.text,
            conversation=ctx.conversation,
            assignee=ctx.conversation.assignee,
            requested_by=ctx.message,
        )
        text = (
            f"I've passed your request to our team: “{created.title}” (reference "
            f"{reference(created)}). You can ask me how it's going at any time."
        )
    return HandlerResult(replies=[text_reply(text)], tokens=tokens, billable=tokens > 0)
