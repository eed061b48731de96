"""The estate's public page and its lobby poster: no sign-in (see alliance/public.py).

Both are addressed by the estate's `public_token`, never by its id: the id is sequential, and a
public page at /estates/<id>/ would let anyone walk through every estate of the portal. The
token is printed on the poster in the lobby, so whoever stands in the estate can read its page,
and nobody can list the others. An unknown token is 404.

The poster is public too: it shows the estate's name, the QR code and a sentence, all of which
the public page shows anyway, and it lets a committee member print it as well as the centre.
"""

from urllib.parse import urljoin

import segno
from django.conf import settings
from django.http import Http404
from django.shortcuts import render
from django.urls import reverse
from django.utils.safestring import mark_safe
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.http import require_safe

from alliance import public
from community.models import Community

# A spending's state as the page says it (billing.models.PublicFundSpend.Status).
SPEND_STATUS = {
    "proposed": gettext_lazy("put to the owners' vote"),
    "approved": gettext_lazy("approved by the owners"),
    "spent": gettext_lazy("paid from the fund"),
}


def _estate(token: str) -> Community:
    try:
        return public.community_by_token(token)
    except Community.DoesNotExist:
        raise Http404 from None


def public_url(community: Community) -> str:
    """The page's absolute address, as the QR code carries it."""
    return urljoin(settings.SITE_URL, reverse("public-estate", args=[community.public_token]))


@require_safe
def estate(request, token: str):
    community = _estate(token)
    figures = public.estate_figures(community=community)
    scorecard = figures.scorecard
    components = []
    if scorecard is not None:
        components = [
            {**row, "label": public.component_label(row["name"])} for row in scorecard["components"]
        ]
    context = {
        "community": community,
        "figures": figures,
        "scorecard": scorecard,
        "components": components,
        "spends": [
            {**spend, "status_label": SPEND_STATUS.get(spend["status"], spend["status"])}
            for spend in figures.fund_spends
        ],
        "burst_size": settings.ALLIANCE_RATING_BURST_SIZE,
    }
    return render(request, "alliance/public_estate.html", context)


@require_safe
def poster(request, token: str):
    community = _estate(token)
    url = public_url(community)
    svg = segno.make(url, error="m").svg_inline(
        scale=1, border=4, omitsize=True, dark="#1f2328", title=_("QR code of the public page")
    )
    # segno's own markup: paths and our translated title, no user input.
    context = {"community": community, "url": url, "qr": mark_safe(svg)}
    return render(request, "alliance/public_poster.html", context)
