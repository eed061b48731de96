"""Alliance tests read English messages: the site is Chinese first, so each test asks for
English the way a client would (Accept-Language for the API, the language cookie for pages)
and runs background work (notices from tasks) in English too."""

import pytest
from django.conf import settings
from django.utils import translation


@pytest.fixture(autouse=True)
def _english(api_client, client):
    api_client.defaults["HTTP_ACCEPT_LANGUAGE"] = "en"
    client.cookies[settings.LANGUAGE_COOKIE_NAME] = "en"
    with translation.override("en"):
        yield
