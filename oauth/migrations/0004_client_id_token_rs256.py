"""Every client signs ID tokens with RS256 and the tenant's key (issue 18 finding 3).

Clients created by dynamic registration, CIMD or the dashboard's form had no algorithm, and the token endpoint
answered 500 to any `openid` request of theirs. Existing rows get RS256 before the constraint holds them to it.
"""

from django.conf import settings
from django.db import migrations, models


def sign_with_rs256(apps, schema_editor):  # type: ignore[no-untyped-def]
    apps.get_model("oauth", "Client").objects.exclude(algorithm="RS256").update(algorithm="RS256")


class Migration(migrations.Migration):

    dependencies = [
        ('oauth', '0003_resource_servers'),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.AlterField(
            model_name='client',
            name='algorithm',
            field=models.CharField(choices=[('RS256', 'RSA with SHA-2 256')], default='RS256', editable=False, max_length=5, verbose_name='ID token algorithm'),
        ),
        migrations.RunPython(sign_with_rs256, migrations.RunPython.noop),
        migrations.AddConstraint(
            model_name='client',
            constraint=models.CheckConstraint(condition=models.Q(('algorithm', 'RS256')), name='oauth_client_signs_id_tokens_rs256'),
        ),
    ]
