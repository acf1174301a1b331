"""Small helpers every table reader shares: long CSV fields, the row-start line numbers.

Python's ``csv`` module refuses fields over 128 KiB by default (``_csv.Error: field larger than
field limit``), so a long review or a base64 cell would crash a reader. `allow_long_fields`
raises the process-wide limit once, to the largest value the platform's C ``long`` takes.

Example:
    >>> import csv, io
    >>> allow_long_fields() >= 1 << 30
    True
    >>> rows = list(csv_rows(io.StringIO("a,b\\n1,\\"x\\ny\\"\\n2,z\\n"), delimiter=","))
    >>> [(line, row) for line, row in rows]
    [(1, ['a', 'b']), (2, ['1', 'x\\ny']), (4, ['2', 'z'])]
"""

from __future__ import annotations

import csv
import io
import sys

from tfxfer.errors import DataError


def allow_long_fields() -> int:
    """Raise ``csv.field_size_limit`` to the platform maximum (idempotent); returns the limit."""
    limit = min(sys.maxsize, 2**31 - 1)  # a C long is 32 bits on Windows
    if csv.field_size_limit() < limit:
        csv.field_size_limit(limit)
    return csv.field_size_limit()


def csv_rows(stream, *, delimiter: str, quoting: int = csv.QUOTE_MINIMAL):
    """Yield ``(first line number, row)`` for each record of a CSV/TSV stream.

    The number is the physical line where the record *starts* (a quoted field may span lines), so
    a message points at the row the user sees.
    """
    allow_long_fields()
    reader = csv.reader(stream, delimiter=delimiter, quoting=quoting, strict=False)
    start = 1
    for row in reader:
        yield start, row
        start = reader.line_num + 1


def unwrap_quoted(field: str) -> str:
    """A TSV field written as ``"..."`` (quotes doubled inside) -> its content; others as they are."""
    if len(field) >= 2 and field[0] == field[-1] == '"' and '"' not in field[1:-1].replace('""', ""):
        return field[1:-1].replace('""', '"')
    return field


def table_records(content: str, *, delimiter: str, tsv: bool, single_line: bool = False):
    """``(line, row)`` records of a CSV/TSV text (quoted fields may span lines).

    In a TSV table a quoted "field" that holds both a line break and a tab is a stray quote that
    swallowed the rows after it (``"great\tpos`` on one line): those lines are read again one by
    one, without quoting, so no row is lost. With ``single_line`` (a table of paths and labels, whose
    cells never hold a line break) any record spanning lines is such a stray quote, in CSV too.
    """
    lines = io.StringIO(content, newline="").readlines()
    records = csv_rows(io.StringIO(content, newline=""), delimiter=delimiter)
    for line_no, row in records:
        if any(("\n" in f or "\r" in f) and (single_line or (tsv and delimiter in f)) for f in row):
            end = line_no + sum(f.count("\n") + f.count("\r") - f.count("\r\n") for f in row)
            for offset, physical in enumerate(lines[line_no - 1:end]):
                text = physical.rstrip("\r\n")
                yield line_no + offset, [unwrap_quoted(f) for f in text.split(delimiter)] if text else []
            continue
        yield line_no, row


def check_unique_columns(header, used, *, source) -> None:
    """Raise `DataError` when a column the reader uses (``used``) appears more than once in ``header``:
    which of the two holds the labels would be a guess (readers disagreed: the first or the last).

    Example:
        >>> check_unique_columns(["path", "label", "label"], ["path", "label"], source="t.csv")
        Traceback (most recent call last):
        ...
        tfxfer.errors.DataError: t.csv: column 'label' appears 2 times in the header (columns 2, 3); rename all but one
    """
    for name in dict.fromkeys(c for c in used if c is not None):
        where = [i + 1 for i, c in enumerate(header) if c == name]
        if len(where) > 1:
            raise DataError(f"{source}: column {name!r} appears {len(where)} times in the header (columns "
                            f"{', '.join(map(str, where))}); rename all but one")
