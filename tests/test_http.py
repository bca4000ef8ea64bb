"""hub/http.py's session: the environment's proxy settings, read once per origin."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import requests.utils

from hub import http
from hub.embedded import free_port
from tests.fakes import fake_provider


@pytest.fixture
def environment(monkeypatch: pytest.MonkeyPatch) -> Iterator[pytest.MonkeyPatch]:
    """The proxy variables of this test alone, read afresh by the session."""
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "ALL_PROXY"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)
    http._environment_settings.cache_clear()
    yield monkeypatch
    http._environment_settings.cache_clear()


def test_requests_go_through_the_environments_proxy(environment: pytest.MonkeyPatch) -> None:
    with fake_provider() as proxy:
        proxy.default(r".*", 200, {"proxied": True})
        environment.setenv("HTTP_PROXY", proxy.url)
        response = http.provider_request("GET", "http://graph.provider.test/v1/me")
        assert response.json() == {"proxied": True}
        # A forward proxy is asked for the whole URL.
        assert proxy.paths() == ["http://graph.provider.test/v1/me"]


def test_hosts_in_no_proxy_are_reached_directly(environment: pytest.MonkeyPatch) -> None:
    with fake_provider() as provider:
        provider.default(r"^/v1/me$", 200, {"direct": True})
        # A proxy that is not there: going through it would fail.
        environment.setenv("HTTP_PROXY", f"http://127.0.0.1:{free_port()}")
        environment.setenv("NO_PROXY", "127.0.0.1")
        response = http.provider_request("GET", f"{provider.url}/v1/me")
        assert response.json() == {"direct": True}


def test_the_environment_is_read_once_per_origin(environment: pytest.MonkeyPatch) -> None:
    reads: list[str] = []
    read = requests.utils.get_environ_proxies

    def counted(url: str, no_proxy: Any = None) -> dict[str, str]:
        reads.append(url)
        return read(url, no_proxy)

    environment.setattr("requests.sessions.get_environ_proxies", counted)
    with fake_provider() as provider, fake_provider() as other:
        provider.default(r".*", 200, {})
        other.default(r".*", 200, {})
        for path in ("/a", "/b", "/c?x=1"):
            http.provider_request("POST", f"{provider.url}{path}", json={})
        http.provider_request("GET", f"{other.url}/a")
        assert reads == [provider.url, other.url]
        # A call naming its own proxies is merged by requests as usual.
        http.provider_request("GET", f"{other.url}/b", proxies={"no": "pe"})
        assert len(reads) == 3
