"""The fake OpenAI server wired into settings, fast retries, and closed circuits per test."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from agents.llm import llm_circuit_reset
from tests.conftest import TenantInfo
from tests.fake_openai import FakeOpenAI, fake_openai


@pytest.fixture
def openai_fake(settings: Any) -> Iterator[FakeOpenAI]:
    with fake_openai() as fake:
        settings.OPENAI_API_KEY = "sk-test-key"
        settings.OPENAI_BASE_URL = fake.base_url
        settings.HUB_LLM_MODEL = "gpt-4.1-mini"
        settings.HUB_LLM_TIMEOUT_SECONDS = 5.0
        settings.HUB_LLM_MAX_RETRIES = 2
        settings.HUB_LLM_BACKOFF_BASE_SECONDS = 0.01
        settings.HUB_LLM_BACKOFF_MAX_SECONDS = 0.05
        settings.HUB_LLM_RETRY_AFTER_MAX_SECONDS = 10.0
        settings.HUB_LLM_BREAKER_THRESHOLD = 3
        settings.HUB_LLM_BREAKER_COOLDOWN_SECONDS = 30.0
        yield fake


@pytest.fixture(autouse=True)
def _closed_circuits(tenants: dict[str, TenantInfo]) -> Iterator[None]:
    """Breaker state lives in Redis, outside the test transaction: every test starts closed."""
    for info in tenants.values():
        llm_circuit_reset(schema=info.slug)
    yield
    for info in tenants.values():
        llm_circuit_reset(schema=info.slug)
