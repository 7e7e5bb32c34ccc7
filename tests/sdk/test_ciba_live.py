"""Acceptance: the published `authsec-sdk` 4.7.3 `CIBAClient`, unmodified, in its own virtualenv, against our live
server. Its base URL is the tenant's issuer with the CIBA client's credentials in it (``requests`` sends them as
HTTP Basic). The SDK initiates for a user, the user approves or denies on our approval page in Chromium after a
second factor (a real TOTP code), and the SDK's poll returns what the user decided; an expiry, TOTP sign-in through
the SDK, respond with a TOTP token, the MFA look-ups, another tenant's client and bad input too."""

from __future__ import annotations

import datetime as dt
import json
import os
import queue
import secrets
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from django.utils import timezone
from django_otp.oath import TOTP
from django_tenants.utils import schema_context
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions
from selenium.webdriver.support.ui import WebDriverWait

from accounts import services as account_services
from accounts.models import User
from approvals.models import ApprovalRequest
from audit.models import AuditEvent
from oauth.models import Client
from scripts.sdk_venv import ensure as sdk_python
from tests.browser.conftest import _chromium, browser, wait_until_gone  # noqa: F401 - the fixtures
from tests.support.live import ROOT, LiveServer
from tests.support.mcp import Committed, commit_in_acme
from tests.support.oauth import PASSWORD

pytestmark = [pytest.mark.browser, pytest.mark.django_db]
SCRIPT = Path(__file__).with_name("ciba_sdk_client.py")


@dataclass
class Setup:
    server: str
    client_id: str
    secret: str
    globex_client_id: str
    globex_secret: str
    keys: dict[str, str]  # email -> TOTP key (hex)

    def base(self, tenant: str = "acme", credentials: tuple[str, str] | None = None) -> str:
        client_id, secret = credentials or (self.client_id, self.secret)
        host = self.server.removeprefix("http://")
        return f"http://{client_id}:{secret}@{host}/t/{tenant}/oauth"


def _totp_code(key_hex: str, step_offset: int = 0) -> str:
    """The user's authenticator-app code, `step_offset` 30-second steps ahead (the device accepts one step of
    drift, so a test can use a second code within the same period: a code is never accepted twice)."""
    totp = TOTP(bytes.fromhex(key_hex))
    totp.time = time.time() + 30 * step_offset
    return f"{totp.token():06d}"


