"""The management API's JSON parser (settings.REST_FRAMEWORK["DEFAULT_PARSER_CLASSES"]): the project's one
JSON parser with its limits, so a deep, huge or key-stuffed body is a 400 in the API's error shape."""

from __future__ import annotations

from collections.abc import Mapping
from typing import IO, Any

from django.conf import settings
from rest_framework.exceptions import ParseError
from rest_framework.parsers import JSONParser

from authsec_site.lib.jsonbody import JSONBodyError, parse_json


class LimitedJSONParser(JSONParser):
    """`authsec_site.lib.jsonbody.parse_json` instead of DRF's recursive `json.load` (RecursionError → 500)."""

    def parse(
        self, stream: IO[bytes], media_type: str | None = None, parser_context: Mapping[str, Any] | None = None
    ) -> Any:
        try:
            # At most one byte over the limit is read: a larger body is refused without holding all of it.
            return parse_json(stream.read(settings.JSON_MAX_BYTES + 1) if stream is not None else b"")
        except JSONBodyError as exc:
            raise ParseError(f"JSON parse error - {exc.message}") from None
