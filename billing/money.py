"""Money is Decimal yuan with two places (fen), everywhere: database numeric(…, 2), services and
the API's strings ("1234.50"). Never a float: Decimal refuses to mix with one, and `fen` rounds
half-up exactly once, where an amount is computed."""

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
