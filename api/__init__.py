"""REST management API of a tenant's RBAC data, served at /t/<tenant>/api/ (see `api.urls`)."""
