from django.apps import AppConfig


class AccountsConfig(AppConfig):
    name = "accounts"
    verbose_name = "Accounts"

    def ready(self) -> None:
        from django.contrib import admin

        from accounts import signals
        from accounts.forms import AdminLoginForm
        from authsec_site.admin_sites import platform_admin

        signals.connect()
        # Both admin sites sign in through the throttled, audited login form.
        admin.site.login_form = AdminLoginForm
        platform_admin.login_form = AdminLoginForm
