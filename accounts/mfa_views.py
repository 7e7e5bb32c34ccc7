"""The second-factor pages of a tenant: the self-service security page (/t/<tenant>/account/security/: TOTP with a
QR code, passkeys, recovery codes) and the step-up page (/t/<tenant>/account/verify/) that asks the signed-in
user for a factor and then goes on to `next`. Writes go through `accounts.services` (via `accounts.mfa`)."""

from __future__ import annotations

import base64
import secrets
import time
from typing import Any
from urllib.parse import urlencode

import segno
from django.contrib import messages
from django.contrib.auth.views import redirect_to_login
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_POST
from django_otp.oath import TOTP

from accounts import mfa, services
from accounts.models import Passkey
from authsec_site.lib.jsonbody import JSONBodyError, parse_json

_TOTP_PENDING = "accounts.mfa_totp_pending"
_SHOW_CODES = "accounts.mfa_show_codes"
# A change to the factors of a user who has one needs a verification this recent (a stolen session alone cannot
# swap the factors).
CHANGE_WITHIN = 600
_MAX_JSON = 64 * 1024


def _signed_in(request: HttpRequest) -> HttpResponse | None:
    if not request.user.is_authenticated:
        return redirect_to_login(request.get_full_path(), reverse("accounts-login"))
    return None


def _may_change(request: HttpRequest) -> bool:
    """The first factor needs no step-up; later changes need a recent verification."""
    return not mfa.has_factor(request.user) or mfa.verified_recently(request, within=CHANGE_WITHIN)


def _totp_uri(request: HttpRequest, key_hex: str) -> str:
    tenant = getattr(request, "tenant", None)
    issuer = f"AuthSec {getattr(tenant, 'name', '')}".strip()
    secret = base64.b32encode(bytes.fromhex(key_hex)).decode().rstrip("=")
    label = f"{issuer}:{request.user.email}"
    params = urlencode({"secret": secret, "issuer": issuer, "algorithm": "SHA1", "digits": 6, "period": 30})
    return f"otpauth://totp/{label}?{params}"


def _json_body(request: HttpRequest) -> dict[str, Any] | None:
    """The request's JSON object (the project's one parser and its limits), or None when it is not one."""
    try:
        body = parse_json(request.body or b"{}", max_bytes=_MAX_JSON)
    except JSONBodyError:
        return None
    return body if isinstance(body, dict) else None


def _continue_to(request: HttpRequest) -> str:
    return mfa.safe_next(request, request.POST.get("next") or request.GET.get("next"))


@never_cache
def security(request: HttpRequest) -> HttpResponse:
    """The signed-in user's own second factors: set up TOTP, add or remove passkeys, new recovery codes."""
    if (login := _signed_in(request)) is not None:
        return login
    user = request.user
    next_url = request.POST.get("next") or request.GET.get("next") or ""
    if request.method == "POST":
        action = request.POST.get("action", "")
        if not _may_change(request):
            return redirect(mfa.step_up_url(request, request.get_full_path()))
        if action == "totp_start":
            request.session[_TOTP_PENDING] = {"key": secrets.token_hex(20), "at": time.time()}
        elif action == "totp_confirm":
            return _confirm_totp(request, next_url)
        elif action == "totp_remove":
            services.remove_totp(actor=user, user=user)
            messages.success(request, "The authenticator app was removed.")
        elif action == "passkey_remove":
            chosen = request.POST.get("passkey") or ""
            if not chosen.isdigit():
                return HttpResponse("Choose a passkey.", status=400)
            passkey = Passkey.objects.filter(pk=int(chosen), user=user).first()
            if passkey is not None:
                services.remove_passkey(actor=user, passkey=passkey)
                messages.success(request, "The passkey was removed.")
        elif action == "codes_regenerate":
            request.session[_SHOW_CODES] = services.regenerate_recovery_codes(actor=user, user=user)
        else:
            return HttpResponse("Unknown action.", status=400)
        return redirect(reverse("accounts-security") + (f"?{urlencode({'next': next_url})}" if next_url else ""))
    return render(request, "accounts/security.html", _security_context(request, next_url))


def _security_context(request: HttpRequest, next_url: str) -> dict[str, Any]:
    user = request.user
    pending = request.session.get(_TOTP_PENDING)
    qr_svg = uri = secret = None
    if isinstance(pending, dict) and not mfa.has_totp(user):
        uri = _totp_uri(request, pending["key"])
        secret = base64.b32encode(bytes.fromhex(pending["key"])).decode().rstrip("=")
        qr_svg = segno.make(uri, error="m").svg_inline(scale=4, title="TOTP QR code")
    return {
        "has_totp": mfa.has_totp(user),
        "passkeys": mfa.passkeys_of(user),
        "codes_left": mfa.recovery_codes_left(user),
        "new_codes": request.session.pop(_SHOW_CODES, None),
        "pending_totp": qr_svg is not None,
        "qr_svg": qr_svg,
        "totp_uri": uri,
        "totp_secret": secret,
        "may_change": _may_change(request),
        "required_for_staff": mfa.staff_must_verify(user),
        "has_factor": mfa.has_factor(user),
        "next": mfa.safe_next(request, next_url, default="") if next_url else "",
        "rp_id": mfa.rp_id(request),
    }


