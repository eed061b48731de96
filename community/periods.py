"""Billing and evaluation periods: one calendar month, written "YYYY-MM" everywhere (API, URLs,
database). A Period is exact and ordered; its days are dates in the project's time zone."""

import calendar
import re
from dataclasses import dataclass
from datetime import date

from django.utils import timezone

_PATTERN = re.compile(r"^(\d{4})-(0[1-9]|1[0-2])$")


@dataclass(frozen=True, order=True)
class Period:
    year: int
    month: int

    def __post_init__(self):
        if not (1 <= self.month <= 12 and 1900 <= self.year <= 9999):
            raise ValueError(f"not a period: {self.year}-{self.month}")

    @classmethod
    def parse(cls, text: str) -> "Period":
        """Parse "YYYY-MM"; raises ValueError for anything else (e.g. "2019-7", "2019-13")."""
        match = _PATTERN.match(text or "")
        if not match:
            raise ValueError(f"period must be YYYY-MM, got {text!r}")
        return cls(int(match.group(1)), int(match.group(2)))

    @classmethod
    def containing(cls, day: date) -> "Period":
        return cls(day.year, day.month)

    @classmethod
    def current(cls) -> "Period":
        return cls.containing(timezone.localdate())

    def __str__(self) -> str:
        return f"{self.year:04d}-{self.month:02d}"

    @property
    def first_day(self) -> date:
        return date(self.year, self.month, 1)

    @property
    def last_day(self) -> date:
        return date(self.year, self.month, calendar.monthrange(self.year, self.month)[1])

    def day(self, number: int) -> date:
        """The given day of this month, clamped to its last day."""
        return date(self.year, self.month, min(number, self.last_day.day))

    def plus(self, months: int) -> "Period":
        index = self.year * 12 + (self.month - 1) + months
        return Period(index // 12, index % 12 + 1)

    def next(self) -> "Period":
        return self.plus(1)

    def previous(self) -> "Period":
        return self.plus(-1)
