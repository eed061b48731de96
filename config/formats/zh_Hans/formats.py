"""Chinese formats: Django's zh_Hans formats, with two changes (FORMAT_MODULE_PATH puts this module
first; whatever is not set here comes from django/conf/locale/zh_Hans/formats.py).

- Money and large numbers are grouped by thousands with a comma ("¥1,234.50"), as Chinese bank
  statements, receipts and payment apps print them. Django's zh_Hans groups by four with no
  separator, which prints no grouping at all.
- Month and day without a leading zero ("9月5日", not "09月5日"), like DATE_FORMAT "Y年n月j日".

USE_THOUSAND_SEPARATOR stays off: it would group every number a template prints, ids in URLs
and form values included. Money and counts ask for grouping explicitly (billing.money.money_text,
the `money` filter, humanize's intcomma).
"""

THOUSAND_SEPARATOR = ","
NUMBER_GROUPING = 3
MONTH_DAY_FORMAT = "n月j日"  # 9月5日
