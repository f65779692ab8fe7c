"""CSV the product writes, safe to open in a spreadsheet; and the strict reading of CSV it imports.

**Writing** (OWASP "CSV injection"): a cell that starts with ``=``, ``+``, ``-``, ``@``, a tab or a carriage return
could be run as a formula by Excel or LibreOffice (``=HYPERLINK(…)``, ``@SUM(…)``); vendor names come from JAGGAER,
where suppliers type them. Such a cell is written with a single quote in front (``'=HYPERLINK(…)``), which makes the
spreadsheet show it as text. Every CSV writer of the product goes through :func:`writer`.

One exception, on purpose: a cell that is a plain decimal number (``-12.50``, ``+3``, ``-0.5``; digits with an
optional sign and decimal point, nothing else) is written as is. A number literal cannot call a function or refer to
a cell, so it is not a formula, and quoting it would turn amounts and negative codes into text in every spreadsheet
(breaking sums) for no protection. Anything more (``-1+1``, ``-2*A1``, ``+cmd|…``) is escaped.

**Reading back**: :func:`unescape_cell` removes that quote again (a cell that starts with ``'`` followed by one of
the characters above), so an exported file imports unchanged. The cost: a value that really starts with ``'=`` (or
``'+``, ``'-``, ``'@``) loses its quote on import — none of the mapped codes, names or numbers do.

:func:`read_rows` reads strictly: an unterminated quote, text after a closing quote, a value spanning lines (the
sign of a quote that swallowed the next row) and a row with a different number of cells than the header are errors
naming the row (the header is row 1) and the line of the file.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterable, Iterator, Sequence
from typing import Any, TextIO

#: Characters that make a spreadsheet read a cell as a formula (OWASP).
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_PLAIN_NUMBER = re.compile(r"^[+-]?(?:\d+(?:\.\d*)?|\.\d+)$")


def escape_cell(value: Any) -> Any:
    """The cell as it may be written: ``'`` in front of a text that starts like a formula; other values as is."""
    if not isinstance(value, str) or not value.startswith(FORMULA_START) or _PLAIN_NUMBER.match(value):
        return value
    return "'" + value


def unescape_cell(value: str) -> str:
    """Undo :func:`escape_cell` (for imports of files the product exported)."""
    if value.startswith("'") and value[1:2] in FORMULA_START and value[1:2] != "":
        return value[1:]
    return value


class SafeWriter:
    """``csv.writer`` whose every cell goes through :func:`escape_cell`."""

    def __init__(self, out: TextIO, **kwargs: Any) -> None:
        kwargs.setdefault("lineterminator", "\n")
        self._writer = csv.writer(out, **kwargs)
        # Python's csv (3.11) leaves a carriage return inside a value unquoted when lines end in "\n" alone, and
        # the file would not read back: a row holding one is written with every value quoted.
        self._quote_all = csv.writer(out, **{**kwargs, "quoting": csv.QUOTE_ALL})

    def writerow(self, row: Iterable[Any]) -> Any:
        cells = [escape_cell(cell) for cell in row]
        if any(isinstance(cell, str) and "\r" in cell for cell in cells):
            return self._quote_all.writerow(cells)
        return self._writer.writerow(cells)

    def writerows(self, rows: Iterable[Iterable[Any]]) -> None:
        for row in rows:
            self.writerow(row)


def writer(out: TextIO, **kwargs: Any) -> SafeWriter:
    """The only way the product writes CSV."""
    return SafeWriter(out, **kwargs)


def read_table(text: str) -> tuple[list[tuple[int, list[str]]], list[str]]:
    """``(rows, problems)``: ``(row number, cells)`` of every well-formed record, the header first (row 1), cells
    unescaped; blank rows are skipped (but numbered, as a spreadsheet does). A row with another number of cells
    than the header is a problem (and left out); a quote that is not closed ends the reading (what follows cannot
    be trusted)."""
    reader = csv.reader(io.StringIO(text.lstrip("\ufeff")), strict=True)
    rows: list[tuple[int, list[str]]] = []
    problems: list[str] = []
    width: int | None = None
    number = line = 0
    while True:
        start = line + 1
        try:
            raw = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            what = (
                'a quoted value is never closed (unterminated quote): close it with "'
                if "unexpected end of data" in str(exc)
                else f'not valid CSV ({exc}): inside quotes write a quote as ""'
            )
            problems.append(f"row {number + 1}: {what} (line {start}); nothing after it was read")
            break
        line = reader.line_num
        number += 1  # blank records count too, as spreadsheets number them
        if not raw or not any(cell.strip() for cell in raw):
            continue
        spanning = [i + 1 for i, cell in enumerate(raw) if "\n" in cell]
        if spanning:
            problems.append(
                f"row {number}: value {spanning[0]} runs over lines {start}-{line}: a quote is not closed where it "
                "should be (line breaks are not allowed inside a value)"
            )
            continue
        if width is None:
            width = len(raw)
        elif len(raw) != width:
            problems.append(f"row {number}: {len(raw)} values for {width} columns (line {start})")
            continue
        rows.append((number, [unescape_cell(cell) for cell in raw]))
    return rows, problems


def csv_lines(header: Sequence[str], rows: Iterable[Sequence[Any]]) -> Iterator[str]:
    """The CSV text, one line at a time (for a streamed download); ``None`` cells are empty."""
    buffer = io.StringIO()
    out = writer(buffer, lineterminator="\r\n")
    out.writerow(header)
    yield buffer.getvalue()
    for row in rows:
        buffer.seek(0)
        buffer.truncate()
        out.writerow(["" if v is None else v for v in row])
        yield buffer.getvalue()
