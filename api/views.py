"""API views of the RBAC objects. Thin: validate with a serializer, write through the same `rbac.services`
functions as the dashboard (`ServiceModelViewSet`), and ask `rbac.engine` for every decision."""

from __future__ import annotations

from django.db.models import QuerySet
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_view
from rest_framework import exceptions, viewsets
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response

from accounts.models import User
from api import decisions
from api.common import ServiceModelViewSet, query_bool, query_int, query_str
from api.permissions import IsStaff, has_view_permission, view_permission
from api.serializers import (
    ApplicationSerializer,
    GroupMembershipSerializer,
    GroupSerializer,
    PermissionSerializer,
    ResourceSerializer,
    RoleBindingSerializer,
    RoleSerializer,
    ScopeSerializer,
    ToolPolicySerializer,
    UserSerializer,
)
from rbac import services
from rbac.models import (
    Application,
    Group,
    GroupMembership,
    Permission,
    Resource,
    Role,
    RoleBinding,
    Scope,
    ToolPolicy,
)


def _param(name: str, description: str, type_: type = str) -> OpenApiParameter:
    return OpenApiParameter(name, type_, OpenApiParameter.QUERY, required=False, description=description)


IS_ACTIVE = _param("is_active", "Only active (true) or inactive (false) ones.", bool)


@extend_schema_view(list=extend_schema(parameters=[IS_ACTIVE]))
class ApplicationViewSet(ServiceModelViewSet):
    """MCP applications; each is served at /t/<tenant>/mcp/<slug> and has one policy per tool."""

    save_service = staticmethod(services.save_application)
    delete_service = staticmethod(services.delete_application)

    queryset = Application.objects.all()
    serializer_class = ApplicationSerializer
    search_fields = ["slug", "name", "description"]
    ordering_fields = ["slug", "name", "created_at", "updated_at"]

    def get_queryset(self) -> QuerySet[Application]:
        queryset = super().get_queryset()
        is_active = query_bool(self.request, "is_active")
        return queryset if is_active is None else queryset.filter(is_active=is_active)

    @extend_schema(
        request=decisions.SimulateSerializer,
        responses=decisions.SimulationResultSerializer,
        summary="Decide every tool of this application for a user, or for claimed names",
    )
    @action(
        detail=True,
        methods=["post"],
        permission_classes=[IsStaff, view_permission(Application, ToolPolicy)],
    )
    def simulate(self, request: Request, pk: str | None = None) -> Response:
        """Read-only: changes nothing, so it needs only the view permissions (and view_user to simulate a user)."""
        application = self.get_object()
        data = decisions.SimulateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        if data.validated_data.get("user") is not None and not has_view_permission(request.user, [User]):
            raise exceptions.PermissionDenied("Simulating a user needs the permission to view users.")
        return Response(decisions.simulate(application, data.validated_data))


class ScopeViewSet(ServiceModelViewSet):
    save_service = staticmethod(services.save_scope)
    delete_service = staticmethod(services.delete_scope)
    queryset = Scope.objects.all()
    serializer_class = ScopeSerializer
    search_fields = ["name", "description"]
    ordering_fields = ["name", "created_at", "updated_at"]


class ResourceViewSet(ServiceModelViewSet):
    save_service = staticmethod(services.save_resource)
    delete_service = staticmethod(services.delete_resource)
    queryset = Resource.objects.all()
    serializer_class = ResourceSerializer
    search_fields = ["name", "description"]
    ordering_fields = ["name", "created_at", "updated_at"]


@extend_schema_view(
    list=extend_schema(parameters=[_param("resource", "Only the permissions of this resource (name).")])
)
class PermissionViewSet(ServiceModelViewSet):
    """Actions on resources, named ``resource:action``."""

    save_service = staticmethod(services.save_permission)
    delete_service = staticmethod(services.delete_permission)

    queryset = Permission.objects.select_related("resource")
    serializer_class = PermissionSerializer
    search_fields = ["resource__name", "action", "description"]
    ordering_fields = ["resource__name", "action", "created_at"]

    def get_queryset(self) -> QuerySet[Permission]:
        queryset = super().get_queryset()
        resource = query_str(self.request, "resource")
        return queryset if resource is None else queryset.filter(resource__name=resource)


@extend_schema_view(
    list=extend_schema(
        parameters=[
            _param("scope", "Only roles granting this scope (name)."),
            _param("resource", "Only roles granting this resource (name)."),
        ]
    )
)
class RoleViewSet(ServiceModelViewSet):
    """Roles and what they grant. Deleting a role removes its bindings (recorded in the audit log)."""

    save_service = staticmethod(services.save_role)
    delete_service = staticmethod(services.delete_role)

    queryset = Role.objects.prefetch_related("scopes", "resources", "permissions__resource")
    serializer_class = RoleSerializer
    search_fields = ["name", "description"]
    ordering_fields = ["name", "created_at", "updated_at"]

    def get_queryset(self) -> QuerySet[Role]:
        queryset = super().get_queryset()
        scope = query_str(self.request, "scope")
        resource = query_str(self.request, "resource")
        if scope is not None:
            queryset = queryset.filter(scopes__name=scope)
        if resource is not None:
            queryset = queryset.filter(resources__name=resource)
        return queryset


