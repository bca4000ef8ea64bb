"""The API's JSON: DRF's renderer's output, written by orjson.

DRF's JSONRenderer goes through the standard library's encoder, calling back into Python for
every UUID: 0.55 ms of a conversation list page's 7.4 ms of CPU, where orjson writes the same
bytes in 0.04 ms (docs/performance.md, change 32). Whatever orjson would write differently goes
through DRF's own code: datetimes and any type orjson does not know are handed to DRF's encoder,
and a pretty-printed answer (`Accept: application/json; indent=4`) or an integer wider than 64
bits to DRF's renderer. One difference is left: a float that is not a number (NaN, infinity),
which DRF refuses with an error, is written `null`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson
from rest_framework.renderers import JSONRenderer as DrfJSONRenderer
from rest_framework.utils.encoders import JSONEncoder

_ENCODE = JSONEncoder().default
_OPTIONS = orjson.OPT_NON_STR_KEYS | orjson.OPT_PASSTHROUGH_DATETIME
# DRF escapes these two so that its JSON is also valid JavaScript.
_LINE_SEPARATOR, _PARAGRAPH_SEPARATOR = "\u2028".encode(), "\u2029".encode()


class JSONRenderer(DrfJSONRenderer):
    def render(
        self,
        data: Any,
        accepted_media_type: str | None = None,
        renderer_context: Mapping[str, Any] | None = None,
    ) -> bytes:
        if data is None:
            return b""
        if self.get_indent(accepted_media_type or "", renderer_context or {}) is not None:
            return super().render(data, accepted_media_type, renderer_context)
        try:
            rendered = orjson.dumps(data, default=_ENCODE, option=_OPTIONS)
        except orjson.JSONEncodeError:
            return super().render(data, accepted_media_type, renderer_context)
        if _LINE_SEPARATOR in rendered or _PARAGRAPH_SEPARATOR in rendered:
            rendered = rendered.replace(_LINE_SEPARATOR, b"\\u2028")
            rendered = rendered.replace(_PARAGRAPH_SEPARATOR, b"\\u2029")
        return rendered
