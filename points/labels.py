"""Words for points, in the reader's language: why an entry was made, and the reputation levels.

Entries store only language-neutral facts (kind, source, a detail such as "2019-08"); the
sentence is made when it is read, so a resident reading in English or Chinese sees their own
language, and a later change of wording never needs a data migration.
"""

from dataclasses import dataclass

from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

AWARD_REASONS = {
    "payment_on_time": _("Paid the property fee on time"),
    "prepayment": _("Prepaid the property fee for %(detail)s months"),
    "service_rating": _("Rated the property service of %(detail)s"),
    "ticket_rating": _("Rated a resolved ticket"),
    "volunteer_hour": _("Volunteering: %(detail)s h"),
    "activity_checkin": _("Took part in a community activity"),
    "ticket_within_sla": _("A ticket handled within its deadlines"),
    "ticket_five_stars": _("A 5-star rating from a resident"),
    "scorecard": _("The monthly scorecard of %(detail)s"),
}


def _award_reason(source: str, detail: str) -> str:
    template = AWARD_REASONS.get(source)
    if template is None:
        return source
    text = str(template)
    return text % {"detail": detail} if "%(detail)s" in text else text


def entry_reason(*, kind: str, source: str, detail: str) -> str:
    if kind == "award":
        return _award_reason(source, detail)
    if kind == "clawback":
        return gettext("Taken back: %(reason)s") % {"reason": _award_reason(source, detail)}
    if kind == "redemption":
        return gettext("Redeemed: %(reward)s") % {"reward": detail}
    if kind == "redemption_refund":
        return gettext("Redemption cancelled, points returned: %(reward)s") % {"reward": detail}
    return source


# Reputation bands: (the least reputation of the band, its name). Reputation is standing, never
# spent, so the bands only ever go up unless an award is taken back.
LEVELS = [
    (0, _("Newcomer")),
    (20, _("Good neighbour")),
    (60, _("Trusted neighbour")),
    (150, _("Model neighbour")),
    (300, _("Star neighbour")),
]


@dataclass(frozen=True)
class Level:
    name: str
    floor: int
    next_name: str | None
    next_at: int | None


def level_for(reputation: int) -> Level:
    """The band `reputation` falls in, and the next one up (None at the top)."""
    index = 0
    for i, (floor, _name) in enumerate(LEVELS):
        if reputation >= floor:
            index = i
    floor, name = LEVELS[index]
    if index + 1 < len(LEVELS):
        next_at, next_name = LEVELS[index + 1]
        return Level(str(name), floor, str(next_name), next_at)
    return Level(str(name), floor, None, None)
