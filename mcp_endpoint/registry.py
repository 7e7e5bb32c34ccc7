"""The tool registry and the seed's decorator, ``@protected_by_AuthSec``.

A registered tool carries its code-declared requirement (roles, groups, scopes, resources, permissions,
require_all). That requirement only *seeds* the application's `ToolPolicy` row (`seed_tool_policies`); at
request time the row decides, so an admin's edit always wins over the code. A tool with no row is not
served by the application (fail closed).

Two handler shapes are accepted:
- the seed's: ``async def f(arguments: dict) -> list`` or ``async def f(arguments: dict, session) -> list``,
  with the JSON Schema given as ``inputSchema=`` (default: any object);
- typed: ``async def f(a: float, b: float) -> str`` (optionally ``session`` and ``_user_info`` parameters),
  with the input schema derived from the type hints by mcp's own `func_metadata` (pydantic).
"""

from __future__ import annotations

import importlib
import inspect
import threading
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import jsonschema
import mcp_types as types
from jsonschema.exceptions import best_match
from mcp.server.mcpserver.utilities.func_metadata import func_metadata
from pydantic import ValidationError as PydanticValidationError

from authsec_site.lib import tracing
from rbac.pin_definitions import definition, definition_hash

ANY_OBJECT: dict[str, Any] = {"type": "object", "additionalProperties": True}
# Injected by the endpoint; never part of a tool's declared input.
INJECTED = ("_user_info", "session")


class ToolError(Exception):
    """Raised by a tool for an error whose message is safe to show to the caller (e.g. division by zero).

    Any other exception is reported to the caller as a generic failure and logged on the server."""


class InvalidArguments(ValueError):
    """The arguments do not match the tool's input schema; the message says which and why."""


@dataclass(frozen=True)
class RegisteredTool:
    """A tool's code: handler, schema, and the requirement it seeds its policy with."""

    name: str
    handler: Callable[..., Awaitable[Any]]
    description: str
    input_schema: dict[str, Any]
    requirement: dict[str, Any]
    wants_session: bool
    typed: bool
    _validator: Any = field(repr=False, compare=False)
    _arg_model: Any = field(repr=False, compare=False, default=None)
    # Typed tools: which of `INJECTED` the handler takes (read from its signature once, at registration).
    injects: frozenset[str] = frozenset()
    title: str | None = None
    output_schema: dict[str, Any] | None = None
    annotations: dict[str, Any] | None = None
    # The served definition and its SHA-256, computed once here: what tool pinning compares (`rbac.pins`).
    definition: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)
    definition_hash: str = ""

    def __post_init__(self) -> None:
        if not self.definition_hash:
            served = definition(
                self.name,
                title=self.title,
                description=self.description,
                input_schema=self.input_schema,
                output_schema=self.output_schema,
                annotations=self.annotations,
            )
            object.__setattr__(self, "definition", served)
            object.__setattr__(self, "definition_hash", definition_hash(served))

    @property
    def takes_user_info(self) -> bool:
        """Whether the handler receives `_user_info` (every seed-style tool does; a typed one if it declares it)."""
        return not self.typed or "_user_info" in self.injects

    @property
    def takes_session(self) -> bool:
        return self.wants_session if not self.typed else "session" in self.injects

    def as_mcp_tool(self) -> types.Tool:
        return types.Tool(
            name=self.name,
            title=self.title,
            description=self.description or None,
            input_schema=self.input_schema,
            output_schema=self.output_schema,
            annotations=types.ToolAnnotations.model_validate(self.annotations) if self.annotations else None,
        )

    def validate(self, arguments: dict[str, Any]) -> dict[str, Any]:
        """Check `arguments` against the input schema; raise `InvalidArguments` with a clear message."""
        if self.typed:
            try:
                model = self._arg_model.model_validate(arguments)
            except PydanticValidationError as exc:
                first = exc.errors()[0]
                where = ".".join(str(part) for part in first["loc"]) or "(arguments)"
                raise InvalidArguments(f"Invalid arguments for tool {self.name}: {where}: {first['msg']}") from None
            return model.model_dump_one_level()
        error = best_match(self._validator.iter_errors(arguments))
        if error is not None:
            where = "/".join(str(part) for part in error.absolute_path) or "(arguments)"
            raise InvalidArguments(f"Invalid arguments for tool {self.name}: {where}: {error.message}")
        return arguments

    @tracing.traced(
        lambda self, *args: f"execute_tool {self.name}",  # OpenTelemetry's GenAI conventions
        attributes=lambda self, *args: {"gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": self.name},
    )
    async def run(
        self, arguments: dict[str, Any], user_info: dict[str, Any] | None, session: Any
    ) -> list[dict[str, Any]]:
        """Call the handler with validated `arguments` and the injected context; return content dicts.

        `user_info` and `session` are used only when the handler takes them (`takes_user_info`,
        `takes_session`), so a caller may pass None for what it does not take."""
        if self.typed:
            kwargs = dict(arguments)
            if self.takes_user_info:
                kwargs["_user_info"] = user_info
            if self.takes_session:
                kwargs["session"] = session
            result = await self.handler(**kwargs)
        else:
            payload = {**arguments, "_user_info": user_info}
            result = await (self.handler(payload, session) if self.takes_session else self.handler(payload))
        return as_content(result)


