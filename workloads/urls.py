"""Tenant URLs of the workloads app, under /t/<tenant>/spiffe/."""

from django.urls import path

from workloads import views

app_name = "workloads"
urlpatterns = [
    path("bundle", views.trust_bundle, name="bundle"),
]
