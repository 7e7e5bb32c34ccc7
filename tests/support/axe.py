"""Accessibility checks for the browser tests: axe-core run in the page, and the keyboard walk.

axe-core is the version locked in `tests/support/axe-core/package-lock.json`, installed by `make axe` (a dependency
of `make test`) into `.local/axe-core/` (docs/running.md). It is injected into the page under test by
`execute_script` and run there; nothing is fetched at test time. A missing or other version fails the test.

    assert_accessible(browser, "account page")       # no serious or critical WCAG 2.0/2.1 A/AA violation
    order = tab_through(browser)                     # every interactive element reachable by Tab, focus visible
    tab_to(browser, button).send_keys(Keys.ENTER)    # the page's main action, by keyboard alone

docs/dashboard.md ("Accessibility") states the rules these enforce."""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.remote.webelement import WebElement

ROOT = Path(__file__).resolve().parents[2]
LOCK = ROOT / "tests" / "support" / "axe-core" / "package-lock.json"
AXE_JS = ROOT / ".local" / "axe-core" / "node_modules" / "axe-core" / "axe.min.js"

# WCAG 2.0 and 2.1, levels A and AA (axe-core's rule tags).
WCAG_TAGS = ("wcag2a", "wcag2aa", "wcag21a", "wcag21aa")
BLOCKING = frozenset({"serious", "critical"})


@functools.cache
def locked_version() -> str:
    return json.loads(LOCK.read_text())["packages"]["node_modules/axe-core"]["version"]


@functools.cache
def axe_source() -> str:
    """The locked axe-core's source; fails the test (never skips) when `make axe` has not installed it."""
    if not AXE_JS.is_file():
        pytest.fail(f"axe-core is not installed ({AXE_JS.relative_to(ROOT)} missing): run `make axe`")
    installed = json.loads((AXE_JS.parent / "package.json").read_text())["version"]
    if installed != locked_version():
        pytest.fail(f"axe-core {installed} is installed but the lock says {locked_version()}: run `make axe`")
    return AXE_JS.read_text()


def inject(driver: WebDriver) -> None:
    """Put axe-core into the current document (once per document) and check its version."""
    if driver.execute_script("return typeof window.axe === 'object' && window.axe.version"):
        return
    driver.execute_script(axe_source())
    version = driver.execute_script("return window.axe && window.axe.version")
    if version != locked_version():
        pytest.fail(f"axe-core did not load into the page (window.axe.version = {version!r})")


_RUN = """
const [tags, done] = [arguments[0], arguments[arguments.length - 1]];
window.axe.run(document, {runOnly: {type: 'tag', values: tags}, resultTypes: ['violations']})
  .then(results => done({violations: results.violations.map(v => ({
      id: v.id, impact: v.impact, help: v.help, helpUrl: v.helpUrl,
      nodes: v.nodes.map(n => ({impact: n.impact, target: n.target, summary: n.failureSummary}))}))}))
  .catch(error => done({error: String(error && error.stack || error)}));
"""


@dataclass(frozen=True)
class Violation:
    rule: str
    impact: str
    help: str
    help_url: str
    targets: tuple[str, ...]
    summaries: tuple[str, ...]

    def __str__(self) -> str:
        lines = [f"- {self.rule} ({self.impact}): {self.help}", f"  {self.help_url}"]
        for target, summary in zip(self.targets, self.summaries, strict=True):
            lines.append(f"  at {target}")
            lines.extend(f"     {line}" for line in summary.splitlines() if line.strip())
        return "\n".join(lines)


def violations(driver: WebDriver, tags: tuple[str, ...] = WCAG_TAGS) -> list[Violation]:
    """Every axe-core violation of `tags` on the current page (all impacts)."""
    inject(driver)
    result = driver.execute_async_script(_RUN, list(tags))
    if "error" in result:
        pytest.fail(f"axe.run failed: {result['error']}")
    return [
        Violation(
            rule=v["id"],
            impact=v["impact"] or "",
            help=v["help"],
            help_url=v["helpUrl"],
            # A target is a selector path (several entries when it crosses iframes or shadow roots).
            targets=tuple(" >> ".join(map(str, node["target"])) for node in v["nodes"]),
            summaries=tuple(node["summary"] or "" for node in v["nodes"]),
        )
        for v in result["violations"]
    ]


def assert_accessible(driver: WebDriver, page_name: str, tags: tuple[str, ...] = WCAG_TAGS) -> list[Violation]:
    """Fail with a readable list (rule, impact, target selectors, help URL) when the current page has a serious
    or critical violation of WCAG 2.0/2.1 A/AA; returns the minor and moderate ones, which do not fail."""
    found = violations(driver, tags)
    blocking = [v for v in found if v.impact in BLOCKING]
    if blocking:
        listing = "\n".join(str(v) for v in blocking)
        count = f"{len(blocking)} serious/critical accessibility violation(s)"
        raise AssertionError(f"{page_name} ({driver.current_url}): {count}\n{listing}")
    return [v for v in found if v.impact not in BLOCKING]


