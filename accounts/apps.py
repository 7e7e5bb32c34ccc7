from django.apps import AppConfig


class AccountsConfig(AppConfig):
    name = "accounts"
    verbose_name = "Accounts"

    def ready(self) -> None:
        from django.contrib import admin
        from django_otp.plugins.otp_totp.models import TOTPDevice

        from accounts import signals
        from accounts.forms import AdminLoginForm
        from authsec_site.admin_sites import platform_admin

        signals.connect()
        # Both admin sites sign in through the throttled, audited login form.
        admin.site.login_form = AdminLoginForm
        platform_admin.login_form = AdminLoginForm
        # django-otp registers its TOTP devices on the dashboard (writes without our audit, and the secret on
        # show): a user's factors are theirs to manage on the security page; an admin can only reset them.
        if admin.site.is_registered(TOTPDevice):
            admin.site.unregister(TOTPDevice)
