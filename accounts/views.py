"""The tenant's browser sign-in pages: login (throttled per account and IP, audited), logout, and the home page."""

from __future__ import annotations

from typing import Any

from django.contrib.auth import views as auth_views
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse

from accounts.forms import LoginForm
from accounts.signals import login_page_context


class LoginView(auth_views.LoginView):
    """Email + password sign-in for a tenant's users (throttled per account and IP, audited)."""

    template_name = "accounts/login.html"
    form_class = LoginForm
    redirect_authenticated_user = True

    def get_default_redirect_url(self) -> str:
        # Without `next`, land on this tenant's home (LOGIN_REDIRECT_URL cannot name a tenant URL).
        return reverse("tenant-home")

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        # Higher layers add their ways to sign in (oauth: "Sign in with <name>" buttons, which carry `next` along).
        context = super().get_context_data(**kwargs)
        for _receiver, extra in login_page_context.send(sender=type(self), request=self.request):
            context.update(extra or {})
        return context


class LogoutView(auth_views.LogoutView):
    """POST signs out; GET asks for confirmation (a link must not be able to sign anyone out)."""

    template_name = "accounts/logged_out.html"
    http_method_names = ["get", "post", "options"]

    def get(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if not request.user.is_authenticated:
            return render(request, "accounts/logged_out.html")
        return render(request, "accounts/home.html")


def tenant_home(request: HttpRequest) -> HttpResponse:
    """Staff go to the dashboard; signed-in users see who they are; others are asked to sign in."""
    if request.user.is_authenticated and request.user.is_staff:
        return redirect("admin:index")
    if request.user.is_authenticated:
        return render(request, "accounts/home.html")
    return redirect("accounts-login")
