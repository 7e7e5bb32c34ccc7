"""The OAuth tests' fixtures (demo users, clients), shared with the account tests."""

from tests.oauth.conftest import _fast_password_hasher, clients, demo_users  # noqa: F401 - shared fixtures
