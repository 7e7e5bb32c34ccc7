from django.apps import AppConfig


class RbacConfig(AppConfig):
    name = "rbac"
    verbose_name = "Access control (RBAC)"

    def ready(self) -> None:
        from rbac import pin_admin, signals  # noqa: F401 - pin_admin registers the tool-pin pages

        signals.connect()