def _first_factor_done(request: HttpRequest) -> None:
    """After a user's first factor: hand out recovery codes (shown once) if they have none."""
    if not mfa.recovery_codes_left(request.user):
        request.session[_SHOW_CODES] = services.regenerate_recovery_codes(actor=request.user, user=request.user)


def _confirm_totp(request: HttpRequest, next_url: str) -> HttpResponse:
    pending = request.session.get(_TOTP_PENDING)
    code = (request.POST.get("code") or "").strip()
    if not isinstance(pending, dict) or time.time() - float(pending.get("at", 0)) > 900:
        messages.error(request, "Start the set-up again.")
        request.session.pop(_TOTP_PENDING, None)
        return redirect("accounts-security")
    totp = TOTP(bytes.fromhex(pending["key"]))
    totp.time = time.time()
    if not (code.isdigit() and len(code) == 6 and totp.verify(int(code), tolerance=1)):
        messages.error(request, "That code is not right. Check the time on your device and try again.")
        return render(request, "accounts/security.html", _security_context(request, next_url), status=400)
    services.enroll_totp(actor=request.user, user=request.user, key_hex=pending["key"], last_t=totp.t())
    request.session.pop(_TOTP_PENDING, None)
    _first_factor_done(request)
    mfa.mark_verified(request)
    messages.success(request, "Your authenticator app is set up.")
    target = reverse("accounts-security")
    return redirect(target + (f"?{urlencode({'next': next_url})}" if next_url else ""))


@never_cache
def verify(request: HttpRequest) -> HttpResponse:
    """Step-up: the signed-in user proves a factor (TOTP code, passkey or recovery code), then goes to `next`."""
    if (login := _signed_in(request)) is not None:
        return login
    user = request.user
    next_url = _continue_to(request)
    if request.method == "POST":
        method = request.POST.get("method", "")
        code = request.POST.get("code") or ""
        if method == "totp":
            ok = mfa.verify_totp(user, code)
        elif method == "recovery":
            ok = mfa.verify_recovery_code(user, code)
        else:
            return HttpResponse("Unknown method.", status=400)
        if ok:
            mfa.mark_verified(request)
            return redirect(next_url)
        messages.error(request, "That code was not accepted.")
        status = 400
    else:
        status = 200
    context = {
        "next": next_url,
        "has_totp": mfa.has_totp(user),
        "has_passkeys": any(p.rp_id == mfa.rp_id(request) for p in mfa.passkeys_of(user)),
        "codes_left": mfa.recovery_codes_left(user),
        "has_factor": mfa.has_factor(user),
        "security_url": reverse("accounts-security") + "?" + urlencode({"next": next_url}),
    }
    return render(request, "accounts/mfa_verify.html", context, status=status)


def _json_signed_in(request: HttpRequest) -> JsonResponse | None:
    if not request.user.is_authenticated:
        return JsonResponse({"error": "Sign in first."}, status=401)
    return None


@require_POST
def passkey_register_options(request: HttpRequest) -> JsonResponse:
    if (denied := _json_signed_in(request)) is not None:
        return denied
    if not _may_change(request):
        return JsonResponse({"error": "Verify a second factor first."}, status=403)
    return JsonResponse(mfa.passkey_register_begin(request))


@require_POST
def passkey_register(request: HttpRequest) -> JsonResponse:
    if (denied := _json_signed_in(request)) is not None:
        return denied
    if not _may_change(request):
        return JsonResponse({"error": "Verify a second factor first."}, status=403)
    body = _json_body(request)
    if body is None or not isinstance(body.get("credential"), dict):
        return JsonResponse({"error": "Send {credential, name} as JSON."}, status=400)
    first = not mfa.has_factor(request.user)
    try:
        mfa.passkey_register_complete(request, body["credential"], str(body.get("name") or "Passkey"))
    except mfa.PasskeyError as exc:
        return JsonResponse({"error": str(exc)}, status=400)
    if first:
        _first_factor_done(request)
    mfa.mark_verified(request)
    return JsonResponse({"ok": True, "redirect": reverse("accounts-security")})


@require_POST
def passkey_auth_options(request: HttpRequest) -> JsonResponse:
    if (denied := _json_signed_in(request)) is not None:
        return denied
    return JsonResponse(mfa.passkey_auth_begin(request))


@require_POST
def passkey_auth(request: HttpRequest) -> JsonResponse:
    if (denied := _json_signed_in(request)) is not None:
        return denied
    body = _json_body(request)
    if body is None or not isinstance(body.get("credential"), dict):
        return JsonResponse({"error": "Send {credential, next} as JSON."}, status=400)
    if not mfa.passkey_auth_complete(request, body["credential"]):
        return JsonResponse({"error": "The passkey was not accepted."}, status=400)
    mfa.mark_verified(request)
    next_url = mfa.safe_next(request, str(body.get("next") or ""))
    return JsonResponse({"ok": True, "redirect": next_url})
