"""Per-request context (request id, client IP, trace id) that `audit.record` picks up without being passed it.

Context variables work in threads and in asyncio tasks alike, so sync views, async MCP handlers and
Celery tasks all see the values of their own request only.
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Iterator
from typing import NamedTuple

from authsec_site.lib import tracing


class RequestContext(NamedTuple):
    """Immutable. A named tuple rather than a frozen dataclass: the MCP endpoint makes one per request, and a
    frozen dataclass's ``__init__`` (one ``object.__setattr__`` per field) cost five times as much."""

    request_id: str = ""
    ip: str | None = None
    user_agent: str = ""
    trace_id: str = ""  # the request's OpenTelemetry trace (32 hex digits), when tracing is on


# A new request's context: `RequestContext` itself, or with tracing on one that also takes the current trace id
# (`authsec_site.lib.tracing.with_trace_id`), so an auditor can go from an event to its trace.
new_context = tracing.with_trace_id(RequestContext)


_current: contextvars.ContextVar[RequestContext] = contextvars.ContextVar(
    "authsec_request_context",
    default=RequestContext(),  # noqa: B039 - a named tuple, immutable
)


def current() -> RequestContext:
    return _current.get()


@contextlib.contextmanager
def bind(context: RequestContext) -> Iterator[RequestContext]:
    token = _current.set(context)
    try:
        yield context
    finally:
        _current.reset(token)
