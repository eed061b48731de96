"""Chinese first: the zh-hans catalogue is complete, nothing in it is fuzzy, and the compiled
.mo that Django reads says the same as the .po that people edit. English is complete (see the
note below), and the language switch is remembered."""

import ast
import gettext
import re
from pathlib import Path

import polib
import pytest
from django.conf import settings
from django.urls import reverse
from django.utils import translation

from community.tests.factories import resident
from tests.test_templates_translated import python_files

PO = Path(settings.BASE_DIR) / "locale" / "zh_Hans" / "LC_MESSAGES" / "django.po"


def test_every_string_is_translated_and_none_is_fuzzy():
    catalogue = polib.pofile(str(PO))
    assert catalogue.untranslated_entries() == []
    assert catalogue.fuzzy_entries() == []
    assert len(catalogue.translated_entries()) > 50


def test_compiled_catalogue_matches_the_source():
    with PO.with_suffix(".mo").open("rb") as handle:
        compiled = gettext.GNUTranslations(handle)
    for entry in polib.pofile(str(PO)).translated_entries():
        if entry.msgctxt:
            assert compiled.pgettext(entry.msgctxt, entry.msgid) == entry.msgstr, entry.msgid
        elif entry.msgid_plural:
            # zh-hans has one plural form: every count reads the same.
            assert compiled.ngettext(entry.msgid, entry.msgid_plural, 2) == entry.msgstr_plural[0]
        else:
            assert compiled.gettext(entry.msgid) == entry.msgstr, entry.msgid


# --- English ------------------------------------------------------------------------------------
# What "English is complete" means here: the msgids are the English text (Django shows the msgid
# when a language has no translation for it), so an `en` catalogue would only copy every msgid
# onto itself and is deliberately absent. English is complete when (1) every user-facing string
# goes through gettext (tests/test_templates_translated.py: templates and Python), (2) every
# msgid is English: Chinese appears in a msgid only as a term of art quoted beside its English
# meaning (“agree” (同意)), never as the text itself, (3) a count is worded with ngettext or
# {% blocktranslate count %} ("1 bill waived.", not "1 bills waived.") and a word with several
# meanings has a pgettext context ("from" a date, "from" a source, "from" a status), (4) no
# Chinese literal bypasses the catalogue in the code (CJK_ALLOWED below says where it may).

CJK = re.compile(r"[\u3400-\u9fff\uf900-\ufaff]")
LATIN_WORD = re.compile(r"[A-Za-z]{2,}")


def test_every_msgid_is_english():
    not_english = [
        entry.msgid
        for entry in polib.pofile(str(PO))
        if (CJK.search(entry.msgid) or LATIN_WORD.search(entry.msgid) is None)
        and len(LATIN_WORD.findall(entry.msgid)) < 3  # a sentence quoting a Chinese term is fine
        and entry.msgctxt != "list separator"  # ", ": punctuation, not a word
    ]
    assert not_english == []


# Chinese text in the code that is not for people to read in their language: payment providers'
# own field names and replies, a date format's characters, and documentation quoting legal terms.
CJK_ALLOWED = {
    "billing/gateways/": "the providers' Chinese bill columns and protocol replies",
    "config/formats/": "Chinese date formats ('n月j日')",
    "community/management/commands/seed_demo.py": "the demo estate's name in --help",
    "community/api.py": "OpenAPI help text quoting the Civil Code's terms (以上, 过半数)",
    "community/import_format.py": "the estate workbook's sheet and column names (data)",
}
GETTEXT_CALLS = {"_", "gettext", "gettext_lazy", "pgettext", "pgettext_lazy", "ngettext"}


def chinese_literals(source: str) -> list[tuple[int, str]]:
    """String literals holding Chinese that are neither inside a gettext call nor a docstring."""
    tree = ast.parse(source)
    exempt: set[int] = set()
    for node in ast.walk(tree):
        name = getattr(getattr(node, "func", None), "id", None) or getattr(
            getattr(node, "func", None), "attr", None
        )
        if isinstance(node, ast.Call) and name in GETTEXT_CALLS:
            exempt |= {id(inner) for inner in ast.walk(node)}
        body = getattr(node, "body", None)
        if isinstance(body, list) and body and isinstance(body[0], ast.Expr):
            exempt.add(id(body[0].value))  # a docstring
    return [
        (node.lineno, node.value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant)
        and isinstance(node.value, str)
        and CJK.search(node.value)
        and id(node) not in exempt
    ]


