from datetime import date

import pytest

from community.periods import Period


@pytest.mark.parametrize(
    "text", ["2019-7", "2019-13", "2019-00", "19-07", "", "2019-07-01", "abcd-ef"]
)
def test_parse_rejects_anything_but_yyyy_mm(text):
    with pytest.raises(ValueError):
        Period.parse(text)


def test_parse_and_format_round_trip():
    assert str(Period.parse("2019-08")) == "2019-08"


def test_month_arithmetic_crosses_years():
    assert Period(2019, 12).next() == Period(2020, 1)
    assert Period(2020, 1).previous() == Period(2019, 12)
    assert Period(2019, 8).plus(24) == Period(2021, 8)
    assert Period(2019, 8).plus(-20) == Period(2017, 12)


def test_days_of_a_month():
    february = Period(2020, 2)
    assert (february.first_day, february.last_day) == (date(2020, 2, 1), date(2020, 2, 29))
    assert february.day(30) == date(2020, 2, 29)
    assert Period.containing(date(2019, 8, 31)) == Period(2019, 8)


def test_periods_order_in_time():
    assert sorted([Period(2020, 1), Period(2019, 12), Period(2019, 2)]) == [
        Period(2019, 2),
        Period(2019, 12),
        Period(2020, 1),
    ]
