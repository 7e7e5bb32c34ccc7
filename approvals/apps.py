from django.apps import AppConfig


class ApprovalsConfig(AppConfig):
    """Human approval of sensitive tool calls and CIBA requests (docs/approvals.md)."""

    default_auto_field = "django.db.models.BigAutoField"
    name = "approvals"
    verbose_name = "Approvals"
