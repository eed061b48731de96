"""The estate workbook in Django admin (community/imports.py): upload → dry run → confirm, an
export of the centre's estates, and the empty template. Mixed into CommunityAdmin.

django-import-export's own admin import handles one model per file (a workbook's first sheet),
so one page drives its resources over every sheet of the workbook instead, with the same flow:
the dry run's report per row, the uploaded file kept in the library's temporary storage, and a
signed confirmation that imports exactly that file. A centre admin imports into their own
centre only; a superuser chooses the centre.
"""

import os
import tempfile

from django import forms
from django.contrib import messages
from django.core import signing
from django.http import HttpResponse
from django.shortcuts import redirect, render
from django.urls import path, reverse
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from import_export.tmp_storages import TempFolderStorage

from community.imports import (
    estate_workbook_export,
    estate_workbook_import,
    estate_workbook_template,
)
from community.models import Centre, Role, RoleMembership

XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
MAX_BYTES = 20 * 1024 * 1024  # a 5,000-household workbook is well under 1 MB
SALT = "community.import_admin"
CONFIRM_SECONDS = 3600


def importing_centres(user):
    """The centres `user` may import into and export from."""
    if user.is_superuser:
        return Centre.objects.all()
    return Centre.objects.filter(
        pk__in=RoleMembership.objects.filter(user=user, role=Role.CENTRE_ADMIN).values("centre_id")
    )


def may_import(user) -> bool:
    return (
        user.is_active
        and user.is_staff
        and user.has_perms(["community.add_household", "community.add_residency"])
        and importing_centres(user).exists()
    )


class WorkbookForm(forms.Form):
    centre = forms.ModelChoiceField(label=gettext_lazy("Centre"), queryset=Centre.objects.none())
    file = forms.FileField(
        label=gettext_lazy("Estate workbook (.xlsx)"),
        help_text=gettext_lazy("Fill in the template; sheets you do not need may be left out."),
        widget=forms.ClearableFileInput(attrs={"accept": ".xlsx," + XLSX}),
    )

    def __init__(self, *args, centres, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["centre"].queryset = centres
        if centres.count() == 1:
            self.fields["centre"].initial = centres.first().pk

    def clean_file(self):
        upload = self.cleaned_data["file"]
        if upload.size > MAX_BYTES:
            raise forms.ValidationError(_("The file is larger than 20 MB."))
        return upload


def _stored_path(name: str) -> str:
    return os.path.join(tempfile.gettempdir(), os.path.basename(name))


class EstateWorkbookAdminMixin:
    change_list_template = "admin/community/community/change_list.html"

    def get_urls(self):
        view = self.admin_site.admin_view
        return [
            path(
                "import-workbook/",
                view(self.import_workbook_view),
                name="community_community_import_workbook",
            ),
            path(
                "export-workbook/",
                view(self.export_workbook_view),
                name="community_community_export_workbook",
            ),
            path(
                "workbook-template/",
                view(self.workbook_template_view),
                name="community_community_workbook_template",
            ),
            *super().get_urls(),
        ]

    def changelist_view(self, request, extra_context=None):
        extra = {"may_import_workbook": may_import(request.user), **(extra_context or {})}
        return super().changelist_view(request, extra_context=extra)

    def _render(self, request, form, report=None, token=""):
        return render(
            request,
            "admin/community/community/import_workbook.html",
            {
                **self.admin_site.each_context(request),
                "opts": self.model._meta,
                "title": _("Import an estate workbook"),
                "form": form,
                "report": report,
                "token": token,
            },
        )

    def import_workbook_view(self, request):
        if not may_import(request.user):
            return redirect("admin:index")
        centres = importing_centres(request.user)
        if request.method == "POST" and "token" in request.POST:
            return self._confirm(request, centres)
        form = WorkbookForm(request.POST or None, request.FILES or None, centres=centres)
        if request.method != "POST" or not form.is_valid():
            return self._render(request, form)
        data = form.cleaned_data["file"].read()
        centre = form.cleaned_data["centre"]
        report = estate_workbook_import(data=data, centre=centre, user=request.user, dry_run=True)
        token = ""
        if report.ok:
            storage = TempFolderStorage(read_mode="rb")
            storage.save(data)
            token = signing.dumps(
                {
                    "file": os.path.basename(storage.name),
                    "centre": centre.pk,
                    "user": request.user.pk,
                },
                salt=SALT,
            )
        return self._render(request, form, report, token)

    def _confirm(self, request, centres):
        form = WorkbookForm(centres=centres)
        try:
            signed = signing.loads(request.POST["token"], salt=SALT, max_age=CONFIRM_SECONDS)
        except signing.BadSignature:
            signed = None
        centre = centres.filter(pk=(signed or {}).get("centre")).first()
        stored = _stored_path(signed["file"]) if signed else ""
        if (
            signed is None
            or signed.get("user") != request.user.pk
            or centre is None
            or not os.path.exists(stored)
        ):
            messages.error(request, _("This dry run has expired: upload the workbook again."))
            return self._render(request, form)
        storage = TempFolderStorage(name=stored, read_mode="rb")
        data = storage.read()
        report = estate_workbook_import(data=data, centre=centre, user=request.user, dry_run=False)
        if not report.committed:
            # The estate changed since the dry run: nothing was written; show why.
            return self._render(request, form, report)
        storage.remove()
        messages.success(
            request,
            _(
                "The workbook is in: %(new)d rows created, %(update)d changed, "
                "%(skip)d already up to date."
            )
            % {
                "new": report.total("new"),
                "update": report.total("update"),
                "skip": report.total("skip"),
            },
        )
        return redirect(reverse("admin:community_community_changelist"))

    def export_workbook_view(self, request):
        if not may_import(request.user):
            return redirect("admin:index")
        centres = importing_centres(request.user)
        wanted = request.GET.get("centre", "")
        centre = (wanted.isdigit() and centres.filter(pk=wanted).first()) or centres.first()
        communities = self.get_queryset(request).filter(centre=centre)
        chosen = request.GET.getlist("community")
        if chosen:
            communities = communities.filter(pk__in=[c for c in chosen if c.isdigit()])
        response = HttpResponse(
            estate_workbook_export(centre=centre, communities=communities), content_type=XLSX
        )
        response["Content-Disposition"] = 'attachment; filename="linli-estates.xlsx"'
        return response

    def workbook_template_view(self, request):
        if not may_import(request.user):
            return redirect("admin:index")
        response = HttpResponse(estate_workbook_template(), content_type=XLSX)
        response["Content-Disposition"] = 'attachment; filename="linli-import-template.xlsx"'
        return response