@extend_schema_view(list=extend_schema(parameters=[_param("member", "Only groups with this user (id).", int)]))
class GroupViewSet(ServiceModelViewSet):
    """Groups of users; members are managed at group-memberships/."""

    save_service = staticmethod(services.save_group)
    delete_service = staticmethod(services.delete_group)

    queryset = Group.objects.prefetch_related("members")
    serializer_class = GroupSerializer
    search_fields = ["name", "description"]
    ordering_fields = ["name", "created_at", "updated_at"]

    def get_queryset(self) -> QuerySet[Group]:
        queryset = super().get_queryset()
        member = query_int(self.request, "member")
        return queryset if member is None else queryset.filter(memberships__user_id=member)


@extend_schema_view(
    list=extend_schema(
        parameters=[
            _param("application", "Only this application's policies (slug)."),
            _param("tool", "Only the policy of this tool (name)."),
            _param("is_enabled", "Only enabled (true) or disabled (false) policies.", bool),
        ]
    )
)
class ToolPolicyViewSet(ServiceModelViewSet):
    """Who may see and call each tool. A tool without an enabled policy is denied to everyone."""

    save_service = staticmethod(services.save_tool_policy)
    delete_service = staticmethod(services.delete_tool_policy)

    queryset = ToolPolicy.objects.select_related("application")
    serializer_class = ToolPolicySerializer
    search_fields = ["tool_name", "description", "application__slug"]
    ordering_fields = ["application__slug", "tool_name", "created_at", "updated_at"]

    def get_queryset(self) -> QuerySet[ToolPolicy]:
        queryset = super().get_queryset()
        application = query_str(self.request, "application")
        tool = query_str(self.request, "tool")
        is_enabled = query_bool(self.request, "is_enabled")
        if application is not None:
            queryset = queryset.filter(application__slug=application)
        if tool is not None:
            queryset = queryset.filter(tool_name=tool)
        if is_enabled is not None:
            queryset = queryset.filter(is_enabled=is_enabled)
        return queryset


_BINDING_FILTERS = [
    _param("role", "Only bindings of this role (name)."),
    _param("user", "Only bindings to this user (id).", int),
    _param("group", "Only bindings to this group (name)."),
]


@extend_schema_view(list=extend_schema(parameters=_BINDING_FILTERS))
class RoleBindingViewSet(ServiceModelViewSet):
    """Roles given to users or groups; created with `grant_role`, deleted with `revoke_role`."""

    save_service = staticmethod(services.save_role_binding)
    delete_service = staticmethod(services.delete_role_binding)

    queryset = RoleBinding.objects.select_related("role", "user", "group").order_by("role__name", "id")
    serializer_class = RoleBindingSerializer
    http_method_names = ["get", "post", "delete", "head", "options"]
    search_fields = ["role__name", "user__email", "group__name"]
    ordering_fields = ["role__name", "created_at"]

    def get_queryset(self) -> QuerySet[RoleBinding]:
        queryset = super().get_queryset()
        role, group = query_str(self.request, "role"), query_str(self.request, "group")
        user = query_int(self.request, "user")
        if role is not None:
            queryset = queryset.filter(role__name=role)
        if user is not None:
            queryset = queryset.filter(user_id=user)
        if group is not None:
            queryset = queryset.filter(group__name=group)
        return queryset


@extend_schema_view(
    list=extend_schema(
        parameters=[
            _param("group", "Only members of this group (name)."),
            _param("user", "Only memberships of this user (id).", int),
        ]
    )
)
class GroupMembershipViewSet(ServiceModelViewSet):
    """Users in groups; created with `add_member`, deleted with `remove_member`."""

    save_service = staticmethod(services.save_group_membership)
    delete_service = staticmethod(services.delete_group_membership)

    queryset = GroupMembership.objects.select_related("group", "user")
    serializer_class = GroupMembershipSerializer
    http_method_names = ["get", "post", "delete", "head", "options"]
    search_fields = ["group__name", "user__email"]
    ordering_fields = ["group__name", "user__email", "created_at"]

    def get_queryset(self) -> QuerySet[GroupMembership]:
        queryset = super().get_queryset()
        group = query_str(self.request, "group")
        user = query_int(self.request, "user")
        if group is not None:
            queryset = queryset.filter(group__name=group)
        if user is not None:
            queryset = queryset.filter(user_id=user)
        return queryset


@extend_schema_view(list=extend_schema(parameters=[IS_ACTIVE]))
class UserViewSet(viewsets.ReadOnlyModelViewSet):
    """The tenant's users (read-only here; accounts are managed in the dashboard)."""

    queryset = User.objects.all()
    serializer_class = UserSerializer
    search_fields = ["email", "full_name"]
    ordering_fields = ["email", "full_name", "date_joined"]

    def get_queryset(self) -> QuerySet[User]:
        queryset = super().get_queryset()
        is_active = query_bool(self.request, "is_active")
        return queryset if is_active is None else queryset.filter(is_active=is_active)

    @extend_schema(
        responses=decisions.EffectivePermissionsSerializer,
        summary="The user's effective grants and each tool decision of every active application",
    )
    @action(
        detail=True,
        methods=["get"],
        url_path="effective-permissions",
        permission_classes=[IsStaff, view_permission(User, Application, ToolPolicy)],
    )
    def effective_permissions(self, request: Request, pk: str | None = None) -> Response:
        return Response(decisions.effective_permissions(self.get_object()))
