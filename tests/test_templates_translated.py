"""Every word a person reads goes through gettext.

Templates: each template is cut into Django tokens; whatever a tag or a variable prints
({% translate %}, {% blocktranslate %}…{% endblocktranslate %}, {{ … }}, {% url %}…) becomes a
neutral placeholder, and the HTML that is left is parsed. Any text node, or title / placeholder /
aria-label / alt / value-of-a-button attribute, that still holds a letter (Latin or CJK) was
written straight into the template and would show untranslated in the other language.

Python: the places whose strings reach a person (messages, validation errors, API errors, model
and form labels, choices, admin descriptions) must hold gettext calls, not bare literals.
"""

import ast
import re
from html.parser import HTMLParser
from pathlib import Path

import pytest
from django.conf import settings
from django.template.base import Lexer, TokenType

BASE = Path(settings.BASE_DIR)
APPS = ["community", "billing", "repairs", "alliance", "points", "config"]

# Words that are not language, so they read the same in every locale. Keep it short, say why.
ALLOWED_WORDS = {
    # The brand mark: one decorative character, aria-hidden, drawn like a logo in every language.
    "邻",
    # The unit of floor area, written so in Chinese and English alike.
    "m²",
    # File formats offered for download, named so in Chinese and English alike.
    "CSV",
    "Excel",
}

# The placeholder that stands for anything a tag or variable prints: no letters in it.
SLOT = "\u2063"
LETTER = re.compile(r"[^\W\d_]")
ALLOWED = re.compile("|".join(rf"(?<!\w){re.escape(word)}(?!\w)" for word in ALLOWED_WORDS))
TRANSLATED_ATTRIBUTES = {"title", "placeholder", "aria-label", "alt", "aria-description"}


def template_files() -> list[Path]:
    roots = [BASE / "templates", *(BASE / app / "templates" for app in APPS)]
    return sorted(path for root in roots if root.is_dir() for path in root.rglob("*.html"))


def without_translated_parts(source: str) -> str:
    """The template with every tag, variable and comment replaced by SLOT, and the text inside
    {% blocktranslate %} / {% comment %} blocks dropped (the former is translated, the latter
    never shown)."""
    out: list[str] = []
    skip_until: str | None = None
    for token in Lexer(source).tokenize():
        if token.token_type == TokenType.BLOCK:
            name = token.contents.split()[0] if token.contents else ""
            if skip_until:
                if name == skip_until:
                    skip_until = None
                continue
            if name in {"blocktranslate", "blocktrans"}:
                skip_until = "end" + name
            elif name == "comment":
                skip_until = "endcomment"
            out.append(SLOT)
        elif skip_until:
            continue
        elif token.token_type == TokenType.TEXT:
            out.append(token.contents)
        elif token.token_type == TokenType.VAR:
            out.append(SLOT)
    return "".join(out)


class _UntranslatedText(HTMLParser):
    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.found: list[str] = []
        self._skipping: list[str] = []  # <script> and <style> hold code, not language

    def handle_starttag(self, tag, attrs):
        if tag in {"script", "style"}:
            self._skipping.append(tag)
        attributes = dict(attrs)
        for name, value in attrs:
            shown = name in TRANSLATED_ATTRIBUTES or (
                # A button's value is its label; other inputs' values are data.
                name == "value"
                and tag == "input"
                and attributes.get("type") in {"submit", "button", "reset"}
            )
            if shown and value:
                self._check(f"<{tag} {name}>", value)

    handle_startendtag = handle_starttag

    def handle_endtag(self, tag):
        if self._skipping and self._skipping[-1] == tag:
            self._skipping.pop()

    def handle_data(self, data):
        if not self._skipping:
            self._check("text", data)

    def _check(self, where: str, text: str) -> None:
        for piece in text.split(SLOT):
            piece = piece.strip()
            if LETTER.search(ALLOWED.sub("", piece)):
                self.found.append(f"{where}: {piece!r}")


def untranslated_in(source: str) -> list[str]:
    parser = _UntranslatedText()
    parser.feed(without_translated_parts(source))
    parser.close()
    return parser.found


