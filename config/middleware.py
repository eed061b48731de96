"""Chinese first: pages are in zh-hans unless the person chose another language with the switch
(remembered in the language cookie). A phone whose system language is English still gets the
Chinese portal its estate uses, and one tap changes it. API clients (the mini-program, third
parties) may instead ask with Accept-Language, as HTTP clients expect."""

from django.conf import settings
from django.middleware.locale import LocaleMiddleware
from django.utils import translation


class ChineseFirstLocaleMiddleware(LocaleMiddleware):
    def process_request(self, request):
        if request.path_info.startswith("/api/"):
            return super().process_request(request)
        chosen = request.COOKIES.get(settings.LANGUAGE_COOKIE_NAME)
        supported = {code for code, _name in settings.LANGUAGES}
        translation.activate(chosen if chosen in supported else settings.LANGUAGE_CODE)
        request.LANGUAGE_CODE = translation.get_language()