def test_no_chinese_text_bypasses_the_catalogue():
    assert chinese_literals('x = _("“agree” (同意)")\ny = "合计"\n') == [(2, "合计")]
    found = []
    for path in python_files():
        relative = str(path.relative_to(settings.BASE_DIR))
        if not any(relative.startswith(prefix) for prefix in CJK_ALLOWED):
            found += [(relative, *hit) for hit in chinese_literals(path.read_text("utf-8"))]
    assert found == []


# --- The language switch ------------------------------------------------------------------------


def switch(client, language: str, next_url: str):
    response = client.post(reverse("set_language"), {"language": language, "next": next_url})
    assert response.status_code == 302
    assert response["Location"] == next_url
    return response


def chinese(msgid: str) -> str:
    with translation.override("zh-hans"):
        return translation.gettext(msgid)


def test_pages_are_chinese_first_even_for_an_english_phone(client):
    page = client.get(reverse("login"), HTTP_ACCEPT_LANGUAGE="en").content.decode()
    assert '<html lang="zh-hans">' in page
    assert chinese("Skip to content") in page


def test_the_switch_is_remembered_for_a_year_and_can_be_switched_back(client):
    login = reverse("login")
    cookie = switch(client, "en", login).cookies[settings.LANGUAGE_COOKIE_NAME]
    assert cookie.value == "en"
    assert cookie["max-age"] == 365 * 24 * 60 * 60  # not a cookie that dies with the browser

    page = client.get(login).content.decode()
    assert '<html lang="en">' in page
    assert "Skip to content" in page and chinese("Skip to content") not in page

    switch(client, "zh-hans", login)
    page = client.get(login).content.decode()
    assert '<html lang="zh-hans">' in page
    assert chinese("Skip to content") in page


@pytest.mark.django_db
def test_a_logged_in_residents_choice_survives_logging_out_and_in_again(client):
    user = resident()
    client.force_login(user)
    home = reverse("resident-home")
    switch(client, "en", home)
    assert "Log out" in client.get(home).content.decode()

    client.post(reverse("logout"))
    assert '<html lang="en">' in client.get(reverse("login")).content.decode()
    client.force_login(user)
    page = client.get(home).content.decode()
    assert '<html lang="en">' in page and "Log out" in page


def test_an_unknown_language_is_refused_and_changes_nothing(client):
    response = client.post(reverse("set_language"), {"language": "xx", "next": "/"})
    assert settings.LANGUAGE_COOKIE_NAME not in response.cookies
    assert '<html lang="zh-hans">' in client.get(reverse("login")).content.decode()


def test_the_switch_is_labelled_and_lists_both_languages_in_their_own_names(client):
    page = client.get(reverse("login") + "?next=/bills/").content.decode()
    form = page[
        page.index('class="language-switch"') : page.index("</form>", page.index("language-switch"))
    ]
    assert f'<label for="language-select">{chinese("Language")}</label>' in form
    assert '<select id="language-select" name="language"' in form
    assert re.search(r'<option value="zh-hans" selected>\s*简体中文\s*</option>', form)
    assert re.search(r'<option value="en">\s*English\s*</option>', form)
    # It comes back to the page it was used on.
    assert 'name="next" type="hidden" value="/accounts/login/?next=/bills/"' in form


def test_the_switch_is_a_full_size_tap_target_on_a_phone():
    # The select is what a phone user taps (the button hides once scripts run); 44 px is the
    # minimum tap target of the phone layout (--tap). The browser tests measure the real box.
    css = (Path(settings.BASE_DIR) / "static" / "css" / "linli.css").read_text("utf-8")
    assert re.search(r"--tap:\s*(\d+)px", css) and int(re.search(r"--tap:\s*(\d+)px", css)[1]) >= 44
    rule = re.search(r"\.language-switch select\s*\{([^}]*)\}", css)
    assert rule and "min-height: var(--tap)" in rule[1]