def test_the_template_check_catches_what_it_should():
    # Guards the guard: each of these must be found, and the translated forms must not be.
    assert untranslated_in("<p>Pay now</p>") == ["text: 'Pay now'"]
    assert untranslated_in("<p>立即缴费</p>") == ["text: '立即缴费'"]
    assert untranslated_in('<input placeholder="Search">') == ["<input placeholder>: 'Search'"]
    assert untranslated_in('<a aria-label="Close {{ x }}">×</a>') == ["<a aria-label>: 'Close'"]
    assert untranslated_in('<input type="submit" value="Send">') == ["<input value>: 'Send'"]
    assert untranslated_in("{% if a %}<b>due</b>{% endif %}") == ["text: 'due'"]
    assert untranslated_in("<p>&nbsp;¥{{ amount }} · 3 / 5 – {{ x }}%</p>") == []
    assert untranslated_in("<p>{{ area }} m² (CSV)</p><p>m² of CSVs</p>") == ["text: 'm² of CSVs'"]
    assert untranslated_in('<input name="q" value="abc">') == []
    assert untranslated_in("<script>const a = 'word';</script>") == []
    assert untranslated_in("{% comment %}a note{% endcomment %}{# another #}") == []
    assert (
        untranslated_in(
            "{% load i18n %}<h1 title=\"{% translate 'Bills' %}\">{% translate 'Bills' %}</h1>"
            "{% blocktranslate count n=k %}one bill{% plural %}{{ n }} bills"
            "{% endblocktranslate %}"
        )
        == []
    )


@pytest.mark.parametrize(
    "path", template_files(), ids=lambda path: str(path.relative_to(BASE)).replace("/", ":")
)
def test_template_has_no_untranslated_text(path):
    assert untranslated_in(path.read_text(encoding="utf-8")) == []


# --- Python ------------------------------------------------------------------------------------

# Calls whose positional string arguments a person reads.
SHOWN_CALLS = {
    "success",  # messages.success(request, "…") and its siblings
    "info",
    "warning",
    "error",
    "add_message",
    "message_user",  # ModelAdmin.message_user(request, "…")
    "ValidationError",
    "PermissionDenied",
    "NotFound",
    "ParseError",
    "NotAuthenticated",
    "AuthenticationFailed",
    "MethodNotAllowed",
    "Throttled",
    "APIException",
    "Conflict",
    "HttpResponseBadRequest",
    "HttpResponseForbidden",
    "HttpResponseNotFound",
}
# Keyword arguments and class attributes that a person reads.
SHOWN_NAMES = {
    "verbose_name",
    "verbose_name_plural",
    "label",
    "help_text",
    "empty_label",
    "description",
    "short_description",
    "default_detail",
    "detail",
    "message",
    "title",
    "body",  # notice_send(title=…, body=…)
    "empty_value_display",
    "site_header",
    "site_title",
    "index_title",
}
# Model fields take their verbose name as the first positional argument (relations take the
# model there, and their verbose name as a keyword).
FIELD_CALL = re.compile(r".*Field")
# In the API modules, help_text and description document the OpenAPI schema: developer
# documentation, in English like the field names it explains. Error messages there still count.
SCHEMA_DOCS = {"help_text", "description"}
LOGGERS = {"logger", "log", "logging"}
GETTEXT = {"_", "gettext", "gettext_lazy", "pgettext", "pgettext_lazy"}
COUNTED = re.compile(r"%\((count|n|number_of)\)")


