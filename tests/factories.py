"""factory-boy factories for test data, one per model the tests create (rows go to whatever schema is current).

Each factory writes the row directly, as `Model.objects.create` does: no audit event, no service call. A test
that checks a service's effect (its audit event, its cache invalidation) calls the service, not a factory.
"""

from __future__ import annotations

import factory

from accounts.models import User
from oauth.models import Client
from rbac.models import Application, Group, Permission, Resource, Role, Scope, ToolPolicy


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = User
        skip_postgeneration_save = True

    email = factory.Sequence(lambda n: f"user{n}@example.test")
    full_name = factory.Faker("name")
    password = factory.PostGenerationMethodCall("set_password", "pass-word-123")

    @factory.post_generation
    def _save(obj, create, extracted, **kwargs):  # type: ignore[no-untyped-def]
        if create:
            obj.save()


class ScopeFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Scope

    name = factory.Sequence(lambda n: f"scope-{n}")


class ResourceFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Resource

    name = factory.Sequence(lambda n: f"resource-{n}")


class PermissionFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Permission

    resource = factory.SubFactory(ResourceFactory)
    action = "read"


class RoleFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Role

    name = factory.Sequence(lambda n: f"role-{n}")


class GroupFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Group

    name = factory.Sequence(lambda n: f"group-{n}")


class ApplicationFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Application

    slug = factory.Sequence(lambda n: f"app-{n}")
    name = factory.LazyAttribute(lambda app: app.slug.replace("-", " ").title())


class ToolPolicyFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = ToolPolicy

    application = factory.SubFactory(ApplicationFactory)
    tool_name = factory.Sequence(lambda n: f"tool_{n}")


class OAuthClientFactory(factory.django.DjangoModelFactory):
    """A public authorization-code client signing with RS256 (a PKCE client such as Claude Desktop).

    `confidential=True` gives a confidential code client, `machine=True` a client-credentials one; pass
    `client_secret` in plain text (django-oauth-toolkit hashes it on save)."""

    class Meta:
        model = Client

    class Params:
        confidential = factory.Trait(client_type=Client.CLIENT_CONFIDENTIAL)
        machine = factory.Trait(  # a confidential client-credentials client: no redirect URI
            client_type=Client.CLIENT_CONFIDENTIAL,
            authorization_grant_type=Client.GRANT_CLIENT_CREDENTIALS,
            redirect_uris="",
        )

    name = factory.Sequence(lambda n: f"Client {n}")
    client_type = Client.CLIENT_PUBLIC
    authorization_grant_type = Client.GRANT_AUTHORIZATION_CODE
    redirect_uris = "http://127.0.0.1:8765/callback"
    algorithm = Client.RS256_ALGORITHM
    client_secret = ""
