"""Read an admin change form from its HTML and post it back changed, as a browser would (no JavaScript)."""

from __future__ import annotations

from html.parser import HTMLParser
from typing import Any


class AdminForm(HTMLParser):
    """The fields of the page's main form: inputs, checkboxes, selects (with option labels) and textareas."""

    def __init__(self, page: str) -> None:
        super().__init__(convert_charrefs=True)
        self.values: dict[str, list[str]] = {}
        self.options: dict[str, dict[str, str]] = {}  # select name -> option label -> value
        self.checkboxes: set[str] = set()
        self._select: str | None = None
        self._option: tuple[str, bool] | None = None
        self._textarea: str | None = None
        self._in_form = False
        self.feed(page)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a: dict[str, Any] = dict(attrs)
        if tag == "form" and a.get("id", "").endswith("_form"):
            self._in_form = True
        if not self._in_form:
            return
        name = a.get("name")
        if tag == "input" and name:
            kind = (a.get("type") or "text").lower()
            if kind == "checkbox":
                self.checkboxes.add(name)
                if "checked" in a:
                    self.values.setdefault(name, []).append(a.get("value") or "on")
            elif kind not in ("submit", "button", "file"):
                self.values.setdefault(name, []).append(a.get("value") or "")
        elif tag == "select" and name:
            self._select = name
            self.values.setdefault(name, [])
            self.options.setdefault(name, {})
        elif tag == "option" and self._select:
            self._option = (a.get("value") or "", "selected" in a)
        elif tag == "textarea" and name:
            self._textarea = name
            self.values[name] = [""]

    def handle_data(self, data: str) -> None:
        if self._option is not None and self._select:
            value, selected = self._option
            self.options[self._select][data.strip()] = value
            if selected:
                self.values[self._select].append(value)
            self._option = None
        elif self._textarea:
            self.values[self._textarea][0] += data

    def handle_endtag(self, tag: str) -> None:
        if tag == "select":
            self._select = None
        elif tag == "textarea":
            self._textarea = None
        elif tag == "form":
            self._in_form = False

    def row_prefix(self, inline: str, name: str) -> str:
        """`tools-3` for the inline row whose `name` field is `name`."""
        for key, value in self.values.items():
            if key.startswith(f"{inline}-") and key.endswith("-name") and value == [name]:
                return key[: -len("-name")]
        raise AssertionError(f"No inline row named {name!r} in the form")

    def set(self, name: str, *values: str) -> None:
        self.values[name] = list(values)

    def choose(self, select: str, *labels: str) -> None:
        self.values[select] = [self.options[select][label] for label in labels]

    def check(self, name: str, checked: bool) -> None:
        self.values[name] = ["on"] if checked else []

    def data(self, submit: str = "_save") -> dict[str, list[str]]:
        """What the browser would post (every field, lists for repeated names), with the save button."""
        return {**{name: list(values) for name, values in self.values.items()}, submit: ["Save"]}


def management_form(prefix: str, total: int = 0, initial: int = 0) -> dict[str, int]:
    """The management fields of an admin inline formset, as the change form renders them."""
    return {
        f"{prefix}-TOTAL_FORMS": total,
        f"{prefix}-INITIAL_FORMS": initial,
        f"{prefix}-MIN_NUM_FORMS": 0,
        f"{prefix}-MAX_NUM_FORMS": 1000,
    }
