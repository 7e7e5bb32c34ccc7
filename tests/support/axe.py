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


# The keyboard walk. One script defines the page-side helpers (idempotent), then Tab is pressed many times in ONE
# WebDriver action (a round trip per key would cost seconds on a long page) while a `focusin` listener logs every
# element that gets the focus, with its style at that moment; the log is read afterwards.
_PRELUDE = """
if (!window.__axeTab) {
  const ids = new WeakMap();
  let next = 1;
  const tab = window.__axeTab = {log: null, rest: new WeakMap()};
  // Of a group of radio buttons only one is a Tab stop (the arrows move within it): the group is one key.
  tab.key = el => {
    if (!ids.has(el)) ids.set(el, next++);
    return el.type === 'radio' && el.name ? 'radio:' + el.name : String(ids.get(el));
  };
  tab.style = el => {
    const s = getComputedStyle(el);
    return {outline: s.outlineStyle !== 'none' && parseFloat(s.outlineWidth) > 0,
            other: [s.boxShadow, s.backgroundColor, s.borderTopColor, s.borderBottomColor, s.borderBottomWidth,
                    s.color, s.textDecorationLine].join('|')};
  };
  tab.describe = el => {
    const text = (el.getAttribute('aria-label') || el.innerText || el.value || el.name || el.id || '').trim();
    return '<' + el.tagName.toLowerCase() + (el.id ? '#' + el.id : '') + '> ' + text.slice(0, 60);
  };
  document.addEventListener('focusin', event => {
    // The start element's own focus event may come late (when the window gets the focus with the first key).
    if (!tab.log || event.target.id === 'axe-tab-start') return;
    const el = event.target, rest = tab.rest.get(el), now = tab.style(el);
    tab.log.push({element: el, key: tab.key(el), description: tab.describe(el),
                  visible: now.outline || (rest !== undefined && rest.other !== now.other)});
  }, true);
}
"""

# Focus a throwaway element at the top of the body (not itself a Tab stop), so that the next Tab goes to the page's
# first Tab stop whatever had the focus (an autofocus field, the last click): blurring is not enough, Chromium
# goes on from the blurred element. Then start logging.
_TO_TOP = (
    _PRELUDE
    + """
if (document.activeElement && document.activeElement !== document.body) document.activeElement.blur();
let start = document.getElementById('axe-tab-start');
if (!start) {
  start = document.createElement('span');
  start.id = 'axe-tab-start';
  start.tabIndex = -1;
  document.body.prepend(start);
}
start.focus();
window.__axeTab.log = [];
"""
)

_READ_LOG = """
const log = window.__axeTab.log;
window.__axeTab.log = null;
const start = document.getElementById('axe-tab-start');
if (start) start.remove();
return log;
"""

# What Tab must reach: visible, enabled, not taken out of the tab order; noted with its unfocused style.
_CANDIDATES = """
const tab = window.__axeTab, scope = arguments[0] || document;
const selector = 'a[href], area[href], button, input:not([type=hidden]), select, textarea, summary, iframe, '
  + '[tabindex], [contenteditable=""], [contenteditable=true]';
const found = [];
for (const el of scope.querySelectorAll(selector)) {
  if (el.disabled || el.tabIndex < 0 || el.closest('[inert]') || el.id === 'axe-tab-start') continue;
  // Not rendered, hidden, or inside a closed <details> (content-visibility: hidden): not a Tab stop now.
  if (!el.checkVisibility({visibilityProperty: true, contentVisibilityAuto: true})) continue;
  if (!el.getClientRects().length) continue;
  tab.rest.set(el, tab.style(el));
  found.push({key: tab.key(el), description: tab.describe(el)});
}
return found;
"""


@dataclass(frozen=True)
class Stop:
    """One Tab stop: the focused element and whether its focus is visible."""

    element: WebElement
    key: str
    description: str
    focus_visible: bool


def _walk(driver: WebDriver, presses: int) -> list[Stop]:
    """From the top of the page, press Tab `presses` times; the distinct stops in order, up to the first repeat
    (focus came round again) or the end of the presses."""
    ActionChains(driver).send_keys(*([Keys.TAB] * presses)).perform()
    stops: list[Stop] = []
    seen: set[str] = set()
    for entry in driver.execute_script(_READ_LOG) or []:
        if entry["key"] in seen:
            break
        seen.add(entry["key"])
        stops.append(Stop(entry["element"], entry["key"], entry["description"], entry["visible"]))
    return stops


def tab_through(driver: WebDriver, scope: WebElement | None = None) -> list[Stop]:
    """Press Tab from the top of the page until focus has come round, and assert that every interactive element
    (in `scope`, default the whole page) was a Tab stop and that each stop showed a visible focus indicator (an
    outline, or a change of border, background, shadow, colour or underline against the element's unfocused
    style). Returns the stops in order."""
    driver.execute_script(_TO_TOP)
    candidates = driver.execute_script(_CANDIDATES, scope)
    stops = _walk(driver, len(candidates) + 10)
    reached = {stop.key for stop in stops}
    unreached = [c["description"] for c in candidates if c["key"] not in reached]
    unmarked = [stop.description for stop in stops if not stop.focus_visible]
    problems = [f"not reachable by Tab: {d}" for d in unreached] + [f"no visible focus: {d}" for d in unmarked]
    assert not problems, f"{driver.current_url}: keyboard problems\n" + "\n".join(problems)
    return stops


def tab_to(driver: WebDriver, target: WebElement) -> WebElement:
    """Press Tab from the top of the page until `target` has the focus (asserting it gets there), and return it,
    for the test to press Enter or Space on it: the page's main action done by keyboard alone."""
    driver.execute_script(_TO_TOP)
    candidates = driver.execute_script(_CANDIDATES, None)
    stops = _walk(driver, len(candidates) + 10)
    where = [i for i, stop in enumerate(stops) if stop.element == target]
    assert where, f"{driver.current_url}: {target.tag_name}#{target.get_attribute('id')} not reached by Tab"
    driver.execute_script(_TO_TOP)
    ActionChains(driver).send_keys(*([Keys.TAB] * (where[0] + 1))).perform()
    driver.execute_script(_READ_LOG)
    assert driver.switch_to.active_element == target, f"{driver.current_url}: Tab order changed under the test"
    return target
