"""The one HTTP client for providers' APIs: pooled connections, timeouts, and errors sorted into
transient (retry later, maybe after `Retry-After`) and permanent (fail now with the reason)."""

from __future__ import annotations

import functools
import time
from dataclasses import dataclass
from email.message import Message as MimeHeaders
from typing import Any
from urllib.parse import urlsplit

import requests
from django.conf import settings
from requests.adapters import HTTPAdapter

# A download's total time, beyond the per-read timeout: a server dripping bytes cannot hold a
# worker for longer.
DOWNLOAD_DEADLINE_SECONDS = 120.0
DOWNLOAD_CHUNK_BYTES = 64 * 1024


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


class _Session(requests.Session):
    """requests reads the proxy and CA bundle variables again for every request, walking the
    whole environment (0.15 ms a send with 35 variables, more where an orchestrator injects
    hundreds). A process's environment does not change once it runs: each origin's answer is
    read once. A call that names its own proxies gets requests' own merge."""

    def merge_environment_settings(
        self, url: Any, proxies: Any, stream: Any, verify: Any, cert: Any
    ) -> Any:
        if proxies:
            return super().merge_environment_settings(url, proxies, stream, verify, cert)
        parts = urlsplit(url)
        merged = _environment_settings(
            self, f"{parts.scheme}://{parts.netloc}", stream, verify, cert
        )
        return {**merged, "proxies": dict(merged["proxies"])}


@functools.lru_cache(maxsize=256)
def _environment_settings(
    session: _Session, origin: str, stream: Any, verify: Any, cert: Any
) -> Any:
    return requests.Session.merge_environment_settings(session, origin, {}, stream, verify, cert)


@functools.cache
def _session() -> requests.Session:
    session = _Session()
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


class ResponseTooLarge(ProviderError):
    """A download larger than its cap: reading stopped there, nothing of it is kept."""

    def __init__(self, *, max_bytes: int) -> None:
        super().__init__(
            code="too_large",
            message=f"The file is larger than the limit of {max_bytes} bytes.",
            transient=False,
        )
        self.max_bytes = max_bytes


@dataclass(frozen=True)
class Download:
    data: bytes
    # As the server declared them; empty when it did not.
    content_type: str
    filename: str


def _declared_filename(response: requests.Response) -> str:
    headers = MimeHeaders()
    headers["Content-Disposition"] = response.headers.get("Content-Disposition", "")
    return headers.get_filename() or ""


def provider_download(url: str, *, max_bytes: int, **kwargs: Any) -> Download:
    """GETs a file, streaming it and never holding more than `max_bytes` of it.

    Redirects are followed (CDNs answer with them; requests drops an Authorization header when
    a redirect leaves the host). A non-2xx answer is read as `http_status_error` does: 429 and
    5xx transient, the rest permanent. A declared or counted size over `max_bytes` stops the
    download with ResponseTooLarge; a connection lost mid-way, or a download still running
    after DOWNLOAD_DEADLINE_SECONDS, is transient. Error messages never name the URL, which
    may hold a token (Telegram's file links do).
    """
    kwargs.setdefault("allow_redirects", True)
    deadline = time.monotonic() + DOWNLOAD_DEADLINE_SECONDS
    with provider_request("GET", url, stream=True, **kwargs) as response:
        if not 200 <= response.status_code < 300:
            raise http_status_error(
                response,
                code=str(response.status_code),
                message=f"The provider refused the download (HTTP {response.status_code}).",
            )
        declared = response.headers.get("Content-Length", "")
        if declared.isdigit() and int(declared) > max_bytes:
            raise ResponseTooLarge(max_bytes=max_bytes)
        chunks: list[bytes] = []
        size = 0
        try:
            for chunk in response.iter_content(DOWNLOAD_CHUNK_BYTES):
                size += len(chunk)
                if size > max_bytes:
                    raise ResponseTooLarge(max_bytes=max_bytes)
                if time.monotonic() > deadline:
                    raise ProviderError(
                        code="timeout", message="The download took too long.", transient=True
                    )
                chunks.append(chunk)
        except requests.RequestException as error:
            raise ProviderError(
                code="download_interrupted",
                message="The connection broke during the download.",
                transient=True,
            ) from error
        return Download(
            data=b"".join(chunks),
            content_type=response.headers.get("Content-Type", ""),
            filename=_declared_filename(response),
        )
