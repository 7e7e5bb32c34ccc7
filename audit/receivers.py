"""Audit receivers for Django's authentication signals (logins to the dashboards)."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.signals import user_logged_in, user_logged_out, user_login_failed
from django.dispatch import receiver

from audit import record
from audit.models import AuditEvent
from audit.recorder import Actor
from authsec_site.lib import metrics


@receiver(user_logged_in, dispatch_uid="audit_user_logged_in")
def _logged_in(sender: Any, request: Any, user: Any, **kwargs: Any) -> None:
    record(user, "auth.login_succeeded", target=user, request=request, data={"via": _via(request)})
    metrics.login(True)


@receiver(user_logged_out, dispatch_uid="audit_user_logged_out")
def _logged_out(sender: Any, request: Any, user: Any, **kwargs: Any) -> None:
    if user is not None:
        record(user, "auth.logged_out", target=user, request=request, data={"via": _via(request)})


@receiver(user_login_failed, dispatch_uid="audit_user_login_failed")
def _login_failed(sender: Any, credentials: dict[str, Any], request: Any = None, **kwargs: Any) -> None:
    """Every failed sign-in, the dashboard's and an upstream provider's (which also sends `via`, `target`,
    `reason` and `detail`)."""
    # Only the identifier typed is kept; Django already masks the password, and we never copy it.
    email = str(credentials.get("username") or credentials.get("email") or "")[:255]
    data = {"email": email, "via": kwargs.get("via") or _via(request)}
    data.update({key: kwargs[key] for key in ("reason", "detail") if key in kwargs})
    record(
        Actor(AuditEvent.ActorType.ANONYMOUS, "", email or "anonymous"),
        "auth.login_failed",
        outcome=AuditEvent.Outcome.FAILURE,
        target=kwargs.get("target"),
        request=request,
        data=data,
    )
    metrics.login(False)


def _via(request: Any) -> str:
    """How the sign-in happened: an explicit `request.auth_via` (e.g. "upstream:<slug>"), else the page's path."""
    return getattr(request, "auth_via", "") or getattr(request, "path", "") or ""
