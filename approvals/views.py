"""The approval pages: the queue of requests the signed-in user may answer, one request's page, and the POST that
approves or denies it (CSRF-protected, and only with a second factor verified in the last five minutes).

A request is shown to its caller and to whoever may answer it; to anyone else it does not exist (404), and a
request of another tenant is never found (each tenant's requests live in its own schema).
"""

from __future__ import annotations

import uuid

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST

from accounts import mfa
from approvals import services
from approvals.models import ApprovalRequest

FRESH_FACTOR_SECONDS = 300


def _visible(request: HttpRequest, pk: uuid.UUID) -> ApprovalRequest:
    found = services.get_request(pk)
    if found is None:
        raise Http404("No such approval request.")
    user = request.user
    if found.caller_id == user.pk or services.can_decide(found, user) or found.decisions.filter(approver=user).exists():
        return found
    if found.mode != ApprovalRequest.Mode.SELF and services.holds_role(user, found.approver_role):
        return found  # an approver who can no longer answer it (decided, expired) may still look
    raise Http404("No such approval request.")


@login_required
def approval_list(request: HttpRequest) -> HttpResponse:
    """The pending requests the signed-in user may answer, oldest first."""
    pending = services.pending_for(request.user)
    return render(
        request,
        "approvals/approval_list.html",
        {"pending": pending, "fresh_factor": mfa.verified_recently(request, within=FRESH_FACTOR_SECONDS)},
    )


@login_required
def approval_detail(request: HttpRequest, pk: uuid.UUID) -> HttpResponse:
    """One request: what is asked, by whom, its state and who answered; the buttons when the user may answer."""
    found = _visible(request, pk)
    return render(
        request,
        "approvals/approval_detail.html",
        {
            "item": found,
            "can_decide": services.can_decide(found, request.user),
            "is_caller": found.caller_id == request.user.pk,
            "fresh_factor": mfa.verified_recently(request, within=FRESH_FACTOR_SECONDS),
            "decisions": list(found.decisions.select_related("approver")),
        },
    )


@require_POST
@login_required
def approval_decide(request: HttpRequest, pk: uuid.UUID) -> HttpResponse:
    """Approve (``decision=approve``) or deny (``decision=deny``) a request; asks for a fresh second factor first."""
    found = _visible(request, pk)
    detail = reverse("approvals:detail", args=[found.pk])
    choice = request.POST.get("decision")
    if choice not in ("approve", "deny"):
        return HttpResponse("Choose approve or deny.", status=400, content_type="text/plain")
    if not mfa.verified_recently(request, within=FRESH_FACTOR_SECONDS):
        messages.info(request, "Confirm it is you with your second factor, then answer the request again.")
        return redirect(mfa.step_up_url(request, detail))
    try:
        services.decide(found, request.user, choice == "approve")
    except services.ApprovalError as exc:
        messages.error(request, str(exc))
        return render(
            request,
            "approvals/approval_detail.html",
            {
                "item": services.get_request(found.pk),
                "can_decide": False,
                "is_caller": found.caller_id == request.user.pk,
                "fresh_factor": True,
                "decisions": list(found.decisions.select_related("approver")),
                "refused": str(exc),
            },
            status=409 if exc.code in ("expired", "not_pending", "already_decided") else 403,
        )
    messages.success(request, "Approved." if choice == "approve" else "Denied.")
    return redirect(detail)
