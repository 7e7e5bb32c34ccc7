"""Tool pins in the management API (/t/<tenant>/api/tool-pins/…): list and read pins, approve or reject a changed
definition, set the pinning mode, and export and import pins so that staging and production share approved
definitions. Thin: every write is a `rbac.pins` service function (the dashboard calls the same)."""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError
from django.db.models import QuerySet
from drf_spectacular.utils import extend_schema
from rest_framework import exceptions, serializers, viewsets
from rest_framework.decorators import action
from rest_framework.permissions import BasePermission
from rest_framework.request import Request
from rest_framework.response import Response

from api.common import query_str
from api.permissions import IsStaff, view_permission
from rbac import pins
from rbac.models import ToolPin, ToolPinSettings

EXPORT_FORMAT = "authsec-tool-pins/1"
MAX_IMPORT = 5000


class CanReviewPins(BasePermission):
    """Approving, rejecting, importing and setting the mode need ``rbac.change_toolpin``."""

    message = "Reviewing tool pins needs the permission rbac.change_toolpin."

    def has_permission(self, request: Request, view: Any) -> bool:
        return bool(request.user and request.user.is_authenticated and request.user.has_perm("rbac.change_toolpin"))


class ToolPinSerializer(serializers.ModelSerializer):
    application = serializers.SerializerMethodField()
    state = serializers.CharField(read_only=True)

    class Meta:
        model = ToolPin
        fields = [
            "id",
            "application",
            "resource_server_id",
            "tool_name",
            "source",
            "state",
            "pinned_hash",
            "pinned_definition",
            "pinned_at",
            "seen_hash",
            "seen_definition",
            "seen_at",
            "rejected_hash",
            "warnings",
        ]
        read_only_fields = fields

    def get_application(self, pin: ToolPin) -> str | None:
        return pin.policy.application.slug if pin.policy_id is not None else None


class ReviewSerializer(serializers.Serializer):
    expected_hash = serializers.RegexField(
        r"^[0-9a-f]{64}$", help_text="The seen_hash you reviewed: refused if the definition changed since."
    )


class ModeSerializer(serializers.Serializer):
    mode = serializers.ChoiceField(choices=ToolPinSettings.Mode.choices)


class ImportSerializer(serializers.Serializer):
    format = serializers.CharField(required=False)
    pins = serializers.ListField(child=serializers.DictField(), max_length=MAX_IMPORT)


VIEW = [IsStaff, view_permission(ToolPin)]
REVIEW = [IsStaff, view_permission(ToolPin), CanReviewPins]


class ToolPinViewSet(viewsets.ReadOnlyModelViewSet):
    """Pins of the tenant's tools: the approved definition, the last one seen, and its poisoning warnings."""

    queryset = ToolPin.objects.select_related("policy__application").order_by("tool_name", "pk")
    serializer_class = ToolPinSerializer
    permission_classes = VIEW
    search_fields = ["tool_name", "policy__application__slug"]
    ordering_fields = ["tool_name", "seen_at", "pinned_at"]

    def get_queryset(self) -> QuerySet[ToolPin]:
        queryset = super().get_queryset()
        state = query_str(self.request, "state")
        if state is None:
            return queryset
        if state not in ToolPin.State.values:
            raise exceptions.ValidationError({"state": [f"Use one of {', '.join(ToolPin.State.values)}."]})
        return queryset.in_state(state)

    @extend_schema(request=ReviewSerializer, responses=ToolPinSerializer, summary="Pin the changed definition")
    @action(detail=True, methods=["post"], permission_classes=REVIEW)
    def approve(self, request: Request, pk: str | None = None) -> Response:
        data = self._review_data(request)
        pin = pins.approve_pin(self.get_object(), actor=request.user, expected_hash=data["expected_hash"])
        return Response(ToolPinSerializer(pin).data)

    @extend_schema(request=ReviewSerializer, responses=ToolPinSerializer, summary="Refuse the changed definition")
    @action(detail=True, methods=["post"], permission_classes=REVIEW)
    def reject(self, request: Request, pk: str | None = None) -> Response:
        data = self._review_data(request)
        pin = pins.reject_pin(self.get_object(), actor=request.user, expected_hash=data["expected_hash"])
        return Response(ToolPinSerializer(pin).data)

    @staticmethod
    def _review_data(request: Request) -> dict[str, Any]:
        serializer = ReviewSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        return dict(serializer.validated_data)

    @extend_schema(summary="Every pinned definition, to import elsewhere")
    @action(detail=False, methods=["get"], url_path="export")
    def export(self, request: Request) -> Response:
        return Response({"format": EXPORT_FORMAT, "pins": pins.export_pins()})

    @extend_schema(request=ImportSerializer, summary="Pin the definitions of an export (an approval by the caller)")
    @action(detail=False, methods=["post"], url_path="import", permission_classes=REVIEW)
    def import_(self, request: Request) -> Response:
        serializer = ImportSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        given = serializer.validated_data.get("format")
        if given not in (None, EXPORT_FORMAT):
            raise exceptions.ValidationError({"format": [f"Unknown format {given!r}; expected {EXPORT_FORMAT}."]})
        try:
            entries = [pins.parse_entry(raw, index) for index, raw in enumerate(serializer.validated_data["pins"])]
        except ValidationError as exc:
            raise exceptions.ValidationError({"pins": exc.messages}) from None
        return Response(pins.import_pins(actor=request.user, entries=entries))

    @extend_schema(request=ModeSerializer, responses=ModeSerializer, summary="The tenant's pinning mode")
    @action(detail=False, methods=["get", "put"], url_path="mode")
    def mode(self, request: Request) -> Response:
        if request.method == "PUT":
            if not CanReviewPins().has_permission(request, self):
                raise exceptions.PermissionDenied(CanReviewPins.message)
            serializer = ModeSerializer(data=request.data)
            serializer.is_valid(raise_exception=True)
            pins.set_pin_mode(actor=request.user, mode=serializer.validated_data["mode"])
        return Response({"mode": ToolPinSettings.current_mode()})
