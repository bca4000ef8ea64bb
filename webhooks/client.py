"""The one place that POSTs to integrators' endpoints.

Retries are not done here: each call is one attempt, and the delivery service decides, from
what came back, whether and when to try again.
"""

from __future__ import annotations

import email.utils
import time
from dataclasses import dataclass
from datetime import UTC, datetime

import requests
import urllib3.exceptions

from webhooks.security import GuardedAdapter, UnsafeDestination, webhook_url_check

SNIPPET_BYTES = 1000


@dataclass(frozen=True)
class PostResult:
    """What one POST got: a status code, or an error and no status code."""

    status_code: int | None = None
    error: str = ""
    duration_ms: int = 0
    snippet: str = ""
    # Seconds the receiver asked us to wait (`Retry-After`), if it said.
    retry_after: float | None = None
    # The destination is refused (SSRF rules): retrying cannot help.
    refused: bool = False

    @property
    def succeeded(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300


def retry_after_seconds(value: str | None, *, now: datetime | None = None) -> float | None:
    """`Retry-After` as seconds from now: either delay-seconds or an HTTP date (RFC 9110)."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


def _session() -> requests.Session:
    session = requests.Session()
    # No proxies, .netrc or CA bundles from the worker's environment: a proxy would connect on
    # our behalf and defeat the address checks.
    session.trust_env = False
    adapter = GuardedAdapter(max_retries=0)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session


def webhook_post(*, url: str, body: bytes, headers: dict[str, str], timeout: float) -> PostResult:
    """POSTs `body` once. Never follows redirects (a 3xx is an answer, not a success) and reads
    at most SNIPPET_BYTES of the response. Never raises for what the network or the receiver
    does; the result says what happened."""
    started = time.monotonic()

    def elapsed() -> int:
        return int((time.monotonic() - started) * 1000)

    try:
        # Fails fast on a URL that became invalid (scheme, host); addresses are vetted again
        # on connect by the adapter.
        webhook_url_check(url)
        with _session() as session:
            response = session.post(
                url,
                data=body,
                headers=headers,
                timeout=timeout,
                allow_redirects=False,
                stream=True,
            )
            try:
                raw = response.raw.read(SNIPPET_BYTES, decode_content=True) or b""
            except (urllib3.exceptions.HTTPError, OSError, ValueError):
                # The snippet is a courtesy; the status code is what counts.
                raw = b""
            finally:
                response.close()
    except UnsafeDestination as error:
        return PostResult(error=f"Refused: {error}", duration_ms=elapsed(), refused=True)
    except requests.Timeout:
        return PostResult(error=f"Timed out after {timeout:g}s.", duration_ms=elapsed())
    except requests.RequestException as error:
        return PostResult(error=_describe(error), duration_ms=elapsed())
    retry_after = None
    if response.status_code in (429, 503):
        retry_after = retry_after_seconds(response.headers.get("Retry-After"))
    return PostResult(
        status_code=response.status_code,
        duration_ms=elapsed(),
        snippet=raw.decode("utf-8", errors="replace"),
        retry_after=retry_after,
        error="" if 200 <= response.status_code < 300 else _status_error(response),
    )


def _status_error(response: requests.Response) -> str:
    if response.is_redirect or 300 <= response.status_code < 400:
        return f"HTTP {response.status_code}: redirects are not followed."
    return f"HTTP {response.status_code}."


def _describe(error: requests.RequestException) -> str:
    reason: object = error.args[0] if error.args else error
    # urllib3's MaxRetryError wraps the readable part ("Connection refused").
    reason = getattr(reason, "reason", None) or reason
    return f"{type(error).__name__}: {reason}"[:500]
