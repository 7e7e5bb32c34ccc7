from django.apps import AppConfig


class WorkloadsConfig(AppConfig):
    name = "workloads"
    verbose_name = "Workload identities (SPIFFE)"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from tenants.signals import tenant_created
        from workloads.services import _tenant_created

        tenant_created.connect(_tenant_created, dispatch_uid="workloads-tenant-created")
