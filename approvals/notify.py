"""Telling approvers about a new request: email to each approver, and one signed webhook POST for the tenant.

The dashboard's count needs nothing here (`approvals.context.pending_approvals` reads it). Each channel's outcome
goes into the `approval.notified` event; a failing channel is logged and never blocks the request.
"""

from __future__ import annotations

import json
import logging
import uuid
from typing import Any

from django.conf import settings
from django.core.mail import send_mail

from approvals import services, signing
from approvals.models import ApprovalRequest, ApprovalSettings
from authsec_site.lib import outbound, vault

logger = logging.getLogger(__name__)
WEBHOOK_TYPE = "approval.requested"  # the webhook's `type` (named like the audit event of the same moment)


def approval_url(request: ApprovalRequest) -> str:
    return settings.AUTHSEC_PUBLIC_URL + services.approval_path(request)


def payload(request: ApprovalRequest) -> dict[str, Any]:
    """What the webhook posts: enough for a chat bot to show the request and link to it; never argument values
    the tool's policy hides."""
    return {
        "id": uuid.uuid4().hex,  # this delivery (receivers may refuse one they have seen)
        "type": WEBHOOK_TYPE,
        "tenant": services.tenant_slug(),
        "approval": {
            "id": str(request.id),
            "kind": request.kind,
            "tool": request.tool_name,
            "application": request.application.slug if request.application_id else None,
            "caller": request.caller.email,
            "mode": request.mode,
            "approver_role": request.approver_role,
            "required": request.required_count,
            "arguments": request.display_args if request.args_shown else None,
            "binding_message": request.binding_message,
            "created_at": request.created_at.isoformat(),
            "expires_at": request.expires_at.isoformat(),
            "url": approval_url(request),
        },
    }


def _email(request: ApprovalRequest) -> dict[str, Any]:
    recipients = [user.email for user in services.approvers_of(request) if user.email]
    if not recipients:
        return {"sent": 0}
    what = request.tool_name or request.binding_message or "a request"
    subject = f"Approval needed: {what}"
    body = (
        f"{request.caller.email} asks to run {what}"
        + (f" in {request.application.slug}" if request.application_id else "")
        + f".\n\nApprove or deny before {request.expires_at:%Y-%m-%d %H:%M} UTC:\n{approval_url(request)}\n"
    )
    try:
        sent = send_mail(subject, body, None, recipients, fail_silently=False)
    except Exception as exc:  # noqa: BLE001 - a mail server down must not block the request
        logger.warning("Approval email for %s failed (%s)", request.id, type(exc).__name__)
        return {"sent": 0, "error": type(exc).__name__}
    return {"sent": sent, "recipients": recipients}


def _webhook(request: ApprovalRequest, config: ApprovalSettings) -> dict[str, Any]:
    if not config.webhook_url:
        return {"configured": False}
    try:
        secret = services.webhook_secret()
    except vault.VaultError as exc:
        logger.warning("Approval webhook secret unreadable (%s)", type(exc).__name__)
        return {"configured": True, "error": "secret unavailable"}
    if not secret:
        return {"configured": True, "error": "no secret"}
    body = json.dumps(payload(request), separators=(",", ":")).encode("utf-8")
    headers = {"Content-Type": "application/json", **signing.signed_headers(secret, body)}
    try:
        response = outbound.fetch(config.webhook_url, method="POST", content=body, headers=headers, timeout=5.0)
    except outbound.FetchError as exc:
        logger.warning("Approval webhook for %s failed (%s)", request.id, exc.reason)
        return {"configured": True, "error": exc.reason}
    return {"configured": True, "status": response.status}


def notify_request(request_id: str) -> dict[str, Any]:
    """Send the email and the webhook of one request (in its tenant's schema); recorded as `approval.notified`."""
    request = services.get_request(request_id)
    if request is None or request.notified_at is not None:
        return {}
    config = ApprovalSettings.current()
    channels: dict[str, Any] = {"dashboard": True}
    channels["email"] = _email(request) if config.email_enabled else {"enabled": False}
    channels["webhook"] = _webhook(request, config)
    services.mark_notified(request_id=request.id, channels=channels)
    return channels
