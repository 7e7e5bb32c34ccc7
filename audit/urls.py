"""Audit review pages, mounted at /t/<tenant>/audit/."""

from django.urls import path

from audit import views

app_name = "audit"

urlpatterns = [
    path("", views.event_list, name="event-list"),
    path("events/<int:event_id>/", views.event_detail, name="event-detail"),
    path("export.<str:fmt>", views.event_export, name="event-export"),
]
