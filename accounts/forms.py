"""Sign-in forms with throttling per account and per IP (used by the tenant login page and the dashboards)."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib.admin.forms import AdminAuthenticationForm
from django.contrib.auth.forms import AuthenticationForm

from accounts import throttle
from authsec_site.lib import metrics
from authsec_site.lib.client_ip import request_ip


class ThrottledLoginMixin:
    """Refuses sign-in while the account or the client IP is locked out, and counts failures."""

    def clean(self) -> dict[str, Any]:
        email = (self.data.get("username") or "").strip().lower()  # type: ignore[attr-defined]
        request = self.request  # type: ignore[attr-defined]
        ip = request_ip(request) if request is not None else None
        lockout = throttle.check(email, ip)
        if lockout.locked:
            metrics.throttled("login")
            raise forms.ValidationError(lockout.message, code="locked")
        try:
            data = super().clean()  # type: ignore[misc]
        except forms.ValidationError:
            throttle.record_failure(email, ip)
            raise
        throttle.clear(email)
        return data


class LoginForm(ThrottledLoginMixin, AuthenticationForm):
    username = forms.EmailField(
        label="Email", widget=forms.EmailInput(attrs={"autofocus": True, "autocomplete": "email"})
    )


class AdminLoginForm(ThrottledLoginMixin, AdminAuthenticationForm):
    pass
