"""The handler registry: a handler is one module and one import line here."""

from processing.handlers import (
    answer,  # noqa: F401
    assessment,  # noqa: F401
    feedback,  # noqa: F401
    qna,  # noqa: F401
    reminder,  # noqa: F401
    small_talk,  # noqa: F401
    task,  # noqa: F401
)
from processing.handlers.base import (
    HANDLERS,
    MODEL_HANDLERS,
    Handler,
    HandlerContext,
    HandlerResult,
    Route,
)

__all__ = ["HANDLERS", "MODEL_HANDLERS", "Handler", "HandlerContext", "HandlerResult", "Route"]
