from tests.agents.conftest import _closed_circuits, openai_fake

__all__ = ["_closed_circuits", "openai_fake"]
