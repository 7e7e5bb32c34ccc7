from typing import Any

from django.apps import AppConfig
from django.db.models.signals import post_delete, post_save


def _scope_changed(sender: Any, instance: Any, created: bool = False, **kwargs: Any) -> None:
    # A renamed or deleted scope changes the policy documents that name it (oauth.resource_servers).
    if not created:
        from oauth.resource_servers import bump_all_generations

        bump_all_generations()


class OAuthConfig(AppConfig):
    name = "oauth"
    label = "oauth"
    verbose_name = "OAuth provider"

    def ready(self) -> None:
        from oauth import issuance, issuer

        issuer.install()
        issuance.connect()
        from accounts.signals import user_access_ended
        from oauth.services import _user_access_ended

        user_access_ended.connect(_user_access_ended, dispatch_uid="oauth-user-access-ended")
        from oauth.keys import _tenant_created
        from tenants.signals import tenant_created

        tenant_created.connect(_tenant_created, dispatch_uid="oauth-tenant-created")
        from accounts.signals import login_page_context
        from oauth.upstream_views import _login_page_context

        login_page_context.connect(_login_page_context, dispatch_uid="oauth-login-page-upstream")
        post_save.connect(_scope_changed, sender="rbac.Scope", dispatch_uid="oauth-rs-scope-saved")
        post_delete.connect(_scope_changed, sender="rbac.Scope", dispatch_uid="oauth-rs-scope-deleted")
        _unregister_token_tables()


def _unregister_token_tables() -> None:
    """DOT registers its raw token, code and ID-token tables on the dashboard (writes without our audit); the
    dashboard's "Tokens & sessions" page (authsec_site/dashboard_tokens.py) lists live tokens and revokes them
    through `oauth.services.revoke_tokens`. Codes and ID tokens expire and the hourly cleanup removes them."""
    from django.contrib import admin
    from oauth2_provider.models import AccessToken, Grant, IDToken, RefreshToken

    for model in (AccessToken, RefreshToken, Grant, IDToken):
        if admin.site.is_registered(model):
            admin.site.unregister(model)
