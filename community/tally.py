"""The dual majority of an owners' decision (民法典 第278条), worked out once, exactly.

Owners are counted twice: by head, one per household (one 专有部分 counts as one owner; the
Supreme People's Court's interpretation on 建筑物区分所有权, art. 9) and by floor area (the
专有部分面积 of the register, art. 8). A rule has two thresholds, each to be met by head AND by
area:

- participation, over all owners of the community: by default at least two thirds took part;
- approval, over the owners who took part: by default more than half agree (“过半数”; special
  matters such as spending the maintenance fund need at least three quarters, “四分之三以上”).

“以上” includes the share itself (民法典 第1259条), “过半数” does not: a Threshold says which.

Everything is computed in Fractions built exactly from integer heads and Decimal areas, so two
thirds is two thirds; shares are rounded (half up, 4 places) only when shown.
"""

from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from fractions import Fraction

SHOWN_PLACES = 4


@dataclass(frozen=True)
class Threshold:
    share: Fraction
    inclusive: bool  # True: at least `share` (以上); False: more than `share` (过半数)

    def met(self, part: int | Decimal, whole: int | Decimal) -> bool:
        if not whole:
            return False
        ratio = Fraction(part) / Fraction(whole)
        return ratio >= self.share if self.inclusive else ratio > self.share


@dataclass(frozen=True)
class Rule:
    approval: Threshold
    participation: Threshold


ORDINARY = Rule(
    approval=Threshold(Fraction(1, 2), inclusive=False),
    participation=Threshold(Fraction(2, 3), inclusive=True),
)
SPECIAL = Rule(
    approval=Threshold(Fraction(3, 4), inclusive=True),
    participation=Threshold(Fraction(2, 3), inclusive=True),
)


@dataclass(frozen=True)
class Count:
    heads: int
    area: Decimal


@dataclass(frozen=True)
class OptionResult:
    key: Hashable
    votes: Count
    share_of_participating_heads: Fraction | None
    share_of_participating_area: Fraction | None
    share_of_total_heads: Fraction | None
    share_of_total_area: Fraction | None
    approved_by_heads: bool
    approved_by_area: bool

    @property
    def approved(self) -> bool:
        return self.approved_by_heads and self.approved_by_area


@dataclass(frozen=True)
class Result:
    options: list[OptionResult]
    participating: Count
    total: Count
    turnout_heads: Fraction | None
    turnout_area: Fraction | None
    participation_met_by_heads: bool
    participation_met_by_area: bool
    passed: bool
    adopted: Hashable | None  # the key of the option the owners decided for, if any

    @property
    def participation_met(self) -> bool:
        return self.participation_met_by_heads and self.participation_met_by_area


def _share(part, whole) -> Fraction | None:
    return Fraction(part) / Fraction(whole) if whole else None


def tally(
    *,
    votes: Sequence[tuple[Hashable, Count]],
    total: Count,
    rule: Rule,
    approving: Hashable | None = None,
) -> Result:
    """Decide a consultation from each option's votes (households, their area) and the
    electorate (`total`: every household of the community, and their area).

    With an `approving` option (e.g. 同意), the proposal passes when participation is met and
    that option reaches the approval threshold by head and by area. Without one (a choice between
    alternatives) it passes when an option reaches it, and that option is adopted. Approval is
    at least one half (see Consultation's constraint), so at most one option can reach it.
    """
    heads = sum(count.heads for _, count in votes)
    area = sum((count.area for _, count in votes), Decimal("0"))
    participating = Count(heads=heads, area=area)
    options = [
        OptionResult(
            key=key,
            votes=count,
            share_of_participating_heads=_share(count.heads, heads),
            share_of_participating_area=_share(count.area, area),
            share_of_total_heads=_share(count.heads, total.heads),
            share_of_total_area=_share(count.area, total.area),
            approved_by_heads=rule.approval.met(count.heads, heads),
            approved_by_area=rule.approval.met(count.area, area),
        )
        for key, count in votes
    ]
    by_heads = rule.participation.met(heads, total.heads)
    by_area = rule.participation.met(area, total.area)
    reached = [option.key for option in options if option.approved]
    if approving is not None:
        adopted = approving if approving in reached else None
    else:
        adopted = reached[0] if len(reached) == 1 else None
    passed = by_heads and by_area and adopted is not None
    return Result(
        options=options,
        participating=participating,
        total=total,
        turnout_heads=_share(heads, total.heads),
        turnout_area=_share(area, total.area),
        participation_met_by_heads=by_heads,
        participation_met_by_area=by_area,
        passed=passed,
        adopted=adopted if passed else None,
    )


def shown(value: Fraction | None, places: int = SHOWN_PLACES) -> Decimal | None:
    """A share as a Decimal rounded half up to `places` (shares are never negative)."""
    if value is None:
        return None
    scaled = value * 10**places
    whole, rest = divmod(scaled.numerator, scaled.denominator)
    if 2 * rest >= scaled.denominator:
        whole += 1
    return (Decimal(whole) / 10**places).quantize(Decimal(1).scaleb(-places))


def share_text(share: Fraction) -> str:
    """ "2/3" for two thirds: how the API writes a rule's share."""
    return f"{share.numerator}/{share.denominator}"
