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
import sys


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
