"""Numbers as a person reads them: sizes in KiB / MiB / GiB, durations in ms / s / min / h, large
counts as 3.4M, and plain decimals without scientific notation (no ``1.315e+04``).

Example:
    >>> format_bytes(13_465_600), format_duration(0.0421), format_duration(135), format_count(3_371_440)
    ('12.8 MiB', '42.1 ms', '2 min 15 s', '3.4M')
    >>> format_number(13150.0), format_number(0.000123), format_number(0.91234)
    ('13150', '0.000123', '0.9123')
"""

from __future__ import annotations

import math

_BYTE_UNITS = ("B", "KiB", "MiB", "GiB", "TiB")


def format_bytes(size) -> str:
    """``size`` bytes in binary units: ``512 B``, ``1.5 KiB``, ``12.8 MiB``, ``132 MiB``."""
    value = float(size)
    unit = 0
    while abs(value) >= 1024 and unit < len(_BYTE_UNITS) - 1:
        value /= 1024
        unit += 1
    if unit == 0:
        return f"{int(value)} B"
    return f"{value:.1f} {_BYTE_UNITS[unit]}" if abs(value) < 100 else f"{value:.0f} {_BYTE_UNITS[unit]}"


def format_duration(seconds) -> str:
    """``seconds`` as ``850 us``, ``42 ms``, ``3.2 s``, ``42 s``, ``1 min 15 s`` or ``2 h 05 min``."""
    s = float(seconds)
    if s < 1e-3:
        return f"{s * 1e6:.0f} us"
    if s < 1:
        return f"{s * 1e3:.3g} ms" if s < 0.1 else f"{s * 1e3:.0f} ms"
    if s < 10:
        return f"{s:.1f} s"
    if s < 90:
        return f"{s:.0f} s"
    if s < 3600:
        minutes, rest = divmod(round(s), 60)
        return f"{minutes} min {rest} s" if rest else f"{minutes} min"
    hours, rest = divmod(round(s / 60), 60)
    return f"{hours} h {rest:02d} min"


def format_count(n) -> str:
    """A count as ``950``, ``12.3k``, ``3.4M`` or ``1.2B``."""
    n = float(n)
    for limit, suffix in ((1e9, "B"), (1e6, "M"), (1e3, "k")):
        if abs(n) >= limit:
            return f"{n / limit:.1f}{suffix}"
    return f"{n:.0f}"


def format_number(value, *, digits: int = 4) -> str:
    """A float with ``digits`` significant digits in plain decimal notation (never ``1.315e+04``);
    integers and whole floats of any size print without a fraction."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return str(value)
    if isinstance(value, int) or (math.isfinite(value) and value == int(value) and abs(value) >= 1):
        return str(int(value))
    if not math.isfinite(value):
        return str(value)
    if value == 0:
        return "0"
    decimals = max(0, digits - 1 - math.floor(math.log10(abs(value))))
    text = f"{value:.{decimals}f}"
    return text.rstrip("0").rstrip(".") if "." in text else text