# What Tab must reach: visible, enabled, not taken out of the tab order. Of a group of radio buttons only one is a
# Tab stop (the arrows move within the group), so a group counts as reached when one of its buttons is.
_CANDIDATES = """
const scope = arguments[0] || document;
const selector = 'a[href], area[href], button, input:not([type=hidden]), select, textarea, summary, iframe, '
  + '[tabindex], [contenteditable=""], [contenteditable=true]';
window.__axeTabIds = window.__axeTabIds || new WeakMap();
window.__axeTabNext = window.__axeTabNext || 1;
window.__axeTabKey = el => {
  if (!window.__axeTabIds.has(el)) window.__axeTabIds.set(el, window.__axeTabNext++);
  const group = el.type === 'radio' && el.name ? 'radio:' + (el.form ? 'f' : '') + el.name : null;
  return group || String(window.__axeTabIds.get(el));
};
window.__axeTabStyle = el => {
  const s = getComputedStyle(el);
  return {outline: s.outlineStyle !== 'none' && parseFloat(s.outlineWidth) > 0 ? s.outlineStyle + ' '
            + s.outlineWidth + ' ' + s.outlineColor : 'none',
          other: [s.boxShadow, s.backgroundColor, s.borderTopColor, s.borderBottomColor, s.borderBottomWidth,
                  s.color, s.textDecorationLine].join('|')};
};
window.__axeTabDescribe = el => {
  const text = (el.getAttribute('aria-label') || el.innerText || el.value || el.name || el.id || '').trim();
  return '<' + el.tagName.toLowerCase() + (el.id ? '#' + el.id : '') + '> ' + text.slice(0, 60);
};
window.__axeTabRest = new WeakMap();
const found = [];
for (const el of scope.querySelectorAll(selector)) {
  if (el.disabled || el.tabIndex < 0 || el.closest('[inert]')) continue;
  // Not rendered, hidden, or inside a closed <details> (content-visibility: hidden): not a Tab stop now.
  if (!el.checkVisibility({visibilityProperty: true, contentVisibilityAuto: true})) continue;
  if (!el.getClientRects().length) continue;
  window.__axeTabRest.set(el, window.__axeTabStyle(el));
  found.push({key: window.__axeTabKey(el), description: window.__axeTabDescribe(el)});
}
return found;
"""

_ACTIVE = """
const el = document.activeElement;
if (!el || el === document.body || el === document.documentElement) return null;
const rest = window.__axeTabRest.get(el);
const now = window.__axeTabStyle(el);
const visible = now.outline !== 'none' || (rest !== undefined && rest.other !== now.other);
return {element: el, key: window.__axeTabKey(el), description: window.__axeTabDescribe(el), visible: visible,
        style: now.outline};
"""


@dataclass(frozen=True)
class Stop:
    """One Tab stop: the focused element and whether its focus is visible."""

    element: WebElement
    description: str
    focus_visible: bool


# Focus a throwaway element at the top of the body (not itself a Tab stop), so that the next Tab goes to the page's
# first Tab stop whatever had the focus (an autofocus field, the last click). Blurring is not enough: Chromium
# goes on from the blurred element.
_TO_TOP = """
if (document.activeElement && document.activeElement !== document.body) document.activeElement.blur();
let start = document.getElementById('axe-tab-start');
if (!start) {
  start = document.createElement('span');
  start.id = 'axe-tab-start';
  start.tabIndex = -1;
  document.body.prepend(start);
}
start.focus();
"""
_DROP_TOP = "const start = document.getElementById('axe-tab-start'); if (start) start.remove();"


def _press_tab(driver: WebDriver) -> dict[str, Any] | None:
    ActionChains(driver).send_keys(Keys.TAB).perform()
    return driver.execute_script(_ACTIVE)


def tab_through(driver: WebDriver, scope: WebElement | None = None) -> list[Stop]:
    """Press Tab from the top of the page until focus leaves it or comes round again, and assert that every
    interactive element (in `scope`, default the whole page) was a Tab stop and that each stop showed a visible
    focus indicator (an outline, or a change of border, background, shadow, colour or underline against the
    element's unfocused style). Returns the stops in order, for the test to check its main action's place."""
    driver.execute_script(_TO_TOP)
    candidates = driver.execute_script(_CANDIDATES, scope)
    expected = {c["key"]: c["description"] for c in candidates}
    stops: list[Stop] = []
    seen: set[str] = set()
    for _ in range(len(candidates) + 10):
        active = _press_tab(driver)
        if active is None or active["key"] in seen:
            break
        seen.add(active["key"])
        stops.append(Stop(active["element"], active["description"], active["visible"]))
    driver.execute_script(_DROP_TOP)
    unreached = [description for key, description in expected.items() if key not in seen]
    unmarked = [stop.description for stop in stops if not stop.focus_visible]
    problems = [f"not reachable by Tab: {d}" for d in unreached] + [f"no visible focus: {d}" for d in unmarked]
    assert not problems, f"{driver.current_url}: keyboard problems\n" + "\n".join(problems)
    return stops


def tab_to(driver: WebDriver, target: WebElement, max_stops: int = 200) -> WebElement:
    """Press Tab from the top of the page until `target` has the focus (asserting it gets there), and return it,
    for the test to press Enter or Space on it: the page's main action done by keyboard alone."""
    driver.execute_script(_TO_TOP)
    for _ in range(max_stops):
        ActionChains(driver).send_keys(Keys.TAB).perform()
        active = driver.switch_to.active_element
        if active == target:
            driver.execute_script(_DROP_TOP)
            return target
    raise AssertionError(f"{driver.current_url}: {target.tag_name}#{target.get_attribute('id')} not reached by Tab")