@pytest.fixture(scope="module")
def setup(asgi_server: LiveServer, committed: Committed, django_db_blocker) -> Iterator[Setup]:  # type: ignore[no-untyped-def]
    """A CIBA client in acme and one in globex, and TOTP factors for alice and bob (committed)."""
    secret, globex_secret = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
    keys = {email: secrets.token_hex(20) for email in ("alice@acme.test", "bob@acme.test")}
    step = int(time.time() // 30)

    def make_client(name: str, client_secret: str) -> Client:
        return Client.objects.create(
            name=name,
            client_type=Client.CLIENT_CONFIDENTIAL,
            authorization_grant_type=Client.GRANT_CLIENT_CREDENTIALS,
            client_secret=client_secret,
            is_ciba_client=True,
        )

    with django_db_blocker.unblock():
        with schema_context("tenant_acme"):
            client = make_client("Voice agent", secret)
            for email, key in keys.items():
                user = User.objects.get(email=email)
                account_services.enroll_totp(actor="tests", user=user, key_hex=key, last_t=step - 2)
        with schema_context("tenant_globex"):
            theirs = make_client("Globex voice agent", globex_secret)
    yield Setup(asgi_server.url, client.client_id, secret, theirs.client_id, globex_secret, keys)
    with django_db_blocker.unblock():
        with schema_context("tenant_acme"):
            ApprovalRequest.objects.all().delete()
            Client.objects.filter(pk=client.pk).delete()
            for email in keys:
                account_services.remove_totp(actor="tests", user=User.objects.get(email=email))
        with schema_context("tenant_globex"):
            Client.objects.filter(pk=theirs.pk).delete()


class SdkProcess:
    """The SDK's virtualenv running `ciba_sdk_client.py --serve`: this module's calls one after another in one
    process, each with a new `CIBAClient` (importing the SDK takes about a second of CPU per process)."""

    RESULT = "\x1eRESULT "  # ciba_sdk_client.RESULT (that module imports the SDK, which only its venv has)

    def __init__(self) -> None:
        self.proc: subprocess.Popen | None = None
        self.lines: queue.Queue[str | None] = queue.Queue()

    def _start(self) -> subprocess.Popen:
        proc = subprocess.Popen(
            [str(sdk_python()), str(SCRIPT), "--serve"],
            cwd=ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        lines: queue.Queue[str | None] = queue.Queue()

        def read() -> None:
            for line in proc.stdout:  # type: ignore[union-attr]
                lines.put(line)
            lines.put(None)

        threading.Thread(target=read, daemon=True).start()
        self.lines = lines
        return proc

    def call(self, command: str, timeout: float = 180) -> Any:
        if self.proc is None or self.proc.poll() is not None:
            self.proc = self._start()
        assert self.proc.stdin is not None
        self.proc.stdin.write(command + "\n")
        self.proc.stdin.flush()
        output: list[str] = []  # the SDK's own lines, for a failure message
        deadline = time.monotonic() + timeout
        while True:
            try:
                line = self.lines.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                pytest.fail(f"no answer from the SDK in {timeout} s to {command}:\n{''.join(output)}")
            if line is None:
                pytest.fail(f"the SDK process exited on {command}:\n{''.join(output)}")
            if line.startswith(self.RESULT):
                break
            output.append(line)
        answer = json.loads(line[len(self.RESULT) :])
        assert "error" not in answer, answer.get("error", "") + "".join(output)
        return answer["result"]

    def close(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.stdin.close()  # type: ignore[union-attr]  # the serve loop ends at end of input
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None


_SDK = SdkProcess()


@pytest.fixture(scope="module", autouse=True)
def _sdk_process() -> Iterator[None]:
    """Stops this module's SDK process after its last test."""
    yield
    _SDK.close()


def sdk(
    base_url: str, client_id: str | None, op: str, *args: Any, env: dict[str, str] | None = None, **kwargs: Any
) -> Any:
    """One CIBAClient call in the SDK's virtualenv (with `env` added to its environment: then in a process of its
    own); its return value."""
    command = json.dumps({"base_url": base_url, "client_id": client_id, "op": op, "args": args, "kwargs": kwargs})
    if not env:
        return _SDK.call(command)
    done = subprocess.run(
        [str(sdk_python()), str(SCRIPT), command],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
        env={**os.environ, **(env or {})},
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def sdk_background(base_url: str, client_id: str, op: str, *args: Any, **kwargs: Any) -> subprocess.Popen:
    command = json.dumps({"base_url": base_url, "client_id": client_id, "op": op, "args": args, "kwargs": kwargs})
    return subprocess.Popen(
        [str(sdk_python()), str(SCRIPT), command], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def finished(proc: subprocess.Popen) -> Any:
    out, err = proc.communicate(timeout=180)
    assert proc.returncode == 0, err
    return json.loads(out.strip().splitlines()[-1])


def answer_in_browser(  # type: ignore[no-untyped-def]
    browser,  # noqa: F811 - a driver, not the fixture
    approval_url: str,
    email: str,
    code: str,
    approve: bool,
    screenshot: Path | None = None,
) -> None:
    """Open the request's approval page, sign in, answer; the page asks for the second factor first (a real TOTP
    code), then the user answers again on the page it returns to."""
    request_id = approval_url.rstrip("/").rsplit("/", 1)[-1]
    button_id = f"{'approve' if approve else 'deny'}-{request_id}"
    browser.get(approval_url)
    WebDriverWait(browser, 15).until(expected_conditions.presence_of_element_located((By.ID, "sign-in")))
    browser.find_element(By.NAME, "username").send_keys(email)
    browser.find_element(By.NAME, "password").send_keys(PASSWORD)
    browser.find_element(By.ID, "sign-in").click()
    WebDriverWait(browser, 15).until(expected_conditions.element_to_be_clickable((By.ID, button_id)))
    assert browser.find_element(By.CLASS_NAME, "binding-message").text == "Authentication requested via Voice SDK"
    assert browser.find_element(By.CLASS_NAME, "ciba-client").text.startswith("Voice agent (")
    browser.find_element(By.ID, button_id).click()
    WebDriverWait(browser, 15).until(expected_conditions.presence_of_element_located((By.ID, "totp-form")))
    browser.find_element(By.ID, "code").send_keys(code)
    verify = browser.find_element(By.ID, "verify-totp")
    verify.click()
    wait_until_gone(browser, verify)
    WebDriverWait(browser, 15).until(expected_conditions.element_to_be_clickable((By.ID, button_id)))
    button = browser.find_element(By.ID, button_id)
    if screenshot is not None:
        browser.set_window_size(900, 1000)
        browser.save_screenshot(str(screenshot))
    button.click()
    wait_until_gone(browser, button)
    if screenshot is not None:
        browser.save_screenshot(str(screenshot.with_name(screenshot.stem + "-answered.png")))
    expected = "approved" if approve else "denied"
    WebDriverWait(browser, 15).until(lambda b: b.find_element(By.ID, "status").text in (expected, "used"))


def _claims(token: str) -> dict[str, Any]:
    import base64

    payload = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))


def _request(auth_req_id: str, django_db_blocker) -> ApprovalRequest:  # type: ignore[no-untyped-def]
    with django_db_blocker.unblock(), schema_context("tenant_acme"):
        return ApprovalRequest.objects.select_related("caller").get(pk=auth_req_id)


# --- The SDK initiates, the user answers on the approval page in Chromium ----------------------------------------


def test_sdk_initiates_alice_approves_in_chromium_and_the_poll_returns_approved(  # type: ignore[no-untyped-def]
    browser,  # noqa: F811
    setup: Setup,
    django_db_blocker,
    tmp_path: Path,
) -> None:
    started = sdk(setup.base(), setup.client_id, "initiate_app_approval", "alice@acme.test")
    assert started["success"] is True and started["interval"] == 5, started
    auth_req_id = started["auth_req_id"]
    assert started["approval_url"] == f"{setup.server}/t/acme/approvals/{auth_req_id}/"
    polling = sdk_background(
        setup.base(), setup.client_id, "poll_for_approval", "alice@acme.test", auth_req_id, interval=5, timeout=120
    )

    # AUTHSEC_TEST_ARTIFACTS=docs/img keeps the screenshots that docs/ciba.md shows.
    artifacts = Path(os.environ.get("AUTHSEC_TEST_ARTIFACTS") or tmp_path)
    artifacts.mkdir(parents=True, exist_ok=True)
    answer_in_browser(
        browser,
        started["approval_url"],
        "alice@acme.test",
        _totp_code(setup.keys["alice@acme.test"]),
        True,
        screenshot=artifacts / "ciba-approval.png",
    )

    result = finished(polling)
    assert result["status"] == "approved", result
    claims = _claims(result["token"])
    alice = _request(auth_req_id, django_db_blocker).caller
    assert claims["iss"] == f"{setup.server}/t/acme/oauth"
    assert claims["sub"] == str(alice.pk) and claims["email"] == "alice@acme.test"
    assert claims["client_id"] == setup.client_id
    assert _request(auth_req_id, django_db_blocker).status == ApprovalRequest.Status.USED
    with django_db_blocker.unblock(), schema_context("tenant_acme"):
        approved = AuditEvent.objects.filter(action="approval.approved", target_id=auth_req_id).get()
        assert approved.actor_id == str(alice.pk)
        assert AuditEvent.objects.filter(action="oauth.ciba_token_issued", data__auth_req_id=auth_req_id).exists()


def test_sdk_poll_returns_access_denied_when_bob_denies_in_chromium(  # type: ignore[no-untyped-def]
    browser,  # noqa: F811
    setup: Setup,
) -> None:
    started = sdk(setup.base(), setup.client_id, "initiate_app_approval", "bob@acme.test")
    polling = sdk_background(
        setup.base(),
        setup.client_id,
        "poll_for_approval",
        "bob@acme.test",
        started["auth_req_id"],
        interval=5,
        timeout=120,
    )

    answer_in_browser(browser, started["approval_url"], "bob@acme.test", _totp_code(setup.keys["bob@acme.test"]), False)

    assert finished(polling) == {"status": "access_denied"}


def test_sdk_poll_returns_expired_token_after_the_request_expires(setup: Setup) -> None:
    started = sdk(setup.base(), setup.client_id, "initiate_app_approval", "carol@acme.test")
    auth_req_id = started["auth_req_id"]
    assert sdk(
        setup.base(), setup.client_id, "poll_for_approval", "carol@acme.test", auth_req_id, interval=1, timeout=1
    ) == {"status": "timeout"}
    past = timezone.now() - dt.timedelta(seconds=1)
    commit_in_acme(lambda: ApprovalRequest.objects.filter(pk=auth_req_id).update(expires_at=past))
    result = sdk(
        setup.base(), setup.client_id, "poll_for_approval", "carol@acme.test", auth_req_id, interval=1, timeout=30
    )
    assert result == {"status": "expired_token"}


# --- TOTP sign-in and respond through the SDK ----------------------------------------------------------------------


def test_sdk_totp_login_with_a_real_code_and_respond_with_its_token(setup: Setup) -> None:
    key = setup.keys["alice@acme.test"]
    wrong = "000000" if _totp_code(key, 1) != "000000" else "111111"
    assert sdk(setup.base(), setup.client_id, "verify_totp", "alice@acme.test", wrong) == {
        "success": False,
        "error": "invalid_code",
        "remaining": 2,
    }
    time.sleep(2)  # django-otp throttles the next check for a moment after a failure
    signed_in = sdk(setup.base(), setup.client_id, "verify_totp", "alice@acme.test", _totp_code(key, 1))
    assert signed_in["success"] is True and signed_in["remaining"] == 3, signed_in
    assert _claims(signed_in["token"])["amr"] == ["otp"]

    # respond: a CIBAClient whose base URL carries no client credentials (requests would send Basic instead).
    plain_base = f"{setup.server}/t/acme/oauth"
    started = sdk(setup.base(), setup.client_id, "initiate_app_approval", "alice@acme.test")
    responded = sdk(plain_base, setup.client_id, "respond_to_request", signed_in["token"], started["auth_req_id"])
    assert responded == {"success": True, "auth_req_id": started["auth_req_id"], "status": "approved"}
    polled = sdk(
        setup.base(),
        setup.client_id,
        "poll_for_approval",
        "alice@acme.test",
        started["auth_req_id"],
        interval=1,
        timeout=1,
    )
    assert polled["status"] == "approved"
    listed = sdk(plain_base, setup.client_id, "list_pending_requests", signed_in["token"])
    assert listed["success"] is True and started["auth_req_id"] not in {r["auth_req_id"] for r in listed["requests"]}


def test_sdk_mfa_status_lookups(setup: Setup) -> None:
    by_client = sdk(setup.base(), setup.client_id, "get_end_user_mfa_status_by_client", "alice@acme.test")
    assert by_client["methods"] == ["totp"] and by_client["workspace_id"] == "acme"
    by_workspace = sdk(setup.base(), setup.client_id, "get_end_user_mfa_status", "carol@acme.test", workspace_id="acme")
    assert by_workspace["success"] is True and by_workspace["methods"] == []


def test_sdk_sends_the_client_credentials_from_a_netrc_file(setup: Setup, tmp_path: Path) -> None:
    """The other documented way to authenticate the client: a netrc entry for the host, and a plain base URL."""
    netrc = tmp_path / "netrc"
    netrc.write_text(f"machine 127.0.0.1 login {setup.client_id} password {setup.secret}\n")
    netrc.chmod(0o600)
    plain_base = f"{setup.server}/t/acme/oauth"
    found = sdk(
        plain_base, setup.client_id, "get_end_user_mfa_status_by_client", "alice@acme.test", env={"NETRC": str(netrc)}
    )
    assert found["success"] is True and found["methods"] == ["totp"]


# --- Other tenants and bad input -----------------------------------------------------------------------------------


def test_sdk_with_another_tenants_client_is_refused(setup: Setup) -> None:
    globex = (setup.globex_client_id, setup.globex_secret)
    theirs_here = sdk(setup.base("acme", globex), setup.globex_client_id, "initiate_app_approval", "alice@acme.test")
    assert theirs_here["success"] is False and theirs_here["error"] == "invalid_client"
    ours_there = sdk(setup.base("globex"), setup.client_id, "initiate_app_approval", "erin@globex.test")
    assert ours_there["error"] == "invalid_client"
    assert sdk(setup.base("globex"), setup.client_id, "verify_totp", "alice@acme.test", "123456")["success"] is False


def test_sdk_bad_input_gets_clear_errors(setup: Setup) -> None:
    unknown = sdk(setup.base(), setup.client_id, "initiate_app_approval", "nobody@acme.test")
    assert unknown["error"] == "unknown_user_id" and unknown["success"] is False
    no_secret = sdk(f"{setup.server}/t/acme/oauth", setup.client_id, "initiate_app_approval", "alice@acme.test")
    assert no_secret["error"] == "invalid_client" and "base URL" in no_secret["error_description"]
    admin_flow = sdk(setup.base(), None, "initiate_app_approval", "alice@acme.test")
    assert admin_flow["error"] == "invalid_request" and "client_id" in admin_flow["error_description"]
    device = sdk(setup.base(), setup.client_id, "register_device", "jwt", "device-token")
    assert "approval page" in device["error_description"]
    # A poll of an id that is not ours keeps the SDK polling (it stops only on access_denied / expired_token).
    assert sdk(
        setup.base(), setup.client_id, "poll_for_approval", "alice@acme.test", "nope", interval=1, timeout=1
    ) == {"status": "timeout"}
