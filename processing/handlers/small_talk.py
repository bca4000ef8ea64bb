"""`small_talk`: greetings, thanks, goodbyes and "how are you", in the agent's persona.

With an LLM the agent answers in its persona (`Agent.persona`, sent with its instructions) and
the reply is billed like any AI reply. Without one, or when it fails, a short built-in reply in
the agent's language introduces the agent by name, free of charge.
"""

from __future__ import annotations

import logging
import re

from agents.llm import LlmUnavailable, llm_configured, llm_reply
from processing.context import context_active
from processing.handlers.base import HandlerContext, HandlerResult, handler, text_reply

logger = logging.getLogger(__name__)

INSTRUCTIONS = (
    "The customer is making small talk (a greeting, thanks, a goodbye, how are you). Answer in "
    "one or two friendly sentences in your persona, then offer to help if it fits."
)

KINDS: list[tuple[str, re.Pattern[str]]] = [
    ("thanks", re.compile(r"\b(thanks?|thank you|thx|ty|obrigad[oa]|gracias|merci)\b", re.I)),
    ("bye", re.compile(r"\b(bye|goodbye|see you|cya|tchau|adeus|adi[oó]s|ciao)\b", re.I)),
    (
        "how",
        re.compile(r"\b(how are you|how's it going|how do you do|tudo bem|qu[eé] tal)\b", re.I),
    ),
    ("who", re.compile(r"\b(who are you|are you a (bot|robot|human)|your name)\b", re.I)),
    (
        "hello",
        re.compile(
            r"\b(hi|hello|hey|good (morning|afternoon|evening)|ol[aá]|hola|bom dia)\b", re.I
        ),
    ),
]

CANNED: dict[str, dict[str, str]] = {
    "en": {
        "hello": "Hi! I'm {name}. How can I help you today?",
        "thanks": "You're welcome! Anything else I can help with?",
        "bye": "Goodbye, and have a great day!",
        "how": "I'm doing well, thanks for asking! How can I help you?",
        "who": "I'm {name}, the virtual assistant here. I can answer questions or bring in a "
        "person from the team.",
        "other": "I'm {name}. How can I help you today?",
    },
    "pt": {
        "hello": "Olá! Sou {name}. Como posso ajudar?",
        "thanks": "De nada! Posso ajudar em mais alguma coisa?",
        "bye": "Até logo, tenha um ótimo dia!",
        "how": "Estou bem, obrigado por perguntar! Como posso ajudar?",
        "who": "Sou {name}, o assistente virtual. Posso responder a perguntas ou chamar uma pessoa "
        "da equipa.",
        "other": "Sou {name}. Como posso ajudar?",
    },
    "es": {
        "hello": "¡Hola! Soy {name}. ¿En qué puedo ayudarte?",
        "thanks": "¡De nada! ¿Algo más en lo que pueda ayudarte?",
        "bye": "¡Hasta luego, que tengas un buen día!",
        "how": "¡Muy bien, gracias por preguntar! ¿En qué puedo ayudarte?",
        "who": "Soy {name}, el asistente virtual. Puedo responder preguntas o llamar a una persona "
        "del equipo.",
        "other": "Soy {name}. ¿En qué puedo ayudarte?",
    },
}


def canned_reply(*, text: str, agent_name: str, language: str) -> str:
    kind = next((kind for kind, pattern in KINDS if pattern.search(text)), "other")
    replies = CANNED.get(language.split("-")[0].lower(), CANNED["en"])
    return replies[kind].format(name=agent_name)


@handler("small_talk", calls_model=True)
def small_talk(ctx: HandlerContext) -> HandlerResult:
    if ctx.message.content.get("type") == "reaction":
        return HandlerResult()
    if llm_configured():
        context = context_active()
        try:
            reply = llm_reply(
                agent=ctx.agent,
                conversation=ctx.conversation,
                input_text=ctx.text,
                # The conversation's context (history for chat completions, a recap after a
                # pause) as every reply gets it, then what this handler adds.
                history=context.history if context else None,
                instructions_extra="\n\n".join(
                    part
                    for part in (
                        context.instructions(api_mode=ctx.agent.api_mode) if context else "",
                        INSTRUCTIONS,
                    )
                    if part
                ),
            )
        except LlmUnavailable as unavailable:
            logger.warning(
                "LLM unavailable; built-in small talk", extra={"reason": unavailable.reason}
            )
        else:
            return HandlerResult(replies=[text_reply(reply.text)], tokens=reply.usage.total_tokens)
    text = canned_reply(
        text=ctx.text,
        agent_name=ctx.agent.name,
        language=ctx.agent.language or ctx.conversation.contact.language or "en",
    )
    return HandlerResult(replies=[text_reply(text)], billable=False)
