"""The one HTTP client for providers' APIs: pooled connections, timeouts, and errors sorted into
transient (retry later, maybe after `Retry-After`) and permanent (fail now with the reason)."""

from __future__ import annotations

import functools
from typing import Any

import requests
from django.conf import settings
from requests.adapters import HTTPAdapter


class ProviderError(Exception):
    """A provider refused or failed a request. `transient` errors are retried; `retry_after`
    (seconds) is the provider's own wish when it gave one."""

    def __init__(
        self, *, code: str, message: str, transient: bool, retry_after: float | None = None
    ) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.transient = transient
        self.retry_after = retry_after


@functools.cache
def _session() -> requests.Session:
    session = requests.Session()
    adapter = HTTPAdapter(pool_connections=32, pool_maxsize=64)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session


def retry_after_seconds(response: requests.Response) -> float | None:
    value = response.headers.get("Retry-After", "")
    try:
        return max(0.0, float(value))
    except ValueError:
        return None


def provider_request(method: str, url: str, **kwargs: Any) -> requests.Response:
    """Sends one request. Connection failures and timeouts raise a transient ProviderError;
    every HTTP answer is returned for the provider adapter to read its own error format."""
    kwargs.setdefault("timeout", settings.HUB_PROVIDER_TIMEOUT_SECONDS)
    kwargs.setdefault("allow_redirects", False)
    try:
        return _session().request(method, url, **kwargs)
    except requests.Timeout as error:
        raise ProviderError(
            code="timeout", message="The provider did not answer in time.", transient=True
        ) from error
    except requests.ConnectionError as error:
        raise ProviderError(
            code="connection_failed", message="The provider could not be reached.", transient=True
        ) from error


def http_status_error(response: requests.Response, *, code: str, message: str) -> ProviderError:
    """The usual reading of an HTTP failure: 429 and 5xx are transient, the rest permanent."""
    transient = response.status_code == 429 or response.status_code >= 500
    return ProviderError(
        code=code, message=message, transient=transient, retry_after=retry_after_seconds(response)
    )
