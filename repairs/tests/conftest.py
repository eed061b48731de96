import pytest


@pytest.fixture(autouse=True)
def _empty_media_storage(settings):
    """A fresh in-memory file storage for every test, so "nothing was stored" can be checked."""
    settings.STORAGES = {
        **settings.STORAGES,
        "default": {"BACKEND": "django.core.files.storage.InMemoryStorage"},
    }
