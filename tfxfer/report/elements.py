"""HTML building blocks of the report: escaping, number formatting, tables, figures, cards.

Example:
    >>> table(["variant", "size"], [["int8", 2.5]])
    '<table><thead><tr><th>variant</th><th>size</th></tr></thead><tbody><tr><td>int8</td><td class="num">2.5</td></tr></tbody></table>'
"""

from __future__ import annotations

import base64
import html


def esc(value) -> str:
    return html.escape("" if value is None else str(value))


def fmt(value, digits: int = 4) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        if value == 0 or 1e-3 <= abs(value) < 1000:
            return f"{value:.{digits}g}"
        return f"{value:,.1f}" if abs(value) >= 1000 else f"{value:.2e}"
    if isinstance(value, int):
        return f"{value:,}" if abs(value) >= 10000 else str(value)
    return esc(value)


def cell(value, raw: bool) -> str:
    numeric = isinstance(value, (int, float)) and not isinstance(value, bool)
    text = value if raw else fmt(value)
    return f'<td class="num">{text}</td>' if numeric else f"<td>{text}</td>"


def table(headers, rows, *, table_id: str | None = None, raw_cols=()) -> str:
    """HTML table; cells are escaped except the column indexes in ``raw_cols``."""
    ident = f' id="{esc(table_id)}"' if table_id else ""
    head = "".join(f"<th>{esc(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(cell(c, i in raw_cols) for i, c in enumerate(r)) + "</tr>" for r in rows)
    return f"<table{ident}><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def figure(png: bytes | None, alt: str) -> str:
    if not png:
        return ""
    data = base64.b64encode(png).decode("ascii")
    return f'<div class="fig"><img alt="{esc(alt)}" src="data:image/png;base64,{data}"></div>'


def card(key, value, note="") -> str:
    return f'<div class="card"><div class="k">{esc(key)}</div><div class="v">{value}</div><div class="n">{note}</div></div>'


def duration(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 120 else f"{seconds / 60:.1f} min"


def verdict(gate: str) -> str:
    return f'<span class="{"pass" if gate == "pass" else "fail"}">{esc(gate)}</span>'
