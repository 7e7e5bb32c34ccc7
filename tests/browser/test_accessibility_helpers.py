"""The accessibility helpers (tests/support/axe.py) can fail: axe-core finds a serious violation on a page made
to have one, and the keyboard walk finds an element Tab cannot reach (behind a keyboard trap) and a focus nobody
can see. One small page,
no server."""

from __future__ import annotations

from urllib.parse import quote

import pytest
from selenium.webdriver.common.by import By

from tests.support.axe import assert_accessible, locked_version, tab_through, tab_to, violations

pytestmark = [pytest.mark.browser]

GOOD = """<!doctype html><html lang="en"><head><title>Good</title></head><body><main><h1>Good</h1>
<form><label for="q">Query</label><input id="q" name="q"><button type="submit" id="go">Search</button></form>
<a href="#top" id="top">Back to top</a>
<fieldset><legend>Size</legend><label><input type="radio" name="s" value="1" checked> 1</label>
<label><input type="radio" name="s" value="2"> 2</label></fieldset>
<details><summary id="more">More</summary><a href="#m" id="inside">Inside a closed details</a></details>
</main></body></html>"""

BAD = """<!doctype html><html lang="en"><head><title>Bad</title>
<style>#hidden-focus:focus { outline: none; }</style></head><body><main><h1>Bad</h1>
<input id="unlabelled" name="q"><button id="nameless"></button>
<a href="#x" id="hidden-focus">Looks fine</a>
<a href="#y" id="skipped" tabindex="-1">Mouse only</a><div id="clicky" tabindex="0" style="display:none">x</div>
<input id="trap" aria-label="Trap" onkeydown="if (event.key === 'Tab') event.preventDefault()">
<a href="#z" id="after">After the trap</a>
</main></body></html>"""


def _open(browser, html: str) -> None:  # type: ignore[no-untyped-def]
    browser.get("data:text/html;charset=utf-8," + quote(html))


def test_a_good_page_passes_and_tab_reaches_everything(browser) -> None:  # type: ignore[no-untyped-def]
    _open(browser, GOOD)
    assert assert_accessible(browser, "good page") == []
    assert browser.execute_script("return axe.version") == locked_version()
    stops = tab_through(browser)
    assert [stop.element.get_attribute("id") or stop.element.get_attribute("value") for stop in stops] == [
        "q",
        "go",
        "top",
        "1",  # one Tab stop for the radio group
        "more",  # and not the link inside the closed <details>
    ]
    assert tab_to(browser, browser.find_element(By.ID, "go")) == browser.switch_to.active_element


def test_a_bad_page_fails_with_the_rules_and_selectors(browser) -> None:  # type: ignore[no-untyped-def]
    _open(browser, BAD)
    with pytest.raises(AssertionError) as failure:
        assert_accessible(browser, "bad page")
    message = str(failure.value)
    assert "bad page" in message
    for rule, target in (("label", "#unlabelled"), ("button-name", "#nameless")):
        assert f"- {rule} (critical)" in message and f"at {target}" in message
        assert f"dequeuniversity.com/rules/axe/{locked_version().rsplit('.', 1)[0]}/{rule}" in message
    assert {v.rule for v in violations(browser)} >= {"label", "button-name"}

    with pytest.raises(AssertionError) as failure:
        tab_through(browser)
    message = str(failure.value)
    assert "not reachable by Tab: <a#skipped> Mouse only" not in message  # tabindex=-1: taken out on purpose
    assert "no visible focus: <a#hidden-focus> Looks fine" in message
    assert "not reachable by Tab: <a#after> After the trap" in message  # the keyboard trap keeps it out
    assert "<div#clicky>" not in message  # not displayed
