import pytest


@pytest.fixture(autouse=True)
def _generous_rate_limit(settings) -> None:
    """These tests send hundreds of requests with the tenant's one key in a few seconds; the
    limit itself is tested in test_api_auth."""
    settings.HUB_API_RATE_PER_MINUTE = 1_000_000
