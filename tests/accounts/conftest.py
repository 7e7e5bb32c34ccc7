"""The OAuth tests' fixtures (demo users, clients), shared with the account tests."""

from tests.oauth.conftest import clients, demo_users  # noqa: F401 - shared fixtures
