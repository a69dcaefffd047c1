"""The admin CLI's tests work on a real database, with the fixtures of the API tests."""

from tests.api.conftest import app_settings, make_client, make_settings

__all__ = ["app_settings", "make_client", "make_settings"]
