"""A refresh token's single use, in one statement (the token endpoint's rotation, `TenantOAuth2Validator`).

django-oauth-toolkit's rotation (`RefreshToken.revoke()` inside `_save_bearer_token`) locks and reads the refresh
token twice, reads and locks its access token, and deletes that through Django's collector: 9 statements. Here one
statement does the same work: it marks the refresh token used (``revoked``) only if nobody has yet (``WHERE revoked
IS NULL``: of two racing rotations exactly one changes the row, the other changes nothing and is a reuse), clears its
pointer to its access token and deletes that access token. The row lock the UPDATE takes is held until the token
transaction commits, so a concurrent rotation waits for this one and then finds the row used. Locks are taken in
DOT's order (refresh token, then access token), so a concurrent family revocation cannot deadlock with it.

The deleted access token is announced with Django's `post_delete`, as a collector delete would: the MCP endpoint's
offline token check learns from it that the token is dead (`mcp_endpoint.signals`).
"""

from __future__ import annotations

import datetime as dt

from django.db import connections, router
from django.db.models.signals import post_delete
from oauth2_provider.models import get_access_token_model, get_refresh_token_model

AccessToken = get_access_token_model()
RefreshToken = get_refresh_token_model()


def _sql(using: str) -> str:
    quote = connections[using].ops.quote_name
    rt, at = RefreshToken._meta, AccessToken._meta

    def column(meta: object, name: str) -> str:
        return quote(meta.get_field(name).column)  # type: ignore[attr-defined]

    rt_pk, at_pk = column(rt, rt.pk.name), column(at, at.pk.name)
    # Identifiers only from the models' own metadata, quoted; every value is a parameter.
    return (
        f"WITH used AS ("
        f" UPDATE {quote(rt.db_table)} SET {column(rt, 'revoked')} = %s, {column(rt, 'updated')} = %s,"
        f" {column(rt, 'access_token')} = NULL"
        f" WHERE {rt_pk} = %s AND {column(rt, 'revoked')} IS NULL RETURNING {rt_pk}"
        f"), ended AS ("
        f" DELETE FROM {quote(at.db_table)} WHERE {at_pk} = %s AND EXISTS (SELECT 1 FROM used)"
        f" RETURNING {at_pk}, {column(at, 'token_checksum')}, {column(at, 'expires')}"
        f") SELECT (SELECT count(*) FROM used), ended.* FROM (SELECT 1) AS one LEFT JOIN ended ON true"
    )


def consume(token: RefreshToken, *, now: dt.datetime) -> bool:
    """Use `token` up: revoked as of `now`, its access token deleted. False when it was already used or revoked
    (by a racing rotation, a revocation or a family revocation): then nothing is changed. Runs in the caller's
    transaction, which holds the row lock until it commits."""
    using = router.db_for_write(RefreshToken)
    with connections[using].cursor() as cursor:
        cursor.execute(_sql(using), [now, now, token.pk, token.access_token_id])
        used, ended_pk, checksum, expires = cursor.fetchone()
    if not used:
        return False
    if ended_pk is not None:
        ended = AccessToken(pk=ended_pk, token_checksum=checksum, expires=expires)
        post_delete.send(sender=AccessToken, instance=ended, using=using, origin=ended)
    token.revoked, token.access_token = now, None
    return True
