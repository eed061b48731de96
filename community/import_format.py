"""The estate workbook's format: sheet names, column headers and the words a cell may hold.

These are Chinese on purpose and are not translated: they are a data format that centres fill in
with their own spreadsheets (like a payment provider's bill columns), so they must read the same
whatever language the admin pages are shown in. They live in this one module, which
tests/test_i18n.py allows to hold Chinese literals; the messages about them go through gettext.
"""

# Sheets, in the order they are imported: each may refer to what the sheets before it create.
SHEET_COMMUNITIES = "小区"
SHEET_BUILDINGS = "楼栋"
SHEET_HOUSEHOLDS = "房屋"
SHEET_RESIDENTS = "住户"
SHEET_ARREARS = "期初欠费"
SHEET_METER_READINGS = "抄表"

# Columns.
COMMUNITY = "小区"
ADDRESS = "地址"
COMPANY = "物业公司"
BUILDING = "楼栋"
UNIT = "单元/房号"
AREA = "面积(㎡)"
NAME = "姓名"
PHONE = "手机号"
RELATION = "关系"
ARREARS_PERIOD = "欠费期间"
ARREARS_AMOUNT = "欠费金额"
METER = "表计"
PERIOD = "期间"
PREVIOUS_READING = "上期读数"
READING = "本期读数"

# The relation column: the Chinese word a centre writes, and the value it stands for. The
# English values are accepted too (a file exported by a script, say).
RELATION_WORDS = {
    "业主": "owner",
    "租户": "tenant",
    "家属": "family",
    "owner": "owner",
    "tenant": "tenant",
    "family": "family",
}
RELATION_LABELS = {"owner": "业主", "tenant": "租户", "family": "家属"}

# Example rows of the template workbook, one per sheet (they show the expected shapes).
EXAMPLES = {
    SHEET_COMMUNITIES: [["翰林苑", "衢州市柯城区示例路1号", "衢州信安物业服务有限公司"]],
    SHEET_BUILDINGS: [["翰林苑", "1幢"]],
    SHEET_HOUSEHOLDS: [["翰林苑", "1幢", "1-101", "89.50"]],
    SHEET_RESIDENTS: [["翰林苑", "1幢", "1-101", "张三", "13800138000", "业主"]],
    SHEET_ARREARS: [["翰林苑", "1幢", "1-101", "2026-06", "356.40"]],
    SHEET_METER_READINGS: [["翰林苑", "1幢", "1-101", "water", "2026-11", "120.5", "131.0"]],
}
