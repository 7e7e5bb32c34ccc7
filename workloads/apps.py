from django.apps import AppConfig


class WorkloadsConfig(AppConfig):
    name = "workloads"
    verbose_name = "Workload identities (SPIFFE)"
    default_auto_field = "django.db.models.BigAutoField"