def _is_bare_text(node: ast.AST) -> bool:
    """A literal (or an f-string, or a "…" % x / "…".format(x)) that holds words."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return bool(LETTER.search(node.value)) and not _looks_like_code(node.value)
    if isinstance(node, ast.JoinedStr):
        return any(_is_bare_text(part) for part in node.values if isinstance(part, ast.Constant))
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Mod):
        return _is_bare_text(node.left)
    if (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr == "format"
    ):
        return _is_bare_text(node.func.value)
    return False


def _looks_like_code(text: str) -> bool:
    # Identifiers such as error codes ("not_payable"), dotted names and URLs are not language;
    # a single plain word ("name") is, since that is what a verbose name looks like.
    return bool(re.fullmatch(r"[a-z0-9]+(?:[_.:/-][a-z0-9]+)+", text))


def _name(func: ast.AST) -> str:
    if isinstance(func, ast.Attribute):
        return func.attr
    if isinstance(func, ast.Name):
        return func.id
    return ""


def _receiver(func: ast.AST) -> str:
    if isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name):
        return func.value.id
    return ""


def untranslated_python(source: str, filename: str = "<source>") -> list[str]:
    shown_names = SHOWN_NAMES - SCHEMA_DOCS if filename.endswith("api.py") else SHOWN_NAMES
    found: list[tuple[int, str]] = []
    tree = ast.parse(source, filename)
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            name = _name(node.func)
            if _receiver(node.func) in LOGGERS:
                continue  # logs are for operators and stay in English
            if (
                name in GETTEXT
                and node.args
                and isinstance(node.args[0], ast.Constant)
                and COUNTED.search(str(node.args[0].value))
            ):
                # "%(count)s bills waived." reads "1 bills waived.": a count needs ngettext.
                found.append((node.lineno, f"{name}({node.args[0].value!r}) needs ngettext"))
            suspects: list[ast.AST] = []
            if name in SHOWN_CALLS:
                suspects += node.args
            if FIELD_CALL.fullmatch(name) and node.args:
                suspects.append(node.args[0])
            suspects += [kw.value for kw in node.keywords if kw.arg in shown_names]
            # choices=[("value", "Label"), …]: the label is shown (in the API modules it is
            # schema documentation, see SCHEMA_DOCS).
            if shown_names is SHOWN_NAMES:
                suspects += [
                    pair.elts[-1]
                    for kw in node.keywords
                    if kw.arg == "choices" and isinstance(kw.value, ast.List | ast.Tuple)
                    for pair in kw.value.elts
                    if isinstance(pair, ast.Tuple) and len(pair.elts) == 2
                ]
            # ValidationError({"field": "message"}) and Response({"detail": "…"})
            for arg in [*node.args, *(kw.value for kw in node.keywords)]:
                if isinstance(arg, ast.Dict) and (name in SHOWN_CALLS or name == "Response"):
                    suspects += [
                        value
                        for key, value in zip(arg.keys, arg.values, strict=True)
                        if name != "Response"
                        or (isinstance(key, ast.Constant) and key.value in {"detail", "message"})
                    ]
            found += [
                (suspect.lineno, ast.unparse(suspect))
                for suspect in suspects
                if _is_bare_text(suspect)
            ]
        elif isinstance(node, ast.Assign):
            targets = [_name(target) for target in node.targets]
            if any(target in shown_names for target in targets) and _is_bare_text(node.value):
                found.append((node.lineno, ast.unparse(node.value)))
        elif isinstance(node, ast.ClassDef) and any(
            _name(base) in {"TextChoices", "IntegerChoices", "Choices"} for base in node.bases
        ):
            # Choice labels: MEMBER = "value", "Label"  — the label is shown.
            for item in node.body:
                if (
                    isinstance(item, ast.Assign)
                    and isinstance(item.value, ast.Tuple)
                    and len(item.value.elts) >= 2
                    and _is_bare_text(item.value.elts[-1])
                ):
                    found.append((item.lineno, ast.unparse(item.value.elts[-1])))
    return [f"{filename}:{line}: {text[:80]}" for line, text in sorted(set(found))]


def python_files() -> list[Path]:
    files = []
    for app in APPS:
        for path in sorted((BASE / app).rglob("*.py")):
            parts = set(path.relative_to(BASE).parts)
            # Tests assert on text, migrations freeze it, demo data is data, not interface.
            if parts & {"tests", "migrations"} or path.name in {"demo.py"}:
                continue
            files.append(path)
    return files


def test_the_python_check_catches_what_it_should():
    sample = """
from django.contrib import messages
class Status(models.TextChoices):
    OPEN = "open", "Open"
    DONE = "done", _("Done")
class Thing(models.Model):
    name = models.CharField("name", max_length=5)
    other = models.CharField(_("other"), max_length=5, help_text="Some help")
    class Meta:
        verbose_name = "thing"
def view(request):
    messages.success(request, "Saved.")
    messages.success(request, _("Saved."))
    messages.error(request, f"Failed for {request.user}")
    logger.info("not for people %s", 1)
    raise ValidationError({"amount": "Too much"}, code="too_much")
    raise PermissionDenied("Not yours")
    return Response({"detail": "Gone", "code": "gone"})
def more(request):
    return HttpResponseBadRequest("Bad month")
    form = forms.ChoiceField(choices=[("a", "Apples"), ("b", _("Pears"))])
    notice_send(user=u, title=_("Hi"), body="Your bill")
    messages.info(request, _("%(count)s bills paid.") % {"count": 2})
"""
    found = [line.split(": ", 1)[1] for line in untranslated_python(sample)]
    assert found == [
        "'Open'",
        "'name'",
        "'Some help'",
        "'thing'",
        "'Saved.'",
        "f'Failed for {request.user}'",
        "'Too much'",
        "'Not yours'",
        "'Gone'",
        "'Bad month'",
        "'Apples'",
        "'Your bill'",
        "_('%(count)s bills paid.') needs ngettext",
    ]


def test_python_strings_shown_to_people_go_through_gettext():
    found = []
    for path in python_files():
        found += untranslated_python(path.read_text(encoding="utf-8"), str(path.relative_to(BASE)))
    assert found == []
