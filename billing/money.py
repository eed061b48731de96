"""Money is Decimal yuan with two places (fen), everywhere: database numeric(…, 2), services and
the API's strings ("1234.50"). Never a float: Decimal refuses to mix with one, and `fen` rounds
half-up exactly once, where an amount is computed."""

from collections.abc import Sequence
from decimal import ROUND_HALF_UP, Decimal

from django.utils import formats

FEN = Decimal("0.01")
ZERO = Decimal("0.00")


def fen(value: Decimal | int | str) -> Decimal:
    """Round to the fen, half up (0.005 -> 0.01), the way a receipt is rounded."""
    if isinstance(value, float):
        raise TypeError("money must not be a float")
    return Decimal(value).quantize(FEN, rounding=ROUND_HALF_UP)


def fee(*, area: Decimal, rate: Decimal, months: int = 1) -> Decimal:
    """A property fee: floor area (m²) × rate (yuan/m²/month) × months, rounded once."""
    return fen(Decimal(area) * Decimal(rate) * months)


def split(total: Decimal, share: Decimal) -> tuple[Decimal, Decimal]:
    """Split `total` into (share part, rest), the share part rounded half-up to the fen and the
    rest taking the difference, so the two always add up to `total` exactly."""
    part = fen(total * share)
    return part, total - part


def money_text(amount: Decimal | int | str | None) -> str:
    """An amount as the reader's language writes money, to the fen: "¥1,234.50" (zh-hans and en
    both group by thousands, see config/formats), "-¥12.00" when negative; "" for no amount.
    Exact all the way: Django's number_format formats a Decimal without a float."""
    if amount is None or amount == "":
        return ""
    text = formats.number_format(fen(amount), 2, use_l10n=True, force_grouping=True)
    return f"-¥{text[1:]}" if text.startswith("-") else f"¥{text}"


def allocate(total: Decimal, weights: Sequence[Decimal]) -> list[Decimal]:
    """Split `total` into parts in proportion to `weights`, to the fen, the parts adding up to
    `total` exactly (largest remainder): each part is its exact share rounded down to the fen,
    and the fen left over go one each to the parts with the largest remainders, ties to the
    earlier weight. When total <= sum(weights) no part exceeds its weight, since a part is at
    most its exact share rounded up, and the weight is a whole number of fen at least as big.

    Payouts use it to give an estate's items exactly round(collected × share) in all, where
    rounding each item on its own would drift by up to half a fen per item; refunds to take an
    item's money back from where it went in proportion. billing.services repeats the same
    arithmetic in SQL for PostgreSQL; a test checks the two agree fen for fen."""
    total_fen = _to_fen(total)
    weight_fen = [_to_fen(weight) for weight in weights]
    if any(weight < 0 for weight in weight_fen):
        raise ValueError("weights must not be negative")
    whole = sum(weight_fen)
    if whole == 0:
        if total_fen:
            raise ValueError("cannot allocate an amount over nothing")
        return [ZERO for _ in weight_fen]
    shares = [divmod(total_fen * weight, whole) for weight in weight_fen]
    parts = [base for base, _ in shares]
    left = total_fen - sum(parts)
    by_remainder = sorted(range(len(shares)), key=lambda i: (-shares[i][1], i))
    for i in by_remainder[:left]:
        parts[i] += 1
    return [Decimal(part).scaleb(-2).quantize(FEN) for part in parts]


def _to_fen(amount: Decimal) -> int:
    if isinstance(amount, float):
        raise TypeError("money must not be a float")
    value = Decimal(amount)
    if value != value.quantize(FEN):
        raise ValueError(f"not a whole number of fen: {amount}")
    return int(value.scaleb(2))
