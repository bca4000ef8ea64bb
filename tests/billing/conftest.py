from tests.agents.conftest import _closed_circuits, openai_fake
from tests.webhooks.conftest import receiver

__all__ = ["_closed_circuits", "openai_fake", "receiver"]
