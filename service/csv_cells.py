"""CSV cells that a spreadsheet would not run as formulas (CSV/formula injection).

A cell starting with `=`, `+`, `-`, `@`, a tab or a carriage return gets a leading `'`, which
spreadsheets show as text. So that every value survives export then import, a value that
already starts with quotes followed by such a character gets one more quote, and the importer
removes exactly one leading quote before such a character: `-5` is written `'-5` and read
back as `-5`; `'=x` is written `''=x` and read back as `'=x`.
"""

from __future__ import annotations

import re

QUOTE = "'"
UTF8_BOM = "\ufeff"
_NEEDS_QUOTE = re.compile(r"'*[=+\-@\t\r]")
_QUOTED = re.compile(r"'+[=+\-@\t\r]")


def neutralised(value) -> str:
    """The cell text for `value` (None is an empty cell)."""
    text = "" if value is None else str(value)
    return QUOTE + text if _NEEDS_QUOTE.match(text) else text


def neutralised_row(row: dict) -> dict:
    return {column: neutralised(value) for column, value in row.items()}


def restored(cell: str) -> str:
    """The value an exported cell stands for: `neutralised` undone."""
    return cell[1:] if _QUOTED.match(cell) else cell
