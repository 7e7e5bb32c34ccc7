"""Members of the tenant's Django permission group "Auditors" get the dashboard role Auditor, and the group goes.

Tenant schemas only (the platform's users keep Django's groups). Idempotent; the reverse rebuilds the group."""

from django.db import migrations

AUDITORS_GROUP = "Auditors"
AUDITOR = "auditor"
AUDITOR_PERMISSIONS = (
    ("audit", "review_auditevent"),
    ("audit", "view_auditevent"),
    ("audit", "view_auditcheckpoint"),
    ("audit", "view_auditsettings"),
)


def _in_tenant_schema(schema_editor) -> bool:  # type: ignore[no-untyped-def]
    from django_tenants.utils import get_public_schema_name

    return getattr(schema_editor.connection, "schema_name", get_public_schema_name()) != get_public_schema_name()


def group_to_role(apps, schema_editor) -> None:  # type: ignore[no-untyped-def]
    if not _in_tenant_schema(schema_editor):
        return
    Group = apps.get_model("auth", "Group")
    User = apps.get_model("accounts", "User")
    group = Group.objects.filter(name=AUDITORS_GROUP).first()
    if group is None:
        return
    for user in User.objects.filter(groups=group):
        if AUDITOR not in user.dashboard_roles:
            user.dashboard_roles = [*user.dashboard_roles, AUDITOR]
            user.save(update_fields=["dashboard_roles"])
    group.delete()  # its permissions now come with the role


def role_to_group(apps, schema_editor) -> None:  # type: ignore[no-untyped-def]
    if not _in_tenant_schema(schema_editor):
        return
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    User = apps.get_model("accounts", "User")
    holders = list(User.objects.filter(dashboard_roles__contains=[AUDITOR]))
    if not holders:
        return
    group, _ = Group.objects.get_or_create(name=AUDITORS_GROUP)
    group.permissions.set(
        Permission.objects.filter(content_type__app_label="audit", codename__in=[c for _, c in AUDITOR_PERMISSIONS])
    )
    for user in holders:
        user.groups.add(group)
        user.dashboard_roles = [role for role in user.dashboard_roles if role != AUDITOR]
        user.save(update_fields=["dashboard_roles"])


class Migration(migrations.Migration):
    dependencies = [
        ("accounts", "0002_user_dashboard_roles"),
        ("auth", "0012_alter_user_first_name_max_length"),
    ]

    operations = [migrations.RunPython(group_to_role, role_to_group)]
