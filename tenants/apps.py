from django.apps import AppConfig


class TenantsConfig(AppConfig):
    name = "tenants"
    verbose_name = "Tenants"

    def ready(self) -> None:
        from tenants import middleware

        middleware.connect()  # the routing copies follow every tenant and domain change
