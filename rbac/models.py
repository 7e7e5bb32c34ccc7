"""RBAC models (roles, groups, scopes, resources, permissions, tool policies) arrive with the RBAC feature."""
