from django.apps import AppConfig


class RbacConfig(AppConfig):
    name = "rbac"
    verbose_name = "Access control (RBAC)"

    def ready(self) -> None:
        from rbac import signals

        signals.connect()