def as_content(result: Any) -> list[dict[str, Any]]:
    """Normalise a tool's return value to a list of MCP content dicts (the seed returns such a list)."""
    if result is None:
        return []
    if isinstance(result, str):
        return [{"type": "text", "text": result}]
    if isinstance(result, dict):
        return [result]
    if isinstance(result, (list, tuple)):
        items: list[dict[str, Any]] = []
        for item in result:
            items.extend(as_content(item))
        return items
    return [{"type": "text", "text": str(result)}]


class Registry:
    """Tools by name. Registering a second, different handler under a taken name is an error."""

    def __init__(self) -> None:
        self._tools: dict[str, RegisteredTool] = {}
        self._lock = threading.Lock()
        self._mcp_tools: dict[str, types.Tool] = {}
        self.generation = 0  # changes with every add or remove (what was derived from the tool set is stale)

    def add(self, tool: RegisteredTool) -> None:
        """Register `tool`; the same handler registered again (a module reloaded) replaces its definition, whose
        hash tool pinning then compares with the pins (`mcp_endpoint.pinning`)."""
        with self._lock:
            existing = self._tools.get(tool.name)
            if existing is not None and existing.handler.__qualname__ != tool.handler.__qualname__:
                raise ValueError(f"A tool named {tool.name!r} is already registered")
            self._tools[tool.name] = tool
            self._mcp_tools[tool.name] = tool.as_mcp_tool()
            self.generation += 1

    def remove(self, name: str) -> None:
        with self._lock:
            self._tools.pop(name, None)
            self._mcp_tools.pop(name, None)
            self.generation += 1

    def get(self, name: str) -> RegisteredTool | None:
        return self._tools.get(name)

    def mcp_tool(self, name: str) -> types.Tool | None:
        return self._mcp_tools.get(name)

    def names(self) -> list[str]:
        return list(self._tools)

    def __contains__(self, name: object) -> bool:
        return name in self._tools


registry = Registry()


def _list(kind: str, value: Iterable[str] | None) -> list[str]:
    if isinstance(value, str):
        raise TypeError(f"{kind} must be a list of names, not the string {value!r}")
    return sorted(set(value or ()))


def protected_by_AuthSec(  # noqa: N802 - the seed's public name
    name: str,
    roles: Iterable[str] | None = None,
    groups: Iterable[str] | None = None,
    scopes: Iterable[str] | None = None,
    resources: Iterable[str] | None = None,
    permissions: Iterable[str] | None = None,
    require_all: bool = False,
    description: str | None = None,
    inputSchema: dict[str, Any] | None = None,  # noqa: N803 - the seed's keyword
    *,
    title: str | None = None,
    outputSchema: dict[str, Any] | None = None,  # noqa: N803 - the MCP spelling, like inputSchema
    annotations: dict[str, Any] | None = None,
    target: Registry | None = None,
) -> Callable[[Callable[..., Awaitable[Any]]], Callable[..., Awaitable[Any]]]:
    """Register an async tool with its default access requirement (see the module docstring)."""
    requirement = {
        "roles": _list("roles", roles),
        "groups": _list("groups", groups),
        "scopes": _list("scopes", scopes),
        "resources": _list("resources", resources),
        "permissions": _list("permissions", permissions),
        "require_all": bool(require_all),
    }

    def decorate(func: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
        if not inspect.iscoroutinefunction(func):
            raise TypeError(f"Tool {name!r} must be an async function")
        params = list(inspect.signature(func).parameters.values())
        seed_style = bool(params) and params[0].name == "arguments"
        doc = description if description is not None else inspect.getdoc(func) or ""
        arg_model = None
        if seed_style:
            if len(params) > 2:
                raise TypeError(f"Tool {name!r}: seed-style tools take (arguments) or (arguments, session)")
            schema = dict(inputSchema) if inputSchema is not None else dict(ANY_OBJECT)
        else:
            meta = func_metadata(func, skip_names=INJECTED, structured_output=False)
            arg_model = meta.arg_model
            schema = dict(inputSchema) if inputSchema is not None else arg_model.model_json_schema(by_alias=True)
        jsonschema.Draft202012Validator.check_schema(schema)
        tool = RegisteredTool(
            name=name,
            handler=func,
            description=doc,
            input_schema=schema,
            requirement=requirement,
            wants_session=seed_style and len(params) == 2,
            typed=not seed_style,
            _validator=jsonschema.Draft202012Validator(schema),
            _arg_model=arg_model,
            injects=frozenset(param.name for param in params if not seed_style and param.name in INJECTED),
            title=title,
            output_schema=dict(outputSchema) if outputSchema is not None else None,
            annotations=dict(annotations) if annotations is not None else None,
        )
        (target or registry).add(tool)
        return func

    return decorate


def load_tool_modules(modules: Iterable[str] | None = None) -> None:
    """Import the modules that register tools: `modules`, else the setting `AUTHSEC_TOOL_MODULES`.

    A module that cannot be imported is a configuration error named in the message (start-up fails)."""
    from django.conf import settings
    from django.core.exceptions import ImproperlyConfigured

    for dotted in settings.AUTHSEC_TOOL_MODULES if modules is None else modules:
        try:
            importlib.import_module(dotted)
        except ImportError as exc:
            raise ImproperlyConfigured(
                f"AUTHSEC_TOOL_MODULES names the tool module {dotted!r}, which cannot be imported: {exc}"
            ) from exc


def ensure_loaded() -> None:
    """Make sure the configured tool modules are imported (already done at app ready; importing is idempotent)."""
    load_tool_modules()
