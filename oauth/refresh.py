"""A refresh token's single use, in one statement (the token endpoint's rotation, `TenantOAuth2Validator`): on its
own (`consume`), or as the guard of the statement that stores the new tokens (`consume_guard`), so a rotation is
one statement in all.

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

from oauth.token_rows import Guard

AccessToken = get_access_token_model()
RefreshToken = get_refresh_token_model()


def _ctes(using: str) -> str:
    """The single use as two data-modifying CTEs, `used` (the refresh token's row, if this statement used it) and
    `ended` (its access token, deleted only then)."""
    quote = connections[using].ops.quote_name
    rt, at = RefreshToken._meta, AccessToken._meta

    def column(meta: object, name: str) -> str:
        return quote(meta.get_field(name).column)  # type: ignore[attr-defined]

    rt_pk, at_pk = column(rt, rt.pk.name), column(at, at.pk.name)
    # Identifiers only from the models' own metadata, quoted; every value is a parameter.
    return (
        f"used AS ("
        f" UPDATE {quote(rt.db_table)} SET {column(rt, 'revoked')} = %s, {column(rt, 'updated')} = %s,"
        f" {column(rt, 'access_token')} = NULL"
        f" WHERE {rt_pk} = %s AND {column(rt, 'revoked')} IS NULL RETURNING {rt_pk}"
        f"), ended AS ("
        f" DELETE FROM {quote(at.db_table)} WHERE {at_pk} = %s AND EXISTS (SELECT 1 FROM used)"
        f" RETURNING {at_pk}, {column(at, 'token_checksum')}, {column(at, 'expires')}"
        f")"
    )


# What the statement answers: whether it used the token, and the access token it deleted (NULLs when none).
_OUTPUTS = "(SELECT count(*) FROM used), ended.*"
_FROM = "(SELECT 1) AS one LEFT JOIN ended ON true"


def consume(token: RefreshToken, *, now: dt.datetime) -> bool:
    """Use `token` up: revoked as of `now`, its access token deleted. False when it was already used or revoked
    (by a racing rotation, a revocation or a family revocation): then nothing is changed. Runs in the caller's
    transaction, which holds the row lock until it commits."""
    using = router.db_for_write(RefreshToken)
    with connections[using].cursor() as cursor:
        cursor.execute(f"WITH {_ctes(using)} SELECT {_OUTPUTS} FROM {_FROM}", _params(token, now))
        return consumed(token, cursor.fetchone(), now=now)


def consume_guard(token: RefreshToken, *, now: dt.datetime) -> Guard:
    """`consume` as the guard of the statement that stores the tokens issued in its place (`oauth.token_rows`):
    they are written only if this statement used the token; `consumed` then reads its answer."""
    return Guard(ctes=_ctes(router.db_for_write(RefreshToken)), params=_params(token, now), gate="used",
                 outputs=_OUTPUTS, from_clause=_FROM)  # fmt: skip


def _params(token: RefreshToken, now: dt.datetime) -> list[object]:
    return [now, now, token.pk, token.access_token_id]


def consumed(token: RefreshToken, answer: tuple[object, ...], *, now: dt.datetime) -> bool:
    """Whether the statement's `answer` (`_OUTPUTS`) says it used `token`; if so, `token` is updated to match and
    its deleted access token announced."""
    used, ended_pk, checksum, expires = answer
    if not used:
        return False
    if ended_pk is not None:
        using = router.db_for_write(AccessToken)
        ended = AccessToken(pk=ended_pk, token_checksum=checksum, expires=expires)
        post_delete.send(sender=AccessToken, instance=ended, using=using, origin=ended)
    token.revoked, token.access_token = now, None
    return True
