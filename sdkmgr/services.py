"""Writes behind the SDK's CIBA endpoints (`sdkmgr.ciba`): a backchannel request is an approval request of
`approvals` (kind ``ciba``, mode ``self``), and its token is minted by the tenant's issuer (`oauth.services`).
Each step's audit event is written by the service it calls (``approval.requested``, ``approval.used``,
``oauth.ciba_token_issued``)."""

from __future__ import annotations

from typing import Any

from approvals import services as approvals
from approvals.models import ApprovalRequest
from audit.models import AuditEvent
from audit.recorder import Actor
from audit.writes import service
from oauth import services as oauth_services
from oauth.models import Client


def client_actor(client: Client) -> Actor:
    return Actor(AuditEvent.ActorType.CLIENT, client.client_id, client.name)


@service
def start_backchannel_request(
    *, client: Client, user: Any, binding_message: str, scope: str, expires_in: int
) -> ApprovalRequest:
    """A pending CIBA request for `user`, who alone may approve it (mode ``self``), on the approval page."""
    return approvals.request_approval.nested(
        caller=user,
        mode=ApprovalRequest.Mode.SELF,
        kind=ApprovalRequest.Kind.CIBA,
        binding_message=binding_message,
        scope=scope,
        client_id=client.client_id,
        expires_in=expires_in,
        extra={"client_name": client.name},
        actor=client_actor(client),
    )


@service
def redeem_backchannel_request(*, client: Client, request: ApprovalRequest) -> dict[str, Any] | None:
    """Exchange an approved CIBA request for a token, once: the approval is used in the same transaction that
    issues the token. None when nothing is left to exchange (another poll won, or the user was deactivated)."""
    user = request.caller
    if not user.is_active:
        return None
    used = approvals.consume.nested(
        caller=user, request_id=request.id, used_by=f"ciba:{client.client_id}", actor=client_actor(client)
    )
    if used is None or used.kind != ApprovalRequest.Kind.CIBA or used.client_id != client.client_id:
        return None
    return oauth_services.issue_backchannel_token.nested(
        client=client, user=user, scopes=(used.scope or "openid").split(), grant="ciba", amr=["mfa"],
        auth_req_id=str(used.id),
    )  # fmt: skip


@service
def issue_totp_token(*, client: Client, user: Any) -> dict[str, Any]:
    """A token for `user` right after a valid TOTP code (`amr` otp, `auth_time` now)."""
    return oauth_services.issue_backchannel_token.nested(
        client=client, user=user, scopes=["openid"], grant="totp", amr=["otp"]
    )
